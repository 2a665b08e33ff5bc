//! Checklist items 46–59: SyncError from refusals (409, 4xx, 5xx, as numbers or strings),
//! subscriber-posted SyncErrors, who receives them, their OperationOutcome, abnormal closes
//! and unresponsive subscribers.
//!
//! The rig: a "Refuser" subscribed to `Patient-open,SyncError` whose answers the check sets,
//! and a "Watcher" subscribed to `SyncError` only. Hub-generated SyncErrors go to every
//! SyncError subscriber except the failing one, so the Watcher gets them and the Refuser not.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

use super::assert::{
    count_items, expect_denial_then_close, expect_echo, expect_event, expect_sync_error_about,
    id_of, item, sync_error_code,
};
use super::{Check, Ctx, MSG, SILENCE, check};
use crate::client::HubClient;
use crate::payloads::{new_id, patient_open, random_topic, sync_error};
use crate::subscriber::{Ack, Subscriber};

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

impl Rig {
    /// Publishes a Patient-open the Refuser answers with `ack`; returns the event and the
    /// Watcher's SyncError about it, and checks the Refuser gets no SyncError about itself.
    async fn refuse(&mut self, ack: Ack) -> Result<(Value, Value)> {
        self.refuser.set_ack(ack.clone());
        let open = patient_open(&self.topic, &format!("p-{}", new_id()));
        self.client.publish_ok(&open).await?;
        expect_echo(&mut self.refuser, &open).await?;
        let error = expect_sync_error_about(&mut self.watcher, id_of(&open))
            .await
            .with_context(|| format!("SyncError after answering {ack:?}"))?;
        self.refuser
            .expect_silence(SILENCE)
            .await
            .context("the failing subscriber got a SyncError")?;
        Ok((open, error))
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
    let (open, error) = rig.refuse(Ack::Status(409)).await?;
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

/// 15.48: 500 and other 5xx answers cause a SyncError.
async fn c15_48_ack_5xx_causes_sync_error(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    rig.refuse(Ack::Status(500)).await?;
    rig.refuse(Ack::Status(503)).await?;
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
/// SyncError subscribers, unchanged.
async fn c15_50_posted_sync_error_distributed(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let posted = sync_error(&rig.topic, &new_id(), "Patient-open", "Refuser");
    rig.client.publish_ok(&posted).await?;
    expect_echo(&mut rig.watcher, &posted).await?;
    Ok(())
}

/// 15.51: SyncErrors reach only SyncError subscribers.
async fn c15_51_sync_error_only_to_sync_error_subscribers(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let mut bystander = ctx
        .subscriber_with(
            &rig.client,
            "Patient-open",
            &[("subscriber.name", "Bystander")],
        )
        .await?;
    let (open, _) = rig.refuse(Ack::Status(409)).await?;
    expect_echo(&mut bystander, &open).await?;
    bystander
        .expect_silence(SILENCE)
        .await
        .context("a Patient-open-only subscriber got a SyncError")
}

/// 15.52: a hub SyncError's context is exactly one `operationoutcome` OperationOutcome.
async fn c15_52_sync_error_context_is_operation_outcome(ctx: Ctx) -> Result<()> {
    let (_, error) = rig(&ctx).await?.refuse(Ack::Status(409)).await?;
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
    let (_, error) = rig(&ctx).await?.refuse(Ack::Status(500)).await?;
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
    let (open, error) = rig(&ctx).await?.refuse(Ack::Status(409)).await?;
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
    let (_, error) = rig(&ctx).await?.refuse(Ack::Status(409)).await?;
    let name = sync_error_code(&error, "subscribername");
    ensure!(
        name == Some("Refuser"),
        "subscribername is {name:?}: {error}"
    );
    Ok(())
}

/// 15.56: closing with 1000 or 1001 causes no SyncError.
async fn c15_56_normal_close_no_sync_error(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
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
    rig.watcher
        .expect_silence(SILENCE)
        .await
        .context("a normal close caused a SyncError")?;
    // Whatever the Watcher gets next must be about this refusal, not about the closes.
    rig.refuse(Ack::Status(409)).await?;
    Ok(())
}

async fn close_and_wait(mut subscriber: Subscriber, code: u16) -> Result<()> {
    subscriber.close(code)?;
    let answer = subscriber
        .expect_close(MSG)
        .await
        .with_context(|| format!("hub's answer to close {code}"))?;
    ensure!(answer.is_some(), "hub answered close {code} without a code");
    Ok(())
}

/// 15.57: closing with another code (4001, 1011) or dropping TCP causes a SyncError naming
/// the subscriber.
async fn c15_57_abnormal_close_sync_error(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    for (name, how) in [
        ("Closer4001", Some(4001)),
        ("Closer1011", Some(1011)),
        ("Dropper", None),
    ] {
        let subscriber = ctx
            .subscriber_with(&rig.client, "Patient-open", &[("subscriber.name", name)])
            .await?;
        match how {
            Some(code) => subscriber.close(code)?,
            None => subscriber.drop_connection(),
        }
        let error = expect_event(&mut rig.watcher, "SyncError", None)
            .await
            .with_context(|| format!("after {name}"))?;
        let named = sync_error_code(&error, "subscribername");
        ensure!(
            named == Some(name),
            "SyncError after {name} names {named:?}: {error}"
        );
    }
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
    rig.client
        .unsubscribe(rig.refuser.endpoint())
        .await?
        .expect_error(404, "unsubscribing the endpoint the hub already ended")?;
    Ok(())
}
