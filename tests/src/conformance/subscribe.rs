//! Checklist items 6, 8–12, 17–19: the subscribe request, its errors, event-list handling and
//! re-subscription.

use anyhow::{Context as _, Result, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::assert::{event_name, expect_echo, expect_event};
use super::{Check, Ctx, MSG, SILENCE, check};
use crate::client::endpoint_of;
use crate::payloads::{patient_close, patient_open, random_topic};
use crate::subscriber::Subscriber;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(6, c15_06_subscribe_returns_202_with_endpoint),
        check!(8, c15_08_endpoints_are_distinct_and_unguessable),
        check!(9, c15_09_subscribe_without_channel_type_is_4xx),
        check!(10, c15_10_subscribe_webhook_channel_is_4xx),
        check!(11, c15_11_subscribe_missing_or_malformed_parameter_is_4xx),
        check!(12, c15_12_subscribe_errors_have_text_reason),
        check!(17, c15_17_duplicate_events_collapse),
        check!(18, c15_18_event_names_are_case_insensitive),
        check!(19, c15_19_resubscribe_replaces_events),
    ]
}

/// 15.06: a valid form subscribe answers 202 with JSON `hub.channel.endpoint`, which attaches.
async fn c15_06_subscribe_returns_202_with_endpoint(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let reply = client.subscribe_with("Patient-open", &[]).await?;
    reply.expect(202, "subscribe")?;
    ensure!(
        reply.content_type().starts_with("application/json"),
        "content type `{}`",
        reply.content_type()
    );
    let endpoint = endpoint_of(&reply)?;
    ensure!(
        endpoint.starts_with("ws://") || endpoint.starts_with("wss://"),
        "endpoint `{endpoint}` is not a WebSocket URL"
    );
    let subscriber = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    ensure!(
        subscriber.confirmation()["hub.topic"] == topic.as_str(),
        "confirmation for another topic"
    );
    Ok(())
}

/// 15.08: two subscriptions get different endpoints whose ids carry ≥ 122 random bits.
async fn c15_08_endpoints_are_distinct_and_unguessable(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let first = client.subscribe("Patient-open").await?;
    let second = client.subscribe("Patient-open").await?;
    ensure!(first != second, "two subscriptions share endpoint {first}");
    for endpoint in [&first, &second] {
        let id = endpoint.rsplit('/').next().unwrap_or_default();
        let bits = URL_SAFE_NO_PAD
            .decode(id)
            .map(|bytes| bytes.len() * 8)
            .unwrap_or_else(|_| id.chars().filter(char::is_ascii_hexdigit).count() * 4);
        ensure!(bits >= 122, "endpoint id `{id}` carries only {bits} bits");
    }
    Ok(())
}

/// 15.09: no `hub.channel.type` → 4xx, and nothing was subscribed.
async fn c15_09_subscribe_without_channel_type_is_4xx(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let reply = client
        .post_form(&[
            ("hub.mode", "subscribe"),
            ("hub.topic", &topic),
            ("hub.events", "Patient-open"),
        ])
        .await?;
    reply.expect_client_error("subscribe without hub.channel.type")?;
    ensure!(
        reply
            .json()
            .ok()
            .and_then(|json| json.get("hub.channel.endpoint").cloned())
            .is_none(),
        "an endpoint was returned"
    );
    Ok(())
}

/// 15.10: `hub.channel.type=webhook` → 4xx.
async fn c15_10_subscribe_webhook_channel_is_4xx(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let reply = client
        .post_form(&[
            ("hub.channel.type", "webhook"),
            ("hub.callback", "http://127.0.0.1:9/callback"),
            ("hub.mode", "subscribe"),
            ("hub.topic", &topic),
            ("hub.events", "Patient-open"),
        ])
        .await?;
    reply.expect_client_error("webhook subscribe")?;
    Ok(())
}

