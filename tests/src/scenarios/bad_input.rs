//! Bad input (the INP items of docs/security.md, plus garbage tokens and socket acks):
//! every case is answered with the documented 4xx and a text reason, changes no state, and
//! leaves the gateway alive and serving (see [`Stage::finish`]).

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use super::{Stage, refused};
use crate::payloads::{envelope, patient, patient_open, resource_item};

const LIMIT: usize = 256 * 1024;

fn standard_form(topic: &str) -> Vec<(&'static str, String)> {
    vec![
        ("hub.channel.type", "websocket".to_owned()),
        ("hub.mode", "subscribe".to_owned()),
        ("hub.topic", topic.to_owned()),
        ("hub.events", "Patient-open".to_owned()),
    ]
}

async fn post_form(stage: &Stage, params: &[(&str, String)]) -> Result<crate::client::Reply> {
    let borrowed: Vec<(&str, &str)> = params
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    stage.client.post_form(&borrowed).await
}

async fn post_json_text(stage: &Stage, body: String) -> Result<crate::client::Reply> {
    stage.client.post_raw(Some("application/json"), body).await
}

/// Pads a serialized event with trailing whitespace to exactly `size` bytes.
fn padded(event: &Value, size: usize) -> Result<String> {
    let mut body = serde_json::to_string(event)?;
    ensure!(body.len() <= size, "event already larger than {size}");
    body.push_str(&" ".repeat(size - body.len()));
    Ok(body)
}

#[tokio::test]
async fn inp_01_body_one_byte_over_limit_is_413() -> Result<()> {
    let stage = Stage::start().await?;
    let body = padded(&patient_open(stage.topic(), "p-big"), LIMIT + 1)?;
    refused(
        &post_json_text(&stage, body).await?,
        413,
        "event body of 256 KiB + 1",
    )?;
    let form = format!(
        "hub.channel.type=websocket&hub.mode=subscribe&hub.topic={}&hub.events=Patient-open&pad=",
        stage.topic()
    );
    let form = format!("{form}{}", "x".repeat(LIMIT + 1 - form.len()));
    refused(
        &stage
            .client
            .post_raw(Some("application/x-www-form-urlencoded"), form)
            .await?,
        413,
        "form body of 256 KiB + 1",
    )?;
    stage.finish().await
}

/// Builds a Patient-open whose patient carries `depth - 5` nested arrays (total depth `depth`).
pub(super) fn deep_event(topic: &str, depth: usize) -> String {
    let nested = format!("{}{}", "[".repeat(depth - 5), "]".repeat(depth - 5));
    let event = patient_open(topic, "p-deep");
    let text = serde_json::to_string(&event).unwrap_or_default();
    text.replacen(
        "\"resourceType\":\"Patient\"",
        &format!("\"resourceType\":\"Patient\",\"x\":{nested}"),
        1,
    )
}

#[tokio::test]
async fn inp_02_json_depth_65_is_400() -> Result<()> {
    let stage = Stage::start().await?;
    refused(
        &post_json_text(&stage, deep_event(stage.topic(), 65)).await?,
        400,
        "JSON depth 65",
    )?;
    stage.finish().await
}

#[tokio::test]
async fn inp_02_json_depth_100000_is_400() -> Result<()> {
    let stage = Stage::start().await?;
    refused(
        &post_json_text(&stage, deep_event(stage.topic(), 100_000)).await?,
        400,
        "JSON depth 100000",
    )?;
    refused(
        &post_json_text(&stage, "[".repeat(100_000)).await?,
        400,
        "100000 open brackets",
    )?;
    stage.finish().await
}

