//! Checklist items 46–59: SyncError from refusals (409, 4xx, 5xx, as numbers or strings),
//! subscriber-posted SyncErrors, who receives them, their OperationOutcome, abnormal closes
//! and unresponsive subscribers.
//!
//! The rig: a "Refuser" subscribed to `Patient-open,SyncError` whose answers the check sets,
//! and a "Watcher" subscribed to `SyncError` only. Hub-generated SyncErrors go to every
//! SyncError subscriber except the failing one, so the Watcher gets them and the Refuser not.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;
use tokio::time::Instant;

use super::assert::{
    count_items, event_name, expect_dead_endpoint, expect_denial_then_close, expect_echo,
    expect_sync_error_about, id_of, item, sync_error_code,
};
use super::{Check, Ctx, MSG, check};
use crate::client::HubClient;
use crate::payloads::{new_id, patient_open, random_topic, sync_error};
use crate::subscriber::{Ack, Incoming, Subscriber};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(46, c15_46_ack_409_causes_sync_error),
        check!(47, c15_47_ack_4xx_causes_sync_error),
        check!(48, c15_48_ack_5xx_causes_sync_error),
        check!(49, c15_49_ack_status_number_or_string),
        check!(50, c15_50_posted_sync_error_distributed),
        check!(51, c15_51_sync_error_only_to_sync_error_subscribers),
        check!(52, c15_52_sync_error_context_is_operation_outcome),
        check!(53, c15_53_sync_error_issue_fields),
        check!(54, c15_54_sync_error_event_codings),
        check!(55, c15_55_sync_error_subscriber_name),
        check!(56, c15_56_normal_close_no_sync_error),
        check!(57, c15_57_abnormal_close_sync_error),
        check!(58, c15_58_ack_timeout_sync_error),
        check!(59, c15_59_unresponsive_subscriber_unsubscribed),
    ]
}

struct Rig {
    topic: String,
    client: HubClient,
    refuser: Subscriber,
    watcher: Subscriber,
}

async fn rig(ctx: &Ctx) -> Result<Rig> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let refuser = ctx
        .subscriber_with(
            &client,
            "Patient-open,SyncError",
            &[("subscriber.name", "Refuser")],
        )
        .await?;
    let watcher = ctx
        .subscriber_with(&client, "SyncError", &[("subscriber.name", "Watcher")])
        .await?;
    Ok(Rig {
        topic,
        client,
        refuser,
        watcher,
    })
}

/// A refused event and what came of it.
struct Refusal {
    /// The event the Refuser refused.
    open: Value,
    /// The Watcher's SyncError about it.
    error: Value,
    /// The event published after it as a marker (every Patient-open subscriber gets it).
    marker: Value,
}

impl Rig {
    /// Publishes a Patient-open the Refuser answers with `ack`; returns it with the
    /// Watcher's SyncError about it. The Refuser must get no SyncError about itself: a
    /// Patient-open published after the SyncError (the marker, answered 200) is the
    /// Refuser's next message.
    async fn refuse(&mut self, ack: Ack) -> Result<Refusal> {
        self.refuser.set_ack(ack.clone());
        let open = patient_open(&self.topic, &format!("p-{}", new_id()));
        self.client.publish_ok(&open).await?;
        expect_echo(&mut self.refuser, &open).await?;
        let error = expect_sync_error_about(&mut self.watcher, id_of(&open))
            .await
            .with_context(|| format!("SyncError after answering {ack:?}"))?;
        self.refuser.set_ack(Ack::Status(200));
        let marker = patient_open(&self.topic, &format!("p-marker-{}", new_id()));
        self.client.publish_ok(&marker).await?;
        expect_echo(&mut self.refuser, &marker)
            .await
            .context("the failing subscriber got a SyncError")?;
        Ok(Refusal {
            open,
            error,
            marker,
        })
    }

    /// Publishes a Patient-open the Refuser answers with `ack` and expects no SyncError.
    async fn accept(&mut self, ack: Ack) -> Result<()> {
        self.refuser.set_ack(ack);
        let open = patient_open(&self.topic, &format!("p-{}", new_id()));
        self.client.publish_ok(&open).await?;
        expect_echo(&mut self.refuser, &open).await?;
        Ok(())
    }
}

/// 15.46: an answer of 409 causes a SyncError about that event.
async fn c15_46_ack_409_causes_sync_error(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let Refusal { open, error, .. } = rig.refuse(Ack::Status(409)).await?;
    ensure!(
        sync_error_code(&error, "eventname") == Some("Patient-open"),
        "eventname: {error}"
    );
    ensure!(
        error["event"]["hub.topic"] == open["event"]["hub.topic"],
        "SyncError for another topic"
    );
    Ok(())
}