/// 15.11: each missing or malformed required parameter → 4xx, never 2xx.
async fn c15_11_subscribe_missing_or_malformed_parameter_is_4xx(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "no hub.topic",
            vec![
                ("hub.channel.type", "websocket"),
                ("hub.mode", "subscribe"),
                ("hub.events", "Patient-open"),
            ],
        ),
        (
            "no hub.events",
            vec![
                ("hub.channel.type", "websocket"),
                ("hub.mode", "subscribe"),
                ("hub.topic", &topic),
            ],
        ),
        (
            "no hub.mode",
            vec![
                ("hub.channel.type", "websocket"),
                ("hub.topic", &topic),
                ("hub.events", "Patient-open"),
            ],
        ),
        (
            "bad hub.mode",
            vec![
                ("hub.channel.type", "websocket"),
                ("hub.mode", "publish"),
                ("hub.topic", &topic),
                ("hub.events", "Patient-open"),
            ],
        ),
        (
            "empty hub.events",
            vec![
                ("hub.channel.type", "websocket"),
                ("hub.mode", "subscribe"),
                ("hub.topic", &topic),
                ("hub.events", ""),
            ],
        ),
        (
            "unknown event",
            vec![
                ("hub.channel.type", "websocket"),
                ("hub.mode", "subscribe"),
                ("hub.topic", &topic),
                ("hub.events", "Nonsense-explode"),
            ],
        ),
    ];
    for (what, params) in cases {
        let reply = client.post_form(&params).await?;
        ensure!(
            (400..600).contains(&reply.status),
            "{what}: got {} `{}`",
            reply.status,
            reply.body
        );
        reply.expect_client_error(what)?;
    }
    Ok(())
}

/// 15.12: subscribe errors carry a human-readable text body.
async fn c15_12_subscribe_errors_have_text_reason(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let replies = [
        client.subscribe_with("", &[]).await?,
        client
            .subscribe_with("Patient-open", &[("hub.lease_seconds", "soon")])
            .await?,
        client
            .post_form(&[
                ("hub.channel.type", "carrier-pigeon"),
                ("hub.mode", "subscribe"),
                ("hub.topic", &topic),
                ("hub.events", "Patient-open"),
            ])
            .await?,
    ];
    for reply in &replies {
        reply.expect_client_error("subscribe error")?;
        ensure!(
            reply.body.chars().any(char::is_alphabetic),
            "reason `{}` is not human-readable",
            reply.body
        );
    }
    Ok(())
}

/// 15.17: `Patient-open,Patient-open` is one subscription; one notification per event.
async fn c15_17_duplicate_events_collapse(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open,Patient-open").await?;
    let events = subscriber.confirmation()["hub.events"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(
        events == "Patient-open",
        "confirmation hub.events is `{events}`"
    );
    let open = patient_open(&topic, "p17");
    client.publish_ok(&open).await?;
    expect_echo(&mut subscriber, &open).await?;
    subscriber
        .expect_silence(SILENCE)
        .await
        .context("a duplicate notification arrived")
}

/// 15.18: subscribing to `patient-OPEN` receives `Patient-open`.
async fn c15_18_event_names_are_case_insensitive(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "patient-OPEN").await?;
    let events = subscriber.confirmation()["hub.events"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(
        events == "Patient-open",
        "confirmation lists `{events}`, expected the canonical Patient-open"
    );
    let open = patient_open(&topic, "p18");
    client.publish_ok(&open).await?;
    let received = expect_echo(&mut subscriber, &open).await?;
    ensure!(
        event_name(&received) == "Patient-open",
        "delivered as {}",
        event_name(&received)
    );
    Ok(())
}

/// 15.19: re-subscribing the same endpoint with other events replaces the event list.
async fn c15_19_resubscribe_replaces_events(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx
        .subscriber(&client, "Patient-open,Patient-close")
        .await?;
    let endpoint = subscriber.endpoint().to_owned();
    let reply = client
        .subscribe_with("Patient-close", &[("hub.channel.endpoint", &endpoint)])
        .await?;
    reply.expect(202, "re-subscribe")?;
    ensure!(
        endpoint_of(&reply)? == endpoint,
        "re-subscribe returned another endpoint"
    );
    let confirmation = subscriber
        .next_message(MSG)
        .await
        .context("fresh confirmation after re-subscribe")?;
    ensure!(
        confirmation["hub.mode"] == "subscribe",
        "expected a confirmation, got {confirmation}"
    );
    ensure!(
        confirmation["hub.events"] == "Patient-close",
        "fresh confirmation lists {}",
        confirmation["hub.events"]
    );
    client.publish_ok(&patient_open(&topic, "p19")).await?;
    let close = patient_close(&topic, "p19");
    client.publish_ok(&close).await?;
    // The old-only Patient-open must not arrive before the Patient-close.
    expect_event(
        &mut subscriber,
        "Patient-close",
        Some(super::assert::id_of(&close)),
    )
    .await?;
    subscriber.expect_silence(SILENCE).await?;
    Ok(())
}
