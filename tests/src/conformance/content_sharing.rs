//! Checklist items 72–79: content sharing on a DiagnosticReport anchor: versions, updates
//! and their broadcast, atomic Bundles, concurrent updates. Also the shared rig that
//! `content_rules.rs` (items 80–90) uses.

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

use super::assert::{expect_echo, expect_event, id_of, item, version_of};
use super::{Check, Ctx, check};
use crate::client::HubClient;
use crate::payloads::{
    delete_entry, diagnostic_report_open, diagnostic_report_select, diagnostic_report_update,
    observation, put_entry, random_topic, transaction,
};
use crate::subscriber::Subscriber;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(72, c15_72_open_carries_unique_version),
        check!(73, c15_73_stale_update_rejected_not_broadcast),
        check!(74, c15_74_rejected_update_changes_nothing),
        check!(75, c15_75_accepted_update_new_and_prior_version),
        check!(76, c15_76_broadcast_keeps_bundle_id),
        check!(77, c15_77_broadcast_keeps_update_id),
        check!(78, c15_78_failing_bundle_applies_nothing),
        check!(79, c15_79_concurrent_updates_one_wins),
    ]
}

const EVENTS: &str =
    "DiagnosticReport-open,DiagnosticReport-update,DiagnosticReport-select,DiagnosticReport-close";
pub(super) const PATIENT: &str = "p-cs";

/// A topic with report `r1` open and a subscriber to the report's events.
pub(super) struct Rig {
    pub(super) topic: String,
    pub(super) client: HubClient,
    pub(super) socket: Subscriber,
    pub(super) open: Value,
    pub(super) version: String,
}

pub(super) async fn rig(ctx: &Ctx) -> Result<Rig> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut socket = ctx.subscriber(&client, EVENTS).await?;
    let (open, version) = open_report(&client, &mut socket, "r1").await?;
    Ok(Rig {
        topic,
        client,
        socket,
        open,
        version,
    })
}

pub(super) async fn open_report(
    client: &HubClient,
    socket: &mut Subscriber,
    report: &str,
) -> Result<(Value, String)> {
    let open = diagnostic_report_open(client.topic(), report, PATIENT, &["s1"]);
    client.publish_ok(&open).await?;
    let echo = expect_echo(socket, &open).await?;
    let version = version_of(&echo)
        .context("distributed DiagnosticReport-open has no context.versionId")?
        .to_owned();
    ensure!(!version.is_empty(), "empty context.versionId");
    Ok((open, version))
}

impl Rig {
    pub(super) fn update(&self, version: &str, entries: Vec<Value>) -> Value {
        diagnostic_report_update(&self.topic, "r1", PATIENT, version, transaction(entries))
    }

    /// Posts an update expected to succeed; returns its broadcast.
    pub(super) async fn apply(&mut self, version: &str, entries: Vec<Value>) -> Result<Value> {
        let update = self.update(version, entries);
        self.client.publish_ok(&update).await?;
        expect_event(
            &mut self.socket,
            "DiagnosticReport-update",
            Some(id_of(&update)),
        )
        .await
    }

    /// Posts an update expected to be refused with `status`; asserts nothing is broadcast.
    pub(super) async fn refuse(&mut self, status: u16, update: &Value, what: &str) -> Result<()> {
        self.client
            .publish(update)
            .await?
            .expect_error(status, what)?;
        self.expect_marker_next()
            .await
            .with_context(|| format!("{what} was broadcast"))
    }

    /// Publishes a select in r1 (which changes no content and no version) and asserts it is
    /// the socket's next message: anything broadcast before it would have come first.
    pub(super) async fn expect_marker_next(&mut self) -> Result<()> {
        let marker = diagnostic_report_select(&self.topic, "r1", &["ImagingStudy/s1"]);
        self.client.publish_ok(&marker).await?;
        expect_echo(&mut self.socket, &marker).await?;
        Ok(())
    }
}

pub(super) fn new_version(broadcast: &Value) -> Result<String> {
    version_of(broadcast)
        .map(str::to_owned)
        .context("update broadcast has no context.versionId")
}

/// Returns the `content` Bundle of a Get Current Context answer.
fn content_of(context: &Value) -> Result<&Value> {
    context["context"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["key"] == "content"))
        .map(|item| &item["resource"])
        .with_context(|| format!("no content item in {context}"))
}

pub(super) fn content_resources(context: &Value) -> Result<Vec<Value>> {
    let bundle = content_of(context)?;
    ensure!(
        bundle["resourceType"] == "Bundle" && bundle["type"] == "collection",
        "content is not a collection Bundle: {bundle}"
    );
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    entries
        .iter()
        .map(|entry| {
            ensure!(
                entry.get("request").is_none(),
                "content entry keeps its request: {entry}"
            );
            Ok(entry["resource"].clone())
        })
        .collect()
}