/// 15.47: other 4xx answers cause a SyncError.
async fn c15_47_ack_4xx_causes_sync_error(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    rig.refuse(Ack::Status(403)).await?;
    rig.refuse(Ack::Status(400)).await?;
    Ok(())
}

/// Returns the `diagnostics` of a SyncError's first issue.
fn diagnostics(error: &Value) -> Result<&str> {
    item(error, "operationoutcome")
        .and_then(|item| item.pointer("/resource/issue/0/diagnostics"))
        .and_then(Value::as_str)
        .with_context(|| format!("SyncError without diagnostics: {error}"))
}

/// 15.48: 500 and other 5xx answers cause a SyncError, which says the event was not
/// delivered, not that it was refused: a 409 and a 500 answer get diagnostics that differ
/// beyond the status code, each names its status code, and the 5xx one does not say
/// "refused". Verified to fail when the hub reads a 5xx answer as a refusal
/// (`SyncFailure::from_status` in `proto/src/sync_error.rs`).
async fn c15_48_ack_5xx_causes_sync_error(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let refused = rig.refuse(Ack::Status(409)).await?;
    let failed = rig.refuse(Ack::Status(500)).await?;
    rig.refuse(Ack::Status(503)).await?;
    let (refused_text, failed_text) = (diagnostics(&refused.error)?, diagnostics(&failed.error)?);
    ensure!(
        refused_text.contains("409"),
        "409 diagnostics do not name the status: `{refused_text}`"
    );
    ensure!(
        failed_text.contains("500"),
        "500 diagnostics do not name the status: `{failed_text}`"
    );
    let wording = |text: &str| {
        text.replace("Refuser", "")
            .replace("409", "")
            .replace("500", "")
    };
    ensure!(
        wording(refused_text) != wording(failed_text),
        "a refusal (409) and a failure (500) read the same: `{refused_text}`, `{failed_text}`"
    );
    ensure!(
        !wording(failed_text)
            .to_ascii_lowercase()
            .contains("refused"),
        "500 diagnostics say the event was refused: `{failed_text}`"
    );
    Ok(())
}

/// 15.49: `status` is read as a number or a numeric string (`"200"` is success).
async fn c15_49_ack_status_number_or_string(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    rig.refuse(Ack::StatusString("409".to_owned())).await?;
    rig.accept(Ack::StatusString("200".to_owned())).await?;
    rig.accept(Ack::Status(200)).await?;
    // The next SyncError the Watcher sees must be about this refusal, not the accepted ones.
    rig.refuse(Ack::StatusString("500".to_owned())).await?;
    Ok(())
}

/// 15.50: a SyncError POSTed by a subscriber is accepted and distributed to the other
/// SyncError subscribers, unchanged, and not back to the subscriber that posted it: the
/// Refuser answers an event 202, then posts a SyncError naming itself; the Watcher gets it
/// unchanged; the Refuser's next messages are the marker event and then the hub's SyncError
/// about a third subscriber refusing that marker. Verified to fail when the hub excludes no
/// subscription from a posted SyncError (`publish` in `hub-node/src/topic/state/publish.rs`).
async fn c15_50_posted_sync_error_distributed(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let mut third = ctx
        .subscriber_with(&rig.client, "Patient-open", &[("subscriber.name", "Third")])
        .await?;
    rig.refuser.set_ack(Ack::Status(202));
    let open = patient_open(&rig.topic, "p50");
    rig.client.publish_ok(&open).await?;
    expect_echo(&mut rig.refuser, &open).await?;
    expect_echo(&mut third, &open).await?;
    let posted = sync_error(&rig.topic, id_of(&open), "Patient-open", "Refuser");
    rig.client.publish_ok(&posted).await?;
    let received = expect_echo(&mut rig.watcher, &posted)
        .await
        .context("the Watcher")?;
    ensure!(
        received["timestamp"] == posted["timestamp"],
        "timestamp changed in transit: {received}"
    );
    rig.refuser.set_ack(Ack::Status(200));
    third.set_ack(Ack::Status(409));
    let marker = patient_open(&rig.topic, "p50-marker");
    rig.client.publish_ok(&marker).await?;
    expect_echo(&mut rig.refuser, &marker)
        .await
        .context("the poster got its own SyncError back")?;
    let about_third = expect_sync_error_about(&mut rig.refuser, id_of(&marker))
        .await
        .context("the Refuser's next SyncError")?;
    ensure!(
        sync_error_code(&about_third, "subscribername") == Some("Third"),
        "SyncError about the marker names {:?}",
        sync_error_code(&about_third, "subscribername")
    );
    Ok(())
}

