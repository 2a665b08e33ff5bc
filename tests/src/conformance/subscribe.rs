//! Checklist items 6, 8–12, 17–19: the subscribe request, its errors, event-list handling and
//! re-subscription.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result, ensure};

use super::assert::{
    event_name, expect_echo, expect_event, expect_marker_next,
    expect_patient_open_subscription_unchanged,
};
use super::{Check, Ctx, MSG, check};
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

/// How many endpoints 15.08 samples (spread over [`SAMPLE_TOPICS`] topics: the hub lets one
/// client hold 16 subscriptions per topic).
const ENDPOINT_SAMPLE: usize = 48;
/// How many topics 15.08 spreads its sample over.
const SAMPLE_TOPICS: usize = 3;
/// The randomness an endpoint id must carry (a UUIDv4 has 122 random bits).
const MIN_ENDPOINT_BITS: f64 = 122.0;
/// The most characters two sampled ids may share after the prefix common to all of them.
const MAX_SHARED_PREFIX: usize = 8;

/// 15.08: endpoints are distinct and unguessable: 48 subscriptions get 48 different
/// endpoints whose ids (last path segment) carry an estimated ≥ 122 random bits (see
/// [`estimated_bits`]) and share no long prefix. Verified to fail when endpoint ids
/// keep only 15 random characters, zero-padded to 43 (`EndpointId::generate` in
/// `proto/src/ids.rs`), which an id-length check accepts.
async fn c15_08_endpoints_are_distinct_and_unguessable(ctx: Ctx) -> Result<()> {
    let mut endpoints = Vec::with_capacity(ENDPOINT_SAMPLE);
    for _ in 0..SAMPLE_TOPICS {
        let topic = random_topic();
        let client = ctx.client(&topic).await?;
        for _ in 0..ENDPOINT_SAMPLE / SAMPLE_TOPICS {
            endpoints.push(client.subscribe("Patient-open").await?);
        }
    }
    let distinct: BTreeSet<&String> = endpoints.iter().collect();
    ensure!(
        distinct.len() == endpoints.len(),
        "{} subscriptions got only {} distinct endpoints",
        endpoints.len(),
        distinct.len()
    );
    let ids: Vec<&str> = endpoints
        .iter()
        .map(|endpoint| endpoint.rsplit('/').next().unwrap_or_default())
        .collect();
    let bits = estimated_bits(&ids);
    ensure!(
        bits >= MIN_ENDPOINT_BITS,
        "endpoint ids carry an estimated {bits:.1} random bits (at least {MIN_ENDPOINT_BITS} \
         needed), e.g. {:?}",
        &ids[..3]
    );
    let shared = longest_shared_prefix(&ids);
    ensure!(
        shared <= MAX_SHARED_PREFIX,
        "two endpoint ids share {shared} characters beyond their common prefix: {ids:?}"
    );
    Ok(())
}

/// Estimates the random bits of a sample of ids, position by position: a position whose
/// character never changes adds 0 bits; one whose distinct values cover at least half of
/// its alphabet adds log2 of the alphabet's size (hex: 16, base64url: 64, else the
/// characters seen anywhere in the sample); any other adds log2 of its distinct values.
pub(crate) fn estimated_bits(ids: &[&str]) -> f64 {
    let columns: Vec<Vec<char>> = ids.iter().map(|id| id.chars().collect()).collect();
    let observed: BTreeSet<char> = columns.iter().flatten().copied().collect();
    let width = columns.iter().map(Vec::len).max().unwrap_or_default();
    let mut bits = 0.0;
    for position in 0..width {
        let values: BTreeSet<char> = columns
            .iter()
            .filter_map(|id| id.get(position).copied())
            .collect();
        if values.len() <= 1 {
            continue;
        }
        let is_hex = values.iter().all(char::is_ascii_hexdigit)
            && (values.iter().all(|c| !c.is_ascii_uppercase())
                || values.iter().all(|c| !c.is_ascii_lowercase()));
        let is_base64url = values
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_');
        let alphabet = if is_hex {
            16
        } else if is_base64url {
            64
        } else {
            observed.len()
        };
        let distinct = values.len();
        let symbols = if distinct * 2 >= alphabet {
            alphabet
        } else {
            distinct
        };
        bits += (symbols as f64).log2();
    }
    bits
}