/// 15.72: distributed opens carry a `context.versionId`, unique within the topic.
async fn c15_72_open_carries_unique_version(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let (_, second) = open_report(&rig.client, &mut rig.socket, "r2").await?;
    ensure!(second != rig.version, "two opens share version {second}");
    Ok(())
}

/// 15.73: an update with a stale version is refused (409) and not broadcast.
async fn c15_73_stale_update_rejected_not_broadcast(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let stale = rig.update(
        "not-the-current-version",
        vec![put_entry(observation("o73", PATIENT, "x"))],
    );
    rig.refuse(409, &stale, "stale update").await
}

/// 15.74: a refused update leaves content and version unchanged.
async fn c15_74_rejected_update_changes_nothing(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let version = rig.version.clone();
    let broadcast = rig
        .apply(
            &version,
            vec![put_entry(observation("o74", PATIENT, "kept"))],
        )
        .await?;
    let before = rig.client.context().await?;
    let stale = rig.update(
        &version,
        vec![put_entry(observation("o74", PATIENT, "changed"))],
    );
    rig.refuse(409, &stale, "update on the old version").await?;
    let after = rig.client.context().await?;
    ensure!(
        before == after,
        "context changed after a refused update: {before} → {after}"
    );
    ensure!(
        after["context.versionId"] == new_version(&broadcast)?.as_str(),
        "version is {}",
        after["context.versionId"]
    );
    Ok(())
}

/// 15.75: an accepted update is broadcast with a new version and the request's as prior.
async fn c15_75_accepted_update_new_and_prior_version(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let version = rig.version.clone();
    let broadcast = rig
        .apply(&version, vec![put_entry(observation("o75", PATIENT, "x"))])
        .await?;
    let next = new_version(&broadcast)?;
    ensure!(next != version, "version did not change");
    let prior = broadcast["event"]
        .get("context.priorVersionId")
        .and_then(Value::as_str);
    ensure!(
        prior == Some(version.as_str()),
        "priorVersionId {prior:?}, expected {version}"
    );
    let context = rig.client.context().await?;
    ensure!(
        context["context.versionId"] == next.as_str(),
        "GET version {} != {next}",
        context["context.versionId"]
    );
    Ok(())
}

/// 15.76: the broadcast Bundle keeps the request Bundle's `id` (and entries).
async fn c15_76_broadcast_keeps_bundle_id(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let update = rig.update(
        &rig.version,
        vec![put_entry(observation("o76", PATIENT, "x"))],
    );
    rig.client.publish_ok(&update).await?;
    let broadcast = expect_event(
        &mut rig.socket,
        "DiagnosticReport-update",
        Some(id_of(&update)),
    )
    .await?;
    let sent = item(&update, "updates").map(|item| &item["resource"]);
    let got = item(&broadcast, "updates").map(|item| &item["resource"]);
    ensure!(
        got.map(|bundle| &bundle["id"]) == sent.map(|bundle| &bundle["id"]),
        "Bundle id changed"
    );
    ensure!(got == sent, "Bundle changed in transit");
    Ok(())
}

/// 15.77: the broadcast reuses the request's `id`.
async fn c15_77_broadcast_keeps_update_id(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let version = rig.version.clone();
    rig.apply(&version, vec![put_entry(observation("o77", PATIENT, "x"))])
        .await
        .map(drop)
}

/// 15.78: a Bundle whose DELETE targets an unknown resource is refused whole.
async fn c15_78_failing_bundle_applies_nothing(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let before = rig.client.context().await?;
    let update = rig.update(
        &rig.version,
        vec![
            put_entry(observation("o78", PATIENT, "x")),
            delete_entry("Observation/ghost"),
        ],
    );
    rig.refuse(409, &update, "update deleting an unknown resource")
        .await?;
    let after = rig.client.context().await?;
    ensure!(
        content_resources(&after)?.is_empty(),
        "part of the Bundle was applied: {after}"
    );
    ensure!(before == after, "context changed");
    Ok(())
}

/// 15.79: two updates against the same version: one wins, the other is a 409.
async fn c15_79_concurrent_updates_one_wins(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let first = rig.update(
        &rig.version,
        vec![put_entry(observation("o79-a", PATIENT, "a"))],
    );
    let second = rig.update(
        &rig.version,
        vec![put_entry(observation("o79-b", PATIENT, "b"))],
    );
    let (a, b) = tokio::join!(rig.client.publish(&first), rig.client.publish(&second));
    let mut statuses = [a?.status, b?.status];
    statuses.sort_unstable();
    ensure!(
        statuses[0] / 100 == 2 && statuses[1] == 409,
        "statuses {statuses:?}, expected one 2xx and one 409"
    );
    expect_event(&mut rig.socket, "DiagnosticReport-update", None).await?;
    rig.expect_marker_next()
        .await
        .context("both updates were broadcast")
}