/// 15.51: SyncErrors reach only SyncError subscribers: a Patient-open-only subscriber gets
/// the refused event and then the marker published after the SyncError.
async fn c15_51_sync_error_only_to_sync_error_subscribers(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let mut bystander = ctx
        .subscriber_with(
            &rig.client,
            "Patient-open",
            &[("subscriber.name", "Bystander")],
        )
        .await?;
    let Refusal { open, marker, .. } = rig.refuse(Ack::Status(409)).await?;
    expect_echo(&mut bystander, &open).await?;
    expect_echo(&mut bystander, &marker)
        .await
        .context("a Patient-open-only subscriber got a SyncError")?;
    Ok(())
}

/// 15.52: a hub SyncError's context is exactly one `operationoutcome` OperationOutcome.
async fn c15_52_sync_error_context_is_operation_outcome(ctx: Ctx) -> Result<()> {
    let Refusal { error, .. } = rig(&ctx).await?.refuse(Ack::Status(409)).await?;
    let context = error["event"]["context"]
        .as_array()
        .context("context is not an array")?;
    ensure!(
        context.len() == 1,
        "context has {} items: {error}",
        context.len()
    );
    ensure!(
        count_items(&error, "operationoutcome") == 1,
        "no operationoutcome item: {error}"
    );
    let outcome = item(&error, "operationoutcome").map(|item| &item["resource"]);
    ensure!(
        outcome.is_some_and(|outcome| outcome["resourceType"] == "OperationOutcome"),
        "not an OperationOutcome: {error}"
    );
    Ok(())
}

/// 15.53: the issue has severity `warning`, code `processing` and a diagnostics text.
async fn c15_53_sync_error_issue_fields(ctx: Ctx) -> Result<()> {
    let Refusal { error, .. } = rig(&ctx).await?.refuse(Ack::Status(500)).await?;
    let issues = item(&error, "operationoutcome")
        .and_then(|item| item["resource"]["issue"].as_array())
        .context("no issue array")?;
    let issue = issues
        .iter()
        .find(|issue| issue["code"] == "processing")
        .context("no issue with code processing")?;
    ensure!(
        issue["severity"] == "warning",
        "severity {}",
        issue["severity"]
    );
    ensure!(
        issue["diagnostics"]
            .as_str()
            .is_some_and(|text| !text.trim().is_empty()),
        "diagnostics: {issue}"
    );
    Ok(())
}

/// 15.54: the codings name the failed event's id and name.
async fn c15_54_sync_error_event_codings(ctx: Ctx) -> Result<()> {
    let Refusal { open, error, .. } = rig(&ctx).await?.refuse(Ack::Status(409)).await?;
    ensure!(
        sync_error_code(&error, "eventid") == Some(id_of(&open)),
        "eventid: {error}"
    );
    ensure!(
        sync_error_code(&error, "eventname") == Some("Patient-open"),
        "eventname: {error}"
    );
    Ok(())
}

/// 15.55: the `subscribername` coding carries the failing subscriber's `subscriber.name`.
async fn c15_55_sync_error_subscriber_name(ctx: Ctx) -> Result<()> {
    let Refusal { error, .. } = rig(&ctx).await?.refuse(Ack::Status(409)).await?;
    let name = sync_error_code(&error, "subscribername");
    ensure!(
        name == Some("Refuser"),
        "subscribername is {name:?}: {error}"
    );
    Ok(())
}

/// Publishes a Patient-open the Refuser receives, so the topic has an event a SyncError
/// about a closed connection could be about (a hub raises none on a topic without events).
async fn publish_first_event(rig: &mut Rig) -> Result<Value> {
    let open = patient_open(&rig.topic, &format!("p-{}", new_id()));
    rig.client.publish_ok(&open).await?;
    expect_echo(&mut rig.refuser, &open).await?;
    Ok(open)
}