#[tokio::test]
async fn inp_03_duplicate_json_keys_are_400() -> Result<()> {
    let stage = Stage::start().await?;
    let text = serde_json::to_string(&patient_open(stage.topic(), "p-dup"))?;
    let cases = [
        (
            "two hub.topic",
            text.replacen(
                "\"hub.topic\":",
                "\"hub.topic\":\"other-topic-0123456789\",\"hub.topic\":",
                1,
            ),
        ),
        (
            "two id",
            text.replacen("\"id\":", "\"id\":\"first\",\"id\":", 1),
        ),
        (
            "two hub.event",
            text.replacen(
                "\"hub.event\":",
                "\"hub.event\":\"Patient-close\",\"hub.event\":",
                1,
            ),
        ),
    ];
    for (what, body) in cases {
        refused(&post_json_text(&stage, body).await?, 400, what)?;
    }
    let subscribe = format!(
        "{{\"hub.channel.type\":\"websocket\",\"hub.mode\":\"subscribe\",\"hub.topic\":\"{0}\",\"hub.topic\":\"{0}\",\"hub.events\":\"Patient-open\"}}",
        stage.topic()
    );
    refused(
        &post_json_text(&stage, subscribe).await?,
        400,
        "JSON subscribe with two hub.topic",
    )?;
    stage.finish().await
}

#[tokio::test]
async fn inp_04_duplicate_form_parameter_is_400() -> Result<()> {
    let stage = Stage::start().await?;
    for duplicated in ["hub.topic", "hub.events", "hub.mode", "hub.channel.type"] {
        let mut form = standard_form(stage.topic());
        let value = form
            .iter()
            .find(|(key, _)| *key == duplicated)
            .map(|(_, value)| value.clone())
            .unwrap_or_default();
        form.push((duplicated, value));
        refused(
            &post_form(&stage, &form).await?,
            400,
            &format!("duplicate {duplicated}"),
        )?;
    }
    let mut form = standard_form(stage.topic());
    form.push(("hub.lease_seconds", "60".to_owned()));
    form.push(("hub.lease_seconds", "60".to_owned()));
    refused(
        &post_form(&stage, &form).await?,
        400,
        "duplicate hub.lease_seconds",
    )?;
    stage.finish().await
}

#[tokio::test]
async fn inp_05_wrong_content_type_is_415() -> Result<()> {
    let stage = Stage::start().await?;
    let body = serde_json::to_string(&patient_open(stage.topic(), "p-ct"))?;
    for content_type in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/jsonx",
    ] {
        refused(
            &stage
                .client
                .post_raw(Some(content_type), body.clone())
                .await?,
            415,
            content_type,
        )?;
    }
    refused(
        &stage.client.post_raw(None, body).await?,
        415,
        "no content type",
    )?;
    stage.finish().await
}

#[tokio::test]
async fn inp_05_malformed_bodies_are_400() -> Result<()> {
    let stage = Stage::start().await?;
    let text = serde_json::to_string(&patient_open(stage.topic(), "p-broken"))?;
    let cases = [
        ("truncated JSON", text[..text.len() / 2].to_owned()),
        ("trailing garbage", format!("{text} trailing")),
        ("JSON array", "[]".to_owned()),
        ("neither hub.mode nor event", "{\"foo\":1}".to_owned()),
        (
            "string event",
            "{\"timestamp\":\"x\",\"id\":\"y\",\"event\":\"Patient-open\"}".to_owned(),
        ),
    ];
    for (what, body) in cases {
        refused(&post_json_text(&stage, body).await?, 400, what)?;
    }
    let form = "application/x-www-form-urlencoded";
    for (what, body) in [
        ("bad percent-encoding", "hub.mode=%zz&hub.topic=%"),
        (
            "no channel type",
            "hub.mode=subscribe&hub.events=Patient-open",
        ),
    ] {
        refused(
            &stage
                .client
                .post_raw(
                    Some(form),
                    body.replace(
                        "hub.mode=subscribe",
                        &format!("hub.mode=subscribe&hub.topic={}", stage.topic()),
                    ),
                )
                .await?,
            400,
            what,
        )?;
    }
    stage.finish().await
}

#[tokio::test]
async fn inp_06_more_than_64_events_is_400() -> Result<()> {
    let stage = Stage::start().await?;
    let names: Vec<String> = (0..65).map(|n| format!("org.example.event_{n}")).collect();
    let mut form = standard_form(stage.topic());
    form[3].1 = names.join(",");
    refused(&post_form(&stage, &form).await?, 400, "65 events")?;
    form[3].1 = names[..64].join(",");
    let reply = post_form(&stage, &form).await?;
    reply.expect(202, "64 events")?;
    stage.finish().await
}

