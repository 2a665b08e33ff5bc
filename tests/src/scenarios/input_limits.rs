//! Configured input limits (INP-02, INP-06, INP-10): each limit the gateway takes as a flag,
//! lowered, refuses one more than it allows with the documented 4xx and a text reason and
//! changes nothing; an out-of-range value stops the gateway at start-up. (The defaults are
//! tested in `bad_input`.)

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use super::bad_input::deep_event;
use super::{MSG, Rig, Stage, refused};
use crate::gateway::GatewayBuilder;
use crate::payloads::{
    diagnostic_report_open, diagnostic_report_update, envelope, observation, patient, put_entry,
    random_topic, resource_item, transaction,
};

/// The staging Patient-open (an MRN identifier with a coding) nests 10 levels deep.
const LOWERED_DEPTH: usize = 12;

#[tokio::test]
async fn inp_02_a_lowered_max_json_depth_refuses_one_level_more_with_400() -> Result<()> {
    let stage =
        Stage::start_with(|builder| builder.arg(format!("--max-json-depth={LOWERED_DEPTH}")))
            .await?;
    let reply = stage
        .client
        .post_raw(
            Some("application/json"),
            deep_event(stage.topic(), LOWERED_DEPTH + 1),
        )
        .await?;
    refused(&reply, 400, "JSON one level deeper than --max-json-depth")?;
    ensure!(
        reply.body.contains("nested too deeply"),
        "reason: {}",
        reply.body
    );
    stage.finish().await
}

#[tokio::test]
async fn inp_06_a_lowered_max_events_per_subscription_refuses_one_more_with_400() -> Result<()> {
    let stage = Stage::start_with(|builder| builder.arg("--max-events-per-subscription=3")).await?;
    let four = "Patient-open,Patient-close,Encounter-open,Encounter-close";
    let reply = stage.client.subscribe_with(four, &[]).await?;
    refused(&reply, 400, "4 events over --max-events-per-subscription=3")?;
    ensure!(
        reply.body.contains("more than 3 events") && !reply.body.contains("hub.channel.endpoint"),
        "reason: {}",
        reply.body
    );
    // Three is within the limit.
    stage
        .client
        .subscribe("Patient-open,Patient-close,Encounter-open")
        .await
        .context("3 events")?;
    stage.finish().await
}

#[tokio::test]
async fn inp_10_a_lowered_max_context_entries_refuses_one_more_with_400() -> Result<()> {
    let stage = Stage::start_with(|builder| builder.arg("--max-context-entries=2")).await?;
    let extension = |n: usize| json!({"key": "extension", "data": {"n": n}});
    let three = vec![
        resource_item("patient", patient("p-three")),
        extension(1),
        extension(2),
    ];
    let reply = stage
        .client
        .publish(&envelope(stage.topic(), "Patient-open", three))
        .await?;
    refused(&reply, 400, "3 context items over --max-context-entries=2")?;
    ensure!(
        reply.body.contains("more than 2 items"),
        "reason: {}",
        reply.body
    );
    stage.finish().await
}

#[tokio::test]
async fn inp_10_a_lowered_max_bundle_entries_refuses_one_more_with_413() -> Result<()> {
    let rig = Rig::start_with(|builder| builder.arg("--max-bundle-entries=2")).await?;
    let client = rig.client(&random_topic())?;
    let mut watcher = rig
        .subscriber(&client, "DiagnosticReport-open,DiagnosticReport-update")
        .await?;
    let open = diagnostic_report_open(client.topic(), "r1", "p-cs", &["s1"]);
    client.publish_ok(&open).await?;
    let echo = watcher.next_event(MSG).await?;
    let version = echo["event"]["context.versionId"]
        .as_str()
        .context("the open carries no context.versionId")?
        .to_owned();
    let before = client.context().await?;
    let puts = |count: usize| -> Vec<Value> {
        (0..count)
            .map(|n| put_entry(observation(&format!("o{n}"), "p-cs", "finding")))
            .collect()
    };
    let update = |count: usize| {
        diagnostic_report_update(
            client.topic(),
            "r1",
            "p-cs",
            &version,
            transaction(puts(count)),
        )
    };
    let reply = client.publish(&update(3)).await?;
    refused(&reply, 413, "3 Bundle entries over --max-bundle-entries=2")?;
    ensure!(
        reply.body.contains("more than 2 entries"),
        "reason: {}",
        reply.body
    );
    watcher
        .expect_silence(super::SILENCE)
        .await
        .context("the refused update was broadcast")?;
    let after = client.context().await?;
    ensure!(after == before, "context changed: {before} → {after}");
    // Two entries are within the limit, on the same version: the refusal changed nothing.
    let accepted = update(2);
    client.publish_ok(&accepted).await?;
    let broadcast = watcher.next_event(MSG).await?;
    ensure!(
        broadcast["id"] == accepted["id"],
        "unexpected broadcast {broadcast}"
    );
    drop(watcher);
    rig.gateway.stop().await
}

#[tokio::test]
async fn inp_02_06_10_out_of_range_limits_stop_the_gateway_at_start_up() -> Result<()> {
    let refusals = [
        (
            "--max-json-depth=0",
            "--max-json-depth must be between 1 and 64, not 0",
        ),
        (
            "--max-json-depth=65",
            "--max-json-depth must be between 1 and 64, not 65",
        ),
        (
            "--max-events-per-subscription=0",
            "--max-events-per-subscription must be between 1 and 256",
        ),
        (
            "--max-context-entries=257",
            "--max-context-entries must be between 1 and 256",
        ),
        (
            "--max-bundle-entries=1001",
            "--max-bundle-entries must be between 1 and 1000",
        ),
        (
            "--max-subscriptions-per-client=0",
            "--max-subscriptions-per-client must be greater than 0",
        ),
    ];
    for (flag, reason) in refusals {
        GatewayBuilder::new()
            .dev_issuer()
            .arg(flag)
            .expect_refused(reason)
            .await
            .with_context(|| format!("gateway with {flag}"))?;
    }
    // The same through the environment, as the Helm chart sets it.
    GatewayBuilder::new()
        .dev_issuer()
        .env("FHIRCAST_MAX_BUNDLE_ENTRIES", "0")
        .expect_refused("--max-bundle-entries must be between 1 and 1000, not 0")
        .await?;
    Ok(())
}
