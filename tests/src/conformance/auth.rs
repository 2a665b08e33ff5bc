//! Checklist items 13, 14, 16, 42, 43 and 93: tokens, scopes and topic binding.

use anyhow::{Context as _, Result, ensure};

use super::assert::{
    event_name, expect_echo, expect_event, expect_marker_next,
    expect_patient_open_subscription_unchanged, item,
};
use super::{Check, Ctx, check};
use crate::client::Reply;
use crate::issuer::TestIssuer;
use crate::payloads::{encounter_open, patient_open, random_topic};
use crate::token::ALL_SCOPES;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(13, c15_13_subscribe_without_valid_token_is_401),
        check!(14, c15_14_subscribe_limited_to_read_scopes),
        check!(16, c15_16_lease_capped_by_token_lifetime),
        check!(42, c15_42_publish_to_unbound_topic_refused),
        check!(43, c15_43_publish_without_write_scope_refused),
        check!(93, c15_93_delivery_limited_to_read_scopes),
    ]
}

/// Asserts `reply` is a 401 with a `WWW-Authenticate: Bearer` challenge.
fn ensure_unauthorized(reply: &Reply, what: &str) -> Result<()> {
    reply.expect_error(401, what)?;
    let challenge = reply
        .headers
        .get("www-authenticate")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    ensure!(
        challenge.to_ascii_lowercase().starts_with("bearer"),
        "{what}: WWW-Authenticate is `{challenge}`"
    );
    Ok(())
}

/// 15.13: subscribing without a token, or with an invalid one, is 401 with
/// `WWW-Authenticate: Bearer`, and creates or changes nothing: with each bad token a new
/// subscribe, a re-subscribe of a live endpoint with other events and an unsubscribe of it
/// are all 401, and the live socket then gets no confirmation or denial: an event only in
/// the refused event set does not reach it, one of its own set does, next. Verified to
/// fail when the hub stops checking the token's audience (`gateway/src/auth/verifier.rs`).
async fn c15_13_subscribe_without_valid_token_is_401(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let mut tokens: Vec<(String, Option<String>)> = vec![("no token".to_owned(), None)];
    tokens.extend(
        TestIssuer::garbage()
            .into_iter()
            .map(|token| (format!("garbage `{:.20}`", token), Some(token))),
    );
    if let Some(issuer) = ctx.tokens().issuer() {
        tokens.extend([
            (
                "expired".to_owned(),
                Some(issuer.expired(&topic, ALL_SCOPES)?),
            ),
            (
                "wrong issuer".to_owned(),
                Some(issuer.wrong_issuer(&topic, ALL_SCOPES)?),
            ),
            (
                "wrong audience".to_owned(),
                Some(issuer.wrong_audience(&topic, ALL_SCOPES)?),
            ),
            (
                "alg none".to_owned(),
                Some(issuer.alg_none(&topic, ALL_SCOPES)?),
            ),
            (
                "HS256 with the public key".to_owned(),
                Some(issuer.hmac(&topic, ALL_SCOPES)?),
            ),
            (
                "foreign key".to_owned(),
                Some(issuer.foreign_key(&topic, ALL_SCOPES)?),
            ),
        ]);
    }
    let owner = ctx.client(&topic).await?;
    let mut live = ctx.subscriber(&owner, "Patient-open").await?;
    let endpoint = live.endpoint().to_owned();
    let anonymous = ctx.anonymous(&topic);
    for (what, token) in tokens {
        let client = anonymous.with_token(token);
        let reply = client.subscribe_with("Patient-open", &[]).await?;
        ensure_unauthorized(&reply, &format!("subscribe, {what}"))?;
        let reply = client
            .subscribe_with("Patient-close", &[("hub.channel.endpoint", &endpoint)])
            .await?;
        ensure_unauthorized(&reply, &format!("re-subscribe of a live endpoint, {what}"))?;
        let reply = client.unsubscribe(&endpoint).await?;
        ensure_unauthorized(&reply, &format!("unsubscribe of a live endpoint, {what}"))?;
    }
    expect_patient_open_subscription_unchanged(
        &owner,
        &mut live,
        "the live subscription changed after refused requests",
    )
    .await
}