#[tokio::test]
async fn inp_07_invalid_utf8_and_lone_surrogates_are_400() -> Result<()> {
    let stage = Stage::start().await?;
    let text = serde_json::to_string(&patient_open(stage.topic(), "p-utf8"))?;
    let mut bytes = text.replacen("p-utf8", "p-\u{fffd}", 1).into_bytes();
    let at = bytes
        .windows(3)
        .position(|w| w == [0xEF, 0xBF, 0xBD])
        .context("marker")?;
    bytes.splice(at..at + 3, [0xFF, 0xFE]);
    refused(
        &stage
            .client
            .post_raw(Some("application/json"), bytes)
            .await?,
        400,
        "invalid UTF-8",
    )?;
    refused(
        &post_json_text(&stage, text.replacen("p-utf8", "p-\\uD800", 1)).await?,
        400,
        "lone surrogate",
    )?;
    stage.finish().await
}

#[tokio::test]
async fn inp_08_bad_lease_seconds_are_400() -> Result<()> {
    let stage = Stage::start().await?;
    for lease in ["-1", "0", "1.5", "1e309", "18446744073709551616", "abc", ""] {
        let mut form = standard_form(stage.topic());
        form.push(("hub.lease_seconds", lease.to_owned()));
        refused(
            &post_form(&stage, &form).await?,
            400,
            &format!("hub.lease_seconds={lease}"),
        )?;
    }
    stage.finish().await
}

#[tokio::test]
async fn inp_09_event_names_outside_the_grammar_are_400() -> Result<()> {
    let stage = Stage::start().await?;
    for name in [
        "org.example.my-event",
        "Nonsense-open",
        "Patient-opened",
        "Patient",
        "*",
    ] {
        let event = envelope(
            stage.topic(),
            name,
            vec![resource_item("patient", patient("p-name"))],
        );
        refused(
            &stage.client.publish(&event).await?,
            400,
            &format!("publish {name}"),
        )?;
        let mut form = standard_form(stage.topic());
        form[3].1 = name.to_owned();
        refused(
            &post_form(&stage, &form).await?,
            400,
            &format!("subscribe {name}"),
        )?;
    }
    stage.finish().await
}

#[tokio::test]
async fn inp_10_bad_context_is_400() -> Result<()> {
    let stage = Stage::start().await?;
    let topic = stage.topic().to_owned();
    let too_many: Vec<Value> = (0..33)
        .map(|n| json!({"key": "extension", "data": {"n": n}}))
        .collect();
    let mut with_too_many = vec![resource_item("patient", patient("p-ctx"))];
    with_too_many.extend(too_many);
    let cases = [
        (
            "upper-case key",
            envelope(
                &topic,
                "Patient-open",
                vec![resource_item("PATIENT", patient("p-ctx"))],
            ),
        ),
        (
            "wrong-case key",
            envelope(
                &topic,
                "Patient-open",
                vec![resource_item("Patient", patient("p-ctx"))],
            ),
        ),
        ("missing patient", envelope(&topic, "Patient-open", vec![])),
        (
            "undefined key",
            envelope(
                &topic,
                "Patient-open",
                vec![
                    resource_item("patient", patient("p-ctx")),
                    resource_item("bogus", patient("p-x")),
                ],
            ),
        ),
        (
            "anchor without id",
            envelope(
                &topic,
                "Patient-open",
                vec![resource_item("patient", json!({"resourceType": "Patient"}))],
            ),
        ),
        (
            "33 context items",
            envelope(&topic, "Patient-open", with_too_many),
        ),
        (
            "context not an array",
            json!({"timestamp": "2024-01-01T00:00:00Z", "id": "x", "event": {"hub.topic": topic, "hub.event": "Patient-open", "context": {}}}),
        ),
    ];
    for (what, event) in cases {
        refused(&stage.client.publish(&event).await?, 400, what)?;
    }
    stage.finish().await
}
