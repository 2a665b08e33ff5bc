//! TOK-06, TOK-07, TOK-15: key lookup, the refresh rate limit, rotation and outages,
//! counted on the test server.

use std::time::Instant;

use serde_json::json;

use super::support::{JwksServer, REFRESH_INTERVAL, TestKey, claims, http};
use crate::auth::{AuthError, Principal, Verifier, VerifierConfig};

#[tokio::test]
async fn tok_06_unknown_kid_refetches_once_per_interval() {
    let (known, stranger) = (TestKey::es256("ec-1"), TestKey::es256("not-published"));
    let server = JwksServer::start(&[&known]).await;
    let verifier = server.verifier();
    verifier.prefetch().await.expect("prefetch");
    assert_eq!(server.hits(), 1);
    assert!(verifier.verify(&known.mint(&claims())).await.is_ok());
    assert_eq!(server.hits(), 1, "a known kid needs no fetch");

    let unknown = stranger.mint(&claims());
    let err = verifier.verify(&unknown).await.expect_err("unknown kid");
    assert!(matches!(err, AuthError::UnknownKey), "{err}");
    assert_eq!(err.http_status(), 401);
    assert_eq!(server.hits(), 2, "one refetch for the miss");

    // Misses inside the interval are refused at once, without a fetch and without waiting.
    let started = Instant::now();
    for result in verify_concurrently(&verifier, &unknown, 25).await {
        assert!(matches!(result, Err(AuthError::UnknownKey)));
    }
    assert!(
        started.elapsed() < REFRESH_INTERVAL,
        "refusals inside the interval waited {:?}",
        started.elapsed()
    );
    assert_eq!(
        server.hits(),
        2,
        "25 misses inside one interval: no refetch"
    );
    assert!(verifier.verify(&known.mint(&claims())).await.is_ok());
    assert_eq!(server.hits(), 2, "a known kid needs no fetch");

    // Once the interval has passed, the next miss fetches again (once).
    let refetched = until(REFRESH_INTERVAL * 10, || async {
        assert!(verifier.verify(&unknown).await.is_err());
        server.hits() > 2
    })
    .await;
    assert!(refetched, "no refetch after the interval");
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn tok_06_random_kids_cannot_starve_a_real_rotation() {
    let (old, new) = (TestKey::es256("2025"), TestKey::es256("2026"));
    let attacker = std::sync::Arc::new(TestKey::es256("attacker"));
    let server = JwksServer::start(&[&old]).await;
    let verifier = server.verifier();
    verifier.prefetch().await.expect("prefetch");
    let flood_until = Instant::now() + REFRESH_INTERVAL * 6;
    let mut flood = tokio::task::JoinSet::new();
    for lane in 0..8 {
        let (verifier, attacker) = (verifier.clone(), std::sync::Arc::clone(&attacker));
        flood.spawn(async move {
            let mut n = 0_u64;
            while Instant::now() < flood_until {
                let header = json!({"kid": format!("random-{lane}-{n}")});
                let token = attacker.mint_as(attacker.alg, &header, &claims());
                assert!(verifier.verify(&token).await.is_err());
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        });
    }
    // The flood has used the first interval's fetch.
    assert!(until(REFRESH_INTERVAL * 3, || async { server.hits() >= 2 }).await);
    server.set_keys(&[&old, &new]);
    let rotated = Instant::now();
    // A token of the new key is refused while the flood holds the interval, and accepted
    // once the interval ends (the flood's or its own miss fetches the new set).
    let token = new.mint(&claims());
    let picked_up = until(REFRESH_INTERVAL * 5, || async {
        verifier.verify(&token).await.is_ok()
    })
    .await;
    assert!(
        picked_up,
        "the rotated key was not picked up despite the flood"
    );
    assert!(
        rotated.elapsed() <= REFRESH_INTERVAL * 3,
        "rotation took {:?}",
        rotated.elapsed()
    );
    let tokens: u64 = flood.join_all().await.into_iter().sum();
    let fetches = server.hits();
    assert!(
        fetches <= 1 + 7 + 1,
        "{fetches} fetches for {tokens} random kids in 6 intervals: at most one per interval"
    );
}

#[tokio::test]
async fn tok_06_hostile_kids_cause_no_extra_fetch() {
    let (known, attacker) = (TestKey::es256("ec-1"), TestKey::es256("x"));
    let server = JwksServer::start(&[&known]).await;
    let verifier = server.verifier_with(|config| {
        config.refresh_min_interval = std::time::Duration::from_secs(60);
    });
    verifier.prefetch().await.expect("prefetch");
    let long = "k".repeat(10 * 1024);
    let started = Instant::now();
    for kid in [
        json!("../../x"),
        json!("' OR 1=1 --"),
        json!(long),
        json!("nul\u{0}kid"),
        json!("//79/g"),
        json!(""),
        json!(7),
        json!(["ec-1"]),
    ] {
        let token = attacker.mint_as(attacker.alg, &json!({"kid": kid}), &claims());
        let err = verifier.verify(&token).await.expect_err("hostile kid");
        assert_eq!(err.http_status(), 401);
    }
    // Malformed kids never reach the cache; the plausible ones share one refetch, and the
    // rest are refused at once.
    assert!(server.hits() <= 2, "{} fetches", server.hits());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "hostile kids took {:?}",
        started.elapsed()
    );
}

/// Polls `condition` until it holds or `patience` runs out; whether it held.
async fn until<F, Fut>(patience: std::time::Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + patience;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn tok_06_concurrent_misses_share_one_fetch() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let verifier = server.verifier();
    let token = key.mint(&claims());
    let results = verify_concurrently(&verifier, &token, 20).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(
        server.hits(),
        1,
        "cold start: one fetch shared by all callers"
    );
}

#[tokio::test]
async fn tok_06_missing_kid_needs_a_single_key_set() {
    let (one, two) = (TestKey::es256("ec-1"), TestKey::es256("ec-2"));
    let server = JwksServer::start(&[&one]).await;
    let without_kid = one.mint_as(one.alg, &json!({}), &claims());
    assert!(server.verifier().verify(&without_kid).await.is_ok());
    server.set_keys(&[&one, &two]);
    let err = server
        .verifier()
        .verify(&without_kid)
        .await
        .expect_err("ambiguous");
    assert_eq!(err.http_status(), 401);
}

#[tokio::test]
async fn tok_07_keys_not_meant_for_signing_are_not_used() {
    let (key, other) = (TestKey::es256("ec-1"), TestKey::es256("ec-2"));
    let server = JwksServer::start(&[]).await;
    let mut enc = key.jwk.clone();
    enc["use"] = json!("enc");
    let mut wrong_alg = key.jwk.clone();
    wrong_alg["alg"] = json!("ES384");
    let mut ops = key.jwk.clone();
    ops["key_ops"] = json!(["encrypt"]);
    for jwk in [enc, wrong_alg, ops] {
        let oct = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "ec-1"});
        server.set_document(200, json!({"keys": [jwk, oct, other.jwk]}));
        let err = server
            .verifier()
            .verify(&key.mint(&claims()))
            .await
            .expect_err("unusable");
        assert!(matches!(err, AuthError::UnknownKey), "{err}");
    }
}

