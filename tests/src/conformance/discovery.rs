//! Checklist items 1–4: the `.well-known/fhircast-configuration` discovery document.

use anyhow::{Result, ensure};
use serde_json::Value;

use super::{Check, Ctx, check};
use crate::payloads::random_topic;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(1, c15_01_discovery_is_json),
        check!(2, c15_02_discovery_lists_events_and_websocket),
        check!(3, c15_03_discovery_has_fhircast_version),
        check!(4, c15_04_discovery_advertises_get_current_context),
    ]
}

/// 15.01: discovery answers 200 with `Content-Type: application/json`, without a token.
async fn c15_01_discovery_is_json(ctx: Ctx) -> Result<()> {
    let reply = ctx.anonymous("discovery").discovery().await?;
    reply.expect(200, "discovery without a token")?;
    ensure!(
        reply.content_type().starts_with("application/json"),
        "content type is `{}`",
        reply.content_type()
    );
    ensure!(
        reply.json()?.is_object(),
        "discovery is not a JSON object: {}",
        reply.body
    );
    Ok(())
}

/// 15.02: `eventsSupported` is an array of names and `websocketSupport` is true.
async fn c15_02_discovery_lists_events_and_websocket(ctx: Ctx) -> Result<()> {
    let discovery = ctx.discovery().await?;
    let events = discovery.get("eventsSupported").and_then(Value::as_array);
    ensure!(
        events.is_some_and(|events| !events.is_empty()),
        "eventsSupported missing or empty: {discovery}"
    );
    let names: Vec<&str> = events
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for required in ["Patient-open", "Patient-close", "SyncError"] {
        ensure!(
            names.iter().any(|name| name.eq_ignore_ascii_case(required)),
            "eventsSupported lacks {required}: {names:?}"
        );
    }
    ensure!(
        discovery.get("websocketSupport") == Some(&Value::Bool(true)),
        "websocketSupport is not true: {discovery}"
    );
    Ok(())
}

/// 15.03: `fhircastVersion` is `"3.0.0"`.
async fn c15_03_discovery_has_fhircast_version(ctx: Ctx) -> Result<()> {
    let discovery = ctx.discovery().await?;
    ensure!(
        discovery.get("fhircastVersion").and_then(Value::as_str) == Some("3.0.0"),
        "fhircastVersion: {discovery}"
    );
    Ok(())
}

/// 15.04: Get Current Context is advertised (both spellings) and actually works.
async fn c15_04_discovery_advertises_get_current_context(ctx: Ctx) -> Result<()> {
    let discovery = ctx.discovery().await?;
    ensure!(
        discovery.pointer("/capabilities/supportsGetCurrentContext") == Some(&Value::Bool(true)),
        "capabilities.supportsGetCurrentContext is not true: {discovery}"
    );
    ensure!(
        discovery.get("getCurrentSupport") == Some(&Value::Bool(true)),
        "getCurrentSupport is not true: {discovery}"
    );
    let topic = random_topic();
    let context = ctx.client(&topic).await?.context().await?;
    ensure!(
        context.get("context.type").is_some(),
        "get current context has no context.type: {context}"
    );
    Ok(())
}
