//! Checklist items 80–90: content-sharing Bundle rules, Get Current Context's `content`
//! Bundle, close, size limit, select, and updates to a non-current anchor.

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};

use super::assert::{expect_echo, expect_event, version_of};
use super::content_sharing::{PATIENT, Rig, content_resources, new_version, open_report, rig};
use super::{Check, Ctx, check};
use crate::payloads::{
    delete_entry, diagnostic_report, diagnostic_report_close, diagnostic_report_select,
    observation, put_entry,
};
use crate::subscriber::Subscriber;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(80, c15_80_post_entry_rejected),
        check!(81, c15_81_duplicate_resource_rejected),
        check!(82, c15_82_non_transaction_bundle_rejected),
        check!(83, c15_83_content_bundle_reflects_updates),
        check!(84, c15_84_context_array_stays_original),
        check!(85, c15_85_fresh_anchor_has_empty_content),
        check!(86, c15_86_close_discards_content),
        check!(87, c15_87_oversized_update_413),
        check!(88, c15_88_select_relayed_without_version),
        check!(89, c15_89_non_current_update_rejected),
        check!(90, c15_90_non_current_update_applied),
    ]
}

/// 15.80: a `POST` entry is refused.
async fn c15_80_post_entry_rejected(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let mut entry = put_entry(observation("o80", PATIENT, "x"));
    entry["request"] = json!({ "method": "POST", "url": "Observation" });
    let update = rig.update(&rig.version, vec![entry]);
    rig.refuse(400, &update, "POST entry").await
}

/// 15.81: a Bundle listing the same resource twice is refused.
async fn c15_81_duplicate_resource_rejected(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let update = rig.update(
        &rig.version,
        vec![
            put_entry(observation("o81", PATIENT, "a")),
            put_entry(observation("o81", PATIENT, "b")),
        ],
    );
    rig.refuse(400, &update, "duplicate resource").await
}

/// 15.82: a Bundle that is not `type: transaction` is refused.
async fn c15_82_non_transaction_bundle_rejected(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let mut update = rig.update(
        &rig.version,
        vec![put_entry(observation("o82", PATIENT, "x"))],
    );
    for bundle_type in ["batch", "collection"] {
        if let Some(updates) = update["event"]["context"]
            .as_array_mut()
            .and_then(|items| items.iter_mut().find(|item| item["key"] == "updates"))
        {
            updates["resource"]["type"] = json!(bundle_type);
        }
        update["id"] = json!(crate::payloads::new_id());
        rig.refuse(400, &update, &format!("{bundle_type} Bundle"))
            .await?;
    }
    Ok(())
}

/// 15.83: after PUT o1, o2 then DELETE o1, the content Bundle is a collection holding o2.
async fn c15_83_content_bundle_reflects_updates(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let (o1, o2) = (
        observation("o83-1", PATIENT, "one"),
        observation("o83-2", PATIENT, "two"),
    );
    let version = rig.version.clone();
    let first = rig
        .apply(&version, vec![put_entry(o1), put_entry(o2.clone())])
        .await?;
    rig.apply(
        &new_version(&first)?,
        vec![delete_entry("Observation/o83-1")],
    )
    .await?;
    let resources = content_resources(&rig.client.context().await?)?;
    ensure!(resources == vec![o2], "content is {resources:?}");
    Ok(())
}

/// 15.84: an update changing the report's status leaves GET's context array as opened; the
/// changed report appears in the content Bundle.
async fn c15_84_context_array_stays_original(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let mut report = diagnostic_report("r1", PATIENT, &["s1"]);
    report["status"] = json!("final");
    let version = rig.version.clone();
    rig.apply(&version, vec![put_entry(report.clone())]).await?;
    let context = rig.client.context().await?;
    let opened: Vec<Value> = context["context"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["key"] != "content")
        .cloned()
        .collect();
    ensure!(
        Value::Array(opened) == rig.open["event"]["context"],
        "context array changed: {context}"
    );
    ensure!(
        content_resources(&context)? == vec![report],
        "content lacks the changed report: {context}"
    );
    Ok(())
}

/// 15.85: an anchor without updates has a content Bundle with no entries.
async fn c15_85_fresh_anchor_has_empty_content(ctx: Ctx) -> Result<()> {
    let rig = rig(&ctx).await?;
    let context = rig.client.context().await?;
    ensure!(
        context["context.type"] == "DiagnosticReport",
        "context.type {}",
        context["context.type"]
    );
    ensure!(
        content_resources(&context)?.is_empty(),
        "fresh content is not empty: {context}"
    );
    Ok(())
}

