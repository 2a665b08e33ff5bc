//! Checklist items 66–71: Get Current Context and how opens and closes move it.

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use super::assert::{expect_event, id_of};
use super::{Check, Ctx, check};
use crate::client::HubClient;
use crate::payloads::{patient_close, patient_open, random_topic};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(66, c15_66_empty_context_form),
        check!(67, c15_67_context_after_patient_open),
        check!(68, c15_68_latest_open_is_current),
        check!(69, c15_69_closing_current_leaves_empty),
        check!(70, c15_70_reopen_makes_current_others_stay_open),
        check!(71, c15_71_version_changes_with_context),
    ]
}

fn ensure_empty(context: &Value) -> Result<()> {
    ensure!(
        context["context.type"] == "",
        "context.type is {}",
        context["context.type"]
    );
    ensure!(
        context["context"] == json!([]),
        "context is {}",
        context["context"]
    );
    Ok(())
}

/// Asserts `context` is the Patient context `open` supplied. With content sharing the hub
/// appends one `content` item (§7.2): it must then be an empty collection Bundle, since no
/// update was made; every other item must be exactly as opened.
fn ensure_current(context: &Value, open: &Value) -> Result<()> {
    ensure!(
        context["context.type"] == "Patient",
        "context.type is {}",
        context["context.type"]
    );
    let items = context["context"]
        .as_array()
        .context("context is not an array")?;
    let (content, opened): (Vec<&Value>, Vec<&Value>) =
        items.iter().partition(|item| item["key"] == "content");
    let opened: Vec<Value> = opened.into_iter().cloned().collect();
    ensure!(
        Value::Array(opened) == open["event"]["context"],
        "context {} != opened {}",
        context["context"],
        open["event"]["context"]
    );
    ensure!(content.len() <= 1, "{} content items", content.len());
    if let Some(content) = content.first() {
        let bundle = &content["resource"];
        ensure!(
            bundle["resourceType"] == "Bundle" && bundle["type"] == "collection",
            "content is not a collection Bundle: {bundle}"
        );
        ensure!(
            bundle
                .get("entry")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty),
            "content of an un-updated anchor has entries: {bundle}"
        );
    }
    Ok(())
}

async fn open(client: &HubClient, patient: &str) -> Result<Value> {
    let event = patient_open(client.topic(), patient);
    client.publish_ok(&event).await?;
    Ok(event)
}

/// 15.66: no context → `{"context.type":"","context":[]}` (a `context.versionId` allowed).
async fn c15_66_empty_context_form(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let reply = ctx.client(&topic).await?.get_context().await?;
    reply.expect(200, "get current context")?;
    ensure!(
        reply.content_type().starts_with("application/json"),
        "content type `{}`",
        reply.content_type()
    );
    ensure_empty(&reply.json()?)
}

/// 15.67: after Patient-open(P1) the context is Patient with P1's context array exactly.
async fn c15_67_context_after_patient_open(ctx: Ctx) -> Result<()> {
    let client = ctx.client(&random_topic()).await?;
    let p1 = open(&client, "p67").await?;
    ensure_current(&client.context().await?, &p1)
}

/// 15.68: P1 then P2 → P2.
async fn c15_68_latest_open_is_current(ctx: Ctx) -> Result<()> {
    let client = ctx.client(&random_topic()).await?;
    open(&client, "p68-1").await?;
    let p2 = open(&client, "p68-2").await?;
    ensure_current(&client.context().await?, &p2)
}

/// 15.69: P1, P2, close P2 → empty, not P1.
async fn c15_69_closing_current_leaves_empty(ctx: Ctx) -> Result<()> {
    let client = ctx.client(&random_topic()).await?;
    open(&client, "p69-1").await?;
    open(&client, "p69-2").await?;
    client
        .publish_ok(&patient_close(client.topic(), "p69-2"))
        .await?;
    ensure_empty(&client.context().await?)
}

/// 15.70: P1, P2, P1 → P1 is current and replayed; P2 is still open (after closing P1 a new
/// subscriber gets P2 replayed).
async fn c15_70_reopen_makes_current_others_stay_open(ctx: Ctx) -> Result<()> {
    let client = ctx.client(&random_topic()).await?;
    open(&client, "p70-1").await?;
    let p2 = open(&client, "p70-2").await?;
    let p1_again = open(&client, "p70-1").await?;
    ensure_current(&client.context().await?, &p1_again)?;
    let mut first = ctx.subscriber(&client, "Patient-open").await?;
    expect_event(&mut first, "Patient-open", Some(id_of(&p1_again)))
        .await
        .context("replay after re-opening P1")?;
    client
        .publish_ok(&patient_close(client.topic(), "p70-1"))
        .await?;
    ensure_empty(&client.context().await?).context("closing the current anchor")?;
    let mut second = ctx.subscriber(&client, "Patient-open").await?;
    expect_event(&mut second, "Patient-open", Some(id_of(&p2)))
        .await
        .context("P2 should still be open for replay")?;
    Ok(())
}

/// 15.71: `context.versionId` changes on every change of current context.
async fn c15_71_version_changes_with_context(ctx: Ctx) -> Result<()> {
    let client = ctx.client(&random_topic()).await?;
    let mut versions = Vec::new();
    let mut record = |context: Value| -> Result<()> {
        let version = context["context.versionId"]
            .as_str()
            .context("no context.versionId")?
            .to_owned();
        ensure!(
            !versions.contains(&version),
            "version {version} repeated after a context change ({versions:?})"
        );
        versions.push(version);
        Ok(())
    };
    open(&client, "p71-1").await?;
    record(client.context().await?)?;
    open(&client, "p71-2").await?;
    record(client.context().await?)?;
    open(&client, "p71-1").await?;
    record(client.context().await?)?;
    client
        .publish_ok(&patient_close(client.topic(), "p71-1"))
        .await?;
    let after_close = client.context().await?;
    ensure_empty(&after_close)?;
    if after_close["context.versionId"]
        .as_str()
        .is_some_and(|version| !version.is_empty())
    {
        record(after_close)?;
    }
    Ok(())
}
