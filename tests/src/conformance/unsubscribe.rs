//! Checklist items 29–34: unsubscribe, the denial and close it causes, and the dead endpoint.

use anyhow::{Context as _, Result, ensure};

use super::assert::{ensure_denial, expect_dead_endpoint, expect_denial_then_close};
use super::{Check, Ctx, MSG, check};
use crate::client::endpoint_of;
use crate::payloads::random_topic;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(29, c15_29_unsubscribe_returns_202_with_same_endpoint),
        check!(30, c15_30_unsubscribe_sends_denial),
        check!(31, c15_31_unsubscribe_closes_socket),
        check!(32, c15_32_unsubscribed_endpoint_is_dead),
        check!(33, c15_33_bad_unsubscribe_is_4xx_with_text),
        check!(34, c15_34_unsubscribe_endpoint_is_trimmed),
    ]
}

/// 15.29: unsubscribe answers 202 with `{"hub.channel.endpoint": <same url>}`.
async fn c15_29_unsubscribe_returns_202_with_same_endpoint(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let subscriber = ctx.subscriber(&client, "Patient-open").await?;
    let reply = client.unsubscribe(subscriber.endpoint()).await?;
    reply.expect(202, "unsubscribe")?;
    ensure!(
        endpoint_of(&reply)? == subscriber.endpoint(),
        "unsubscribe answered another endpoint: {}",
        reply.body
    );
    Ok(())
}

/// 15.30: after unsubscribe the socket receives a denial naming the topic and events.
async fn c15_30_unsubscribe_sends_denial(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx
        .subscriber(&client, "Patient-open,Patient-close")
        .await?;
    client
        .unsubscribe(subscriber.endpoint())
        .await?
        .expect(202, "unsubscribe")?;
    let denial = subscriber
        .next_message(MSG)
        .await
        .context("waiting for the denial")?;
    ensure_denial(&denial, &topic)?;
    ensure!(
        denial["hub.events"] == "Patient-open,Patient-close",
        "denial lists events {}",
        denial["hub.events"]
    );
    Ok(())
}

/// 15.31: after the denial the hub closes the socket (1000).
async fn c15_31_unsubscribe_closes_socket(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    client
        .unsubscribe(subscriber.endpoint())
        .await?
        .expect(202, "unsubscribe")?;
    expect_denial_then_close(&mut subscriber, &topic, MSG).await?;
    Ok(())
}

/// 15.32: the old endpoint is dead after unsubscribe: a reconnect is refused (or denied and
/// closed); a second unsubscribe may answer 2xx or 404 but revives nothing; a re-subscribe
/// naming it is 4xx and revives nothing; a new subscribe returns a different endpoint.
async fn c15_32_unsubscribed_endpoint_is_dead(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    let endpoint = subscriber.endpoint().to_owned();
    client
        .unsubscribe(&endpoint)
        .await?
        .expect(202, "unsubscribe")?;
    expect_denial_then_close(&mut subscriber, &topic, MSG).await?;
    expect_dead_endpoint(&endpoint, &topic, "reconnecting after unsubscribe").await?;
    let again = client.unsubscribe(&endpoint).await?;
    ensure!(
        (200..300).contains(&again.status) || again.status == 404,
        "second unsubscribe: expected 2xx or 404, got {} `{}`",
        again.status,
        again.body
    );
    expect_dead_endpoint(&endpoint, &topic, "reconnecting after a second unsubscribe").await?;
    client
        .subscribe_with("Patient-open", &[("hub.channel.endpoint", &endpoint)])
        .await?
        .expect_client_error("re-subscribe of a dead endpoint")?;
    expect_dead_endpoint(&endpoint, &topic, "reconnecting after a re-subscribe").await?;
    let fresh = client.subscribe("Patient-open").await?;
    ensure!(
        fresh != endpoint,
        "a new subscribe reused the dead endpoint"
    );
    Ok(())
}

/// 15.33: an unsubscribe for an unknown endpoint, or without one, is 4xx with a text reason.
async fn c15_33_bad_unsubscribe_is_4xx_with_text(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let known = client.subscribe("Patient-open").await?;
    let unknown = format!(
        "{}/{}",
        known.rsplit_once('/').map_or("", |(base, _)| base),
        random_topic()
    );
    client
        .unsubscribe(&unknown)
        .await?
        .expect_error(404, "unsubscribe of an unknown endpoint")?;
    client
        .post_form(&[
            ("hub.channel.type", "websocket"),
            ("hub.mode", "unsubscribe"),
            ("hub.topic", &topic),
        ])
        .await?
        .expect_client_error("unsubscribe without an endpoint")?;
    Ok(())
}

/// 15.34: the endpoint is compared after trimming whitespace; a trailing `%0A` still matches.
async fn c15_34_unsubscribe_endpoint_is_trimmed(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    let padded = format!(" {}\n", subscriber.endpoint());
    let reply = client.unsubscribe(&padded).await?;
    reply.expect(202, "unsubscribe with surrounding whitespace")?;
    expect_denial_then_close(&mut subscriber, &topic, MSG).await?;
    Ok(())
}