/// 15.86: after close the content is gone; a re-open starts empty with a fresh version.
async fn c15_86_close_discards_content(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let version = rig.version.clone();
    let update = rig
        .apply(&version, vec![put_entry(observation("o86", PATIENT, "x"))])
        .await?;
    rig.client
        .publish_ok(&diagnostic_report_close(&rig.topic, "r1", PATIENT, &["s1"]))
        .await?;
    expect_event(&mut rig.socket, "DiagnosticReport-close", None).await?;
    let closed = rig.client.context().await?;
    ensure!(
        closed["context.type"] == "" && closed["context"] == json!([]),
        "context after close: {closed}"
    );
    let (_, reopened) = open_report(&rig.client, &mut rig.socket, "r1").await?;
    ensure!(
        reopened != version && reopened != new_version(&update)?,
        "re-open reused a version"
    );
    ensure!(
        content_resources(&rig.client.context().await?)?.is_empty(),
        "content survived the close"
    );
    Ok(())
}

/// 15.87: an update over the body limit is refused with 413.
async fn c15_87_oversized_update_413(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let big = "x".repeat(300 * 1024);
    let update = rig.update(
        &rig.version,
        vec![put_entry(observation("o87", PATIENT, &big))],
    );
    rig.refuse(413, &update, "oversized update").await
}

/// Asserts `received` is the relay of select `sent`: same id and context, no version.
async fn expect_select_relay(socket: &mut Subscriber, sent: &Value, who: &str) -> Result<()> {
    let received = expect_echo(socket, sent).await.context(who.to_owned())?;
    ensure!(
        version_of(&received).is_none() && received["event"].get("context.versionId").is_none(),
        "{who}: the relayed select carries context.versionId: {received}"
    );
    ensure!(
        received["event"].get("context.priorVersionId").is_none(),
        "{who}: the relayed select carries context.priorVersionId: {received}"
    );
    Ok(())
}

/// 15.88: select is relayed to select subscribers, the sender included, unchanged (same id
/// and context) and with no `context.versionId`; a subscriber of the report without select
/// does not get it (its next message is the report's close, the marker). Verified to fail
/// when the hub relays select with a `context.versionId` (`publish` in
/// `hub-node/src/topic/state/publish.rs`).
async fn c15_88_select_relayed_without_version(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    let mut other = ctx
        .subscriber(&ctx.client(&rig.topic).await?, "DiagnosticReport-select")
        .await?;
    let mut bystander = ctx
        .subscriber(&ctx.client(&rig.topic).await?, "DiagnosticReport-close")
        .await?;
    let select = diagnostic_report_select(&rig.topic, "r1", &["ImagingStudy/s1"]);
    ensure!(
        version_of(&select).is_none(),
        "test bug: select carries a version"
    );
    rig.client.publish_ok(&select).await?;
    expect_select_relay(&mut rig.socket, &select, "the sender").await?;
    expect_select_relay(&mut other, &select, "another select subscriber").await?;
    let close = diagnostic_report_close(&rig.topic, "r1", PATIENT, &["s1"]);
    rig.client.publish_ok(&close).await?;
    expect_echo(&mut bystander, &close)
        .await
        .context("a subscriber without DiagnosticReport-select got the select")?;
    Ok(())
}

/// Opens r2 after r1, so r1 is open but not current; returns r1's version.
async fn make_r1_non_current(rig: &mut Rig) -> Result<()> {
    open_report(&rig.client, &mut rig.socket, "r2").await?;
    let context = rig.client.context().await?;
    let current = context["context"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["key"] == "report"));
    if current.and_then(|item| item["resource"]["id"].as_str()) != Some("r2") {
        bail!("r2 is not current: {context}");
    }
    Ok(())
}

/// 15.89: without the capability, an update of a non-current anchor is refused.
async fn c15_89_non_current_update_rejected(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    make_r1_non_current(&mut rig).await?;
    let before = rig.client.context().await?;
    let update = rig.update(
        &rig.version,
        vec![put_entry(observation("o89", PATIENT, "x"))],
    );
    rig.refuse(409, &update, "update of a non-current anchor")
        .await?;
    ensure!(
        rig.client.context().await? == before,
        "current context changed"
    );
    Ok(())
}

/// 15.90: with the capability, an update of a non-current anchor applies to it and leaves
/// the current context unchanged.
async fn c15_90_non_current_update_applied(ctx: Ctx) -> Result<()> {
    let mut rig = rig(&ctx).await?;
    make_r1_non_current(&mut rig).await?;
    let before = rig.client.context().await?;
    let version = rig.version.clone();
    let broadcast = rig
        .apply(&version, vec![put_entry(observation("o90", PATIENT, "x"))])
        .await?;
    ensure!(
        broadcast["event"].get("context.priorVersionId") == Some(&json!(version)),
        "priorVersionId: {broadcast}"
    );
    ensure!(
        rig.client.context().await? == before,
        "current context changed"
    );
    Ok(())
}