/// 15.14: granted events are the requested ones the token can read; none readable → 403.
async fn c15_14_subscribe_limited_to_read_scopes(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let limited = ctx
        .client_scoped(&topic, "fhircast/Patient-open.read fhircast/*.write", 3600)
        .await?;
    let subscriber = ctx
        .subscriber(&limited, "Patient-open,Encounter-open,SyncError")
        .await?;
    let granted = subscriber.confirmation()["hub.events"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ensure!(
        granted == "Patient-open",
        "granted `{granted}`, expected only Patient-open"
    );
    limited
        .subscribe_with("Encounter-open", &[])
        .await?
        .expect_error(403, "subscribe to nothing readable")?;
    Ok(())
}

/// 15.16: the confirmation's lease never outlives the token.
async fn c15_16_lease_capped_by_token_lifetime(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client_scoped(&topic, ALL_SCOPES, 20).await?;
    let subscriber = ctx
        .subscriber_with(&client, "Patient-open", &[("hub.lease_seconds", "7200")])
        .await?;
    let lease = subscriber.confirmation()["hub.lease_seconds"]
        .as_u64()
        .context("no numeric lease")?;
    ensure!(
        (1..=20).contains(&lease),
        "lease {lease} outlives a 20 s token"
    );
    Ok(())
}

/// 15.42: publishing to a topic the token is not bound to is 403, and nothing is delivered.
async fn c15_42_publish_to_unbound_topic_refused(ctx: Ctx) -> Result<()> {
    let (topic, other) = (random_topic(), random_topic());
    let owner = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&owner, "Patient-open").await?;
    let stranger = ctx.client(&other).await?.with_topic(&topic);
    let reply = stranger.publish(&patient_open(&topic, "p42")).await?;
    reply.expect_error(403, "publish with a token for another topic")?;
    let unknown = stranger.with_topic(&random_topic());
    let unknown_reply = unknown
        .publish(&patient_open(unknown.topic(), "p42"))
        .await?;
    ensure!(
        unknown_reply.status == reply.status && unknown_reply.body == reply.body,
        "forbidden and unknown topics answer differently"
    );
    let marker = patient_open(&topic, "p42-marker");
    expect_marker_next(
        &owner,
        &mut subscriber,
        &marker,
        "a refused event was delivered",
    )
    .await?;
    stranger
        .get_context()
        .await?
        .expect_error(403, "get context of another topic")?;
    stranger
        .subscribe_with("Patient-open", &[])
        .await?
        .expect_error(403, "subscribe to another topic")?;
    Ok(())
}

/// 15.43: publishing without the event's write scope is 403 and nothing is broadcast.
async fn c15_43_publish_without_write_scope_refused(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let owner = ctx.client(&topic).await?;
    let mut subscriber = ctx
        .subscriber(&owner, "Patient-open,Encounter-open")
        .await?;
    let reader = ctx
        .client_scoped(
            &topic,
            "fhircast/*.read fhircast/Encounter-open.write",
            3600,
        )
        .await?;
    reader
        .publish(&patient_open(&topic, "p43"))
        .await?
        .expect_error(403, "publish without Patient-open.write")?;
    // The allowed event is the marker: the refused one would have come before it.
    let allowed = encounter_open(&topic, "p43", "e43");
    reader
        .publish_ok(&allowed)
        .await
        .context("publish with Encounter-open.write")?;
    expect_echo(&mut subscriber, &allowed)
        .await
        .context("the refused event was broadcast")?;
    Ok(())
}

/// 15.93: a subscriber with only Patient-open.read receives no Encounter resource: during an
/// Encounter-open it gets a derived Patient-open without the encounter.
async fn c15_93_delivery_limited_to_read_scopes(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let publisher = ctx.client(&topic).await?;
    let reader = ctx
        .client_scoped(&topic, "fhircast/Patient-open.read", 3600)
        .await?;
    let mut subscriber = ctx
        .subscriber(&reader, "Patient-open,Encounter-open")
        .await?;
    publisher
        .publish_ok(&encounter_open(&topic, "p93", "e93"))
        .await?;
    let received = expect_event(&mut subscriber, "Patient-open", None).await?;
    ensure!(
        event_name(&received) == "Patient-open" && item(&received, "encounter").is_none(),
        "encounter leaked: {received}"
    );
    let marker = patient_open(&topic, "p93-marker");
    expect_marker_next(
        &publisher,
        &mut subscriber,
        &marker,
        "something more was delivered for the Encounter-open",
    )
    .await
}