#[tokio::test]
async fn tok_15_rotated_key_is_accepted_after_one_fetch() {
    let (old, new) = (TestKey::es256("2025"), TestKey::rsa("2026"));
    let server = JwksServer::start(&[&old]).await;
    let verifier = server.verifier();
    verifier.prefetch().await.expect("prefetch");
    server.set_keys(&[&old, &new]);
    assert!(verifier.verify(&new.mint(&claims())).await.is_ok());
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn tok_15_cached_keys_survive_a_jwks_outage() {
    let (key, other) = (TestKey::es256("ec-1"), TestKey::es256("ec-2"));
    let server = JwksServer::start(&[&key]).await;
    let verifier = server.verifier();
    verifier.prefetch().await.expect("prefetch");
    server.set_document(500, json!({"error": "down"}));
    assert!(verifier.verify(&key.mint(&claims())).await.is_ok());
    let err = verifier
        .verify(&other.mint(&claims()))
        .await
        .expect_err("unknown kid");
    assert!(matches!(err, AuthError::UnknownKey), "{err}");
}

#[tokio::test]
async fn jwks_unreachable_without_cache_is_503() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
    drop(listener);
    let config = VerifierConfig::new(
        super::support::ISSUER,
        url,
        super::support::AUDIENCE,
        vec![jsonwebtoken::Algorithm::ES256],
    );
    let verifier = Verifier::new(config, http()).expect("config");
    assert!(matches!(
        verifier.prefetch().await,
        Err(AuthError::JwksUnavailable { .. })
    ));
    let key = TestKey::es256("ec-1");
    let err = verifier
        .verify(&key.mint(&claims()))
        .await
        .expect_err("no keys");
    assert_eq!(err.http_status(), 503);
    assert!(!err.reason().contains("127.0.0.1"));
}

#[tokio::test]
async fn oversized_or_invalid_jwks_is_a_failed_fetch() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[]).await;
    let padding = "p".repeat(1024 * 1024 + 1);
    for document in [
        json!({"keys": [key.jwk], "padding": padding}),
        json!({"keys": 5}),
        json!([]),
    ] {
        server.set_document(200, document);
        let verifier = server.verifier();
        assert!(matches!(
            verifier.prefetch().await,
            Err(AuthError::JwksUnavailable { .. })
        ));
    }
    server.set_keys(&[&key]);
    let verifier = server.verifier();
    assert!(verifier.verify(&key.mint(&claims())).await.is_ok());
}

/// Verifies `token` from `n` concurrent tasks.
async fn verify_concurrently(
    verifier: &Verifier,
    token: &str,
    n: usize,
) -> Vec<Result<Principal, AuthError>> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (verifier, token) = (verifier.clone(), token.to_owned());
        tasks.spawn(async move { verifier.verify(&token).await });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn verify_with_jwks_checks_like_verify_and_never_fetches() {
    let (published, stranger) = (TestKey::es256("ec-1"), TestKey::es256("not-published"));
    let server = JwksServer::start(&[&published]).await;
    let verifier = server.verifier();
    let jwks = json!({"keys": [published.jwk]});
    let token = published.mint(&claims());
    let offline = verifier
        .verify_with_jwks(&token, &jwks)
        .expect("valid token");
    let online = verifier.verify(&token).await.expect("valid token");
    assert_eq!(offline.topics, online.topics);
    assert_eq!(offline.expires_at, online.expires_at);
    let hits = server.hits();
    let err = verifier
        .verify_with_jwks(&stranger.mint(&claims()), &jwks)
        .expect_err("unknown kid");
    assert!(matches!(err, AuthError::UnknownKey), "{err}");
    assert!(verifier.verify_with_jwks(&token, &json!([])).is_err());
    assert_eq!(
        server.hits(),
        hits,
        "the given key set is the only one used"
    );
}
