//! Several issuers and opaque tokens, across processes (TOK-01, TOK-04, TOK-08, TOK-18).
//!
//! A gateway trusting two test issuers through an issuers file accepts each one's tokens on
//! the same topic and refuses a token one issuer signs in the other's name. A gateway whose
//! issuer introspects accepts its opaque tokens, asks the endpoint once per cache period,
//! refuses a revoked token within that period, and refuses with 503 (never accepts) while
//! the endpoint is down. A list mixing algorithm families stops the start.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use serde_json::json;

use super::MSG;
use crate::client::HubClient;
use crate::conformance::assert::expect_event;
use crate::eventually::eventually;
use crate::gateway::GatewayBuilder;
use crate::issuer::TestIssuer;
use crate::payloads::{patient_open, random_topic};
use crate::scratch::Scratch;
use crate::subscriber::Subscriber;
use crate::token::ALL_SCOPES;

/// How long the introspecting gateway reuses an answer.
const CACHE_SECONDS: u64 = 1;

#[tokio::test]
async fn tok_08_two_issuers_are_each_accepted_and_cannot_speak_for_each_other() -> Result<()> {
    let (a, b) = (TestIssuer::start().await?, TestIssuer::start().await?);
    let scratch = Scratch::new("issuers")?;
    // A's JWKS named, B's found through its SMART configuration.
    let file = scratch.write(
        "issuers.json",
        &json!({"issuers": [
            {"issuer": a.issuer(), "jwks_url": a.jwks_url(), "algorithms": ["ES256"]},
            {"issuer": b.issuer(), "algorithms": ["ES256", "ES384"]},
        ]})
        .to_string(),
    )?;
    let gateway = GatewayBuilder::new().issuers_file(&file).start().await?;
    let topic = random_topic();
    let hub = HubClient::new(&gateway.hub_url(), &topic, None);
    let from_a = hub.with_token(Some(a.mint(&topic, ALL_SCOPES, 3600)?));
    let from_b = hub.with_token(Some(b.mint(&topic, ALL_SCOPES, 3600)?));

    let endpoint = from_a.subscribe("Patient-open").await?;
    let mut subscriber = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    let event = patient_open(&topic, "p-two-issuers");
    from_b.publish_ok(&event).await?;
    expect_event(&mut subscriber, "Patient-open", event["id"].as_str())
        .await
        .context("A's subscriber sees B's event")?;

    let forged = a.sign(&b.claims(&topic, ALL_SCOPES, 3600))?;
    let stranger = TestIssuer::start().await?;
    for (what, token, reason) in [
        (
            "A's signature, B's iss",
            forged,
            "token signing key is unknown",
        ),
        (
            "an issuer nobody trusts",
            stranger.mint(&topic, ALL_SCOPES, 3600)?,
            "token issuer is not accepted",
        ),
    ] {
        let reply = hub.with_token(Some(token)).get_context().await?;
        reply.expect_error(401, what)?;
        ensure!(reply.body.contains(reason), "{what}: `{}`", reply.body);
    }
    from_b
        .get_context()
        .await?
        .expect(200, "B still accepted")?;
    drop(subscriber);
    gateway.stop().await
}

#[tokio::test]
async fn tok_18_opaque_tokens_are_introspected_cached_revoked_and_fail_closed() -> Result<()> {
    let issuer = TestIssuer::start().await?;
    let scratch = Scratch::new("introspection")?;
    let secret = scratch.write("secret", &format!("{}\n", issuer.introspection_secret()))?;
    let gateway = GatewayBuilder::new()
        .issuer_discovered(&issuer)
        .introspection(&secret, CACHE_SECONDS)
        .start()
        .await?;
    let topic = random_topic();
    let hub = HubClient::new(&gateway.hub_url(), &topic, None);

    // An opaque token works like a JWT, and a JWT never reaches the endpoint.
    let token = issuer.mint_opaque(&topic, ALL_SCOPES, 3600);
    let opaque = hub.with_token(Some(token.clone()));
    let jwt = hub.with_token(Some(issuer.mint(&topic, ALL_SCOPES, 3600)?));
    let endpoint = opaque.subscribe("Patient-open").await?;
    let mut subscriber = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    let event = patient_open(&topic, "p-opaque");
    opaque.publish_ok(&event).await?;
    expect_event(&mut subscriber, "Patient-open", event["id"].as_str()).await?;
    jwt.get_context().await?.expect(200, "a JWT")?;
    let asked = issuer.introspection_requests();
    ensure!(asked >= 1, "the opaque token was never introspected");

    // Within the cache period the answer is reused; a burst costs at most one question.
    let burst_started = Instant::now();
    let mut hits = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        opaque.get_context().await?.expect(200, "cached")?;
        hits.push(started.elapsed());
    }
    let burst = burst_started.elapsed();
    let asked_in_burst = issuer.introspection_requests() - asked;
    ensure!(
        asked_in_burst as u64 <= 1 + burst.as_secs(),
        "{asked_in_burst} questions for 20 requests in {burst:?}"
    );
    let mut misses = Vec::new();
    for _ in 0..10 {
        let first = hub.with_token(Some(issuer.mint_opaque(&topic, ALL_SCOPES, 3600)));
        let started = Instant::now();
        first
            .get_context()
            .await?
            .expect(200, "a new opaque token")?;
        misses.push(started.elapsed());
    }
    eprintln!(
        "introspection: 20 requests of one token in {burst:?} asked the endpoint \
         {asked_in_burst} times; request p50 {:?} from the cache, {:?} when asking",
        median(&mut hits),
        median(&mut misses)
    );

    // Revoked: refused once the cached answer expires, within the cache period.
    issuer.revoke(&token);
    let revoked = Instant::now();
    eventually(
        "the revoked token is refused",
        Duration::from_secs(CACHE_SECONDS + 3),
        || async {
            let reply = opaque.get_context().await?;
            Ok((reply.status == 401).then_some(reply))
        },
    )
    .await?;
    let latency = revoked.elapsed();
    eprintln!("introspection: revocation took effect after {latency:?}");
    ensure!(
        latency <= Duration::from_secs(CACHE_SECONDS) + Duration::from_millis(500),
        "revocation took {latency:?} with a {CACHE_SECONDS} s cache"
    );

    // Endpoint down: a token it never answered for is refused with 503, never accepted.
    issuer.set_introspection_failing(true);
    let fresh = hub.with_token(Some(issuer.mint_opaque(&topic, ALL_SCOPES, 3600)));
    let reply = fresh.get_context().await?;
    reply.expect_error(503, "introspection down")?;
    ensure!(
        reply.headers.contains_key("retry-after"),
        "503 without Retry-After"
    );
    jwt.get_context()
        .await?
        .expect(200, "JWTs do not need the endpoint")?;
    issuer.set_introspection_failing(false);
    fresh
        .get_context()
        .await?
        .expect(200, "the endpoint is back")?;
    drop(subscriber);
    gateway.stop().await
}

#[tokio::test]
async fn tok_04_an_hmac_algorithm_in_an_allowlist_stops_the_start() -> Result<()> {
    let issuer = TestIssuer::start().await?;
    GatewayBuilder::new()
        .issuer(&issuer)
        .arg("--algorithms=ES256,HS256")
        .expect_refused("shared-secret")
        .await?;
    let scratch = Scratch::new("issuers")?;
    let file = scratch.write(
        "issuers.json",
        &json!({"issuers": [{"issuer": issuer.issuer(), "algorithms": ["PS256", "HS384"]}]})
            .to_string(),
    )?;
    GatewayBuilder::new()
        .issuers_file(&file)
        .expect_refused("shared-secret")
        .await
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