/// Returns the longest prefix two ids share, not counting the prefix all of them share.
fn longest_shared_prefix(ids: &[&str]) -> usize {
    let common = |a: &str, b: &str| a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let all = ids
        .iter()
        .map(|id| common(ids[0], id))
        .min()
        .unwrap_or_default();
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted
        .windows(2)
        .map(|pair| common(pair[0], pair[1]).saturating_sub(all))
        .max()
        .unwrap_or_default()
}

/// 15.09: no `hub.channel.type` → 4xx, and nothing was subscribed: a subscribe without it
/// that names an existing, connected endpoint with other events is refused and leaves that
/// subscription as it was (no new confirmation; an event only in the refused set does not
/// reach it, one of its own set does, next). Verified to fail when the hub reads a missing
/// `hub.channel.type` as `websocket` (`proto/src/subscription.rs`).
async fn c15_09_subscribe_without_channel_type_is_4xx(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    let endpoint = subscriber.endpoint().to_owned();
    for extra in [vec![], vec![("hub.channel.endpoint", endpoint.as_str())]] {
        let mut params = vec![
            ("hub.mode", "subscribe"),
            ("hub.topic", topic.as_str()),
            ("hub.events", "Patient-close"),
        ];
        params.extend(extra);
        let reply = client.post_form(&params).await?;
        reply.expect_client_error("subscribe without hub.channel.type")?;
        ensure!(
            reply
                .json()
                .ok()
                .and_then(|json| json.get("hub.channel.endpoint").cloned())
                .is_none(),
            "an endpoint was returned"
        );
    }
    expect_patient_open_subscription_unchanged(
        &client,
        &mut subscriber,
        "the subscription named by the refused subscribe changed",
    )
    .await
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
    let marker = patient_open(&topic, "p17-marker");
    expect_marker_next(
        &client,
        &mut subscriber,
        &marker,
        "a duplicate notification arrived",
    )
    .await
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
    // The old-only Patient-open must not arrive before the Patient-close (the marker).
    expect_event(
        &mut subscriber,
        "Patient-close",
        Some(super::assert::id_of(&close)),
    )
    .await
    .context("the replaced event list still applies")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(ids: &[String]) -> f64 {
        estimated_bits(&ids.iter().map(String::as_str).collect::<Vec<_>>())
    }

    #[test]
    fn uuid_v4_samples_reach_122_bits() {
        for _ in 0..20 {
            let ids: Vec<String> = (0..ENDPOINT_SAMPLE)
                .map(|_| uuid::Uuid::new_v4().to_string())
                .collect();
            let bits = estimate(&ids);
            assert!((MIN_ENDPOINT_BITS..=122.5).contains(&bits), "{bits}");
        }
    }

    #[test]
    fn base64url_ids_of_32_random_bytes_pass_easily() {
        let ids: Vec<String> = (0..ENDPOINT_SAMPLE).map(|_| random_topic()).collect();
        assert!(estimate(&ids) > 200.0);
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert!(longest_shared_prefix(&refs) <= MAX_SHARED_PREFIX);
    }

    #[test]
    fn sequential_counters_fail() {
        for (start, format) in [(0_u64, 0), (1 << 40, 1), (u64::MAX - 100, 2)] {
            let ids: Vec<String> = (start..start + ENDPOINT_SAMPLE as u64)
                .map(|n| match format {
                    0 => format!("{n:032x}"),
                    1 => format!("ep-{n:020}"),
                    _ => uuid::Uuid::from_u128(u128::from(n) << 64 | 0x4000_8000).to_string(),
                })
                .collect();
            assert!(estimate(&ids) < 16.0, "{ids:?}");
        }
    }

    #[test]
    fn a_constant_id_fails() {
        let ids = vec![random_topic(); ENDPOINT_SAMPLE];
        assert_eq!(estimate(&ids), 0.0);
    }

    #[test]
    fn shared_prefixes_beyond_the_common_one_are_found() {
        let ids = ["ep-aaaaaaaaaaaa1", "ep-aaaaaaaaaaaa2", "ep-b"];
        assert_eq!(longest_shared_prefix(&ids), 12);
        assert_eq!(longest_shared_prefix(&["ep-x1", "ep-y2", "ep-z3"]), 0);
    }
}