/// 15.56: closing with 1000 or 1001 causes no SyncError: after the closes and the reconnect
/// grace (a hub may raise a lost connection's SyncError only then), the Watcher's next
/// SyncError is about a later refusal (the marker).
async fn c15_56_normal_close_no_sync_error(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    publish_first_event(&mut rig).await?;
    for code in [1000, 1001] {
        let leaver = ctx
            .subscriber_with(
                &rig.client,
                "Patient-open",
                &[("subscriber.name", "Leaver")],
            )
            .await?;
        close_and_wait(leaver, code).await?;
    }
    ctx.wait_out_reconnect_grace().await;
    rig.refuse(Ack::Status(409))
        .await
        .context("a normal close caused a SyncError")?;
    Ok(())
}

async fn close_and_wait(mut subscriber: Subscriber, code: u16) -> Result<()> {
    subscriber.close(code)?;
    loop {
        // The replay of the current context may still be queued before the close.
        match subscriber
            .next_incoming(MSG)
            .await
            .with_context(|| format!("hub's answer to close {code}"))?
        {
            Incoming::Message(message) if message.get("event").is_some() => {}
            Incoming::Closed(answer) => {
                ensure!(answer.is_some(), "hub answered close {code} without a code");
                return Ok(());
            }
            other => anyhow::bail!("expected the hub's close after close {code}, got {other:?}"),
        }
    }
}

/// 15.57: closing with another code (4001, 1011) or dropping TCP causes a SyncError naming
/// the subscriber, within the hub's reconnect grace (plus the usual wait) when the
/// subscriber does not come back.
async fn c15_57_abnormal_close_sync_error(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let names = ["Closer4001", "Closer1011", "Dropper"];
    let mut leavers = Vec::with_capacity(names.len());
    for name in names {
        let subscriber = ctx
            .subscriber_with(&rig.client, "Patient-open", &[("subscriber.name", name)])
            .await?;
        leavers.push(subscriber);
    }
    let open = publish_first_event(&mut rig).await?;
    for leaver in &mut leavers {
        expect_echo(leaver, &open).await?;
    }
    for (name, leaver) in names.iter().zip(&leavers) {
        match *name {
            "Closer4001" => leaver.close(4001)?,
            "Closer1011" => leaver.close(1011)?,
            _ => leaver.drop_connection(),
        }
    }
    let until = Instant::now() + ctx.reconnect_grace + MSG;
    let mut named = BTreeSet::new();
    for _ in names {
        let error = rig
            .watcher
            .next_event(until.saturating_duration_since(Instant::now()))
            .await
            .with_context(|| format!("SyncErrors so far name {named:?}"))?;
        ensure!(
            event_name(&error) == "SyncError",
            "expected a SyncError, got {error}"
        );
        named.insert(
            sync_error_code(&error, "subscribername")
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let expected: BTreeSet<String> = names.iter().map(|name| (*name).to_owned()).collect();
    ensure!(
        named == expected,
        "SyncErrors name {named:?}, expected {expected:?}"
    );
    drop(leavers);
    Ok(())
}

/// 15.58: no answer within the ack timeout causes a SyncError about the event.
async fn c15_58_ack_timeout_sync_error(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    rig.refuser.set_ack(Ack::Silent);
    let open = patient_open(&rig.topic, "p58");
    rig.client.publish_ok(&open).await?;
    expect_echo(&mut rig.refuser, &open).await?;
    let error =
        expect_sync_error_within(&mut rig.watcher, id_of(&open), ctx.ack_timeout + MSG).await?;
    ensure!(
        sync_error_code(&error, "subscribername") == Some("Refuser"),
        "subscribername: {error}"
    );
    Ok(())
}

async fn expect_sync_error_within(
    watcher: &mut Subscriber,
    failed_id: &str,
    within: Duration,
) -> Result<Value> {
    let message = watcher
        .next_event(within)
        .await
        .context("waiting for the ack-timeout SyncError")?;
    ensure!(
        sync_error_code(&message, "eventid") == Some(failed_id),
        "SyncError about another event: {message}"
    );
    Ok(message)
}

/// 15.59: the unresponsive subscriber is then unsubscribed: denial, close, nothing more.
async fn c15_59_unresponsive_subscriber_unsubscribed(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    rig.refuser.set_ack(Ack::Silent);
    let open = patient_open(&rig.topic, "p59");
    rig.client.publish_ok(&open).await?;
    expect_echo(&mut rig.refuser, &open).await?;
    expect_denial_then_close(&mut rig.refuser, &rig.topic, ctx.ack_timeout + MSG).await?;
    expect_sync_error_within(&mut rig.watcher, id_of(&open), MSG).await?;
    expect_dead_endpoint(
        rig.refuser.endpoint(),
        &rig.topic,
        "the endpoint of the unsubscribed subscriber",
    )
    .await
}
