//! TOK-18: opaque tokens through RFC 7662 introspection. Inactive is 401; an endpoint that is
//! down, slow, redirecting or answering garbage is 503 and never an acceptance; answers are
//! cached by token digest for at most the TTL and never beyond `exp`; an active token's
//! members pass the same checks as a JWT's claims.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use fhircast_proto::EventName;
use fhircast_proto::scope::Access;
use serde_json::{Value, json};

use super::introspection_server::{
    CLIENT_ID, CLIENT_SECRET, IntrospectionServer, Mode, active_members,
};
use super::support::{
    AUDIENCE, ISSUER, JwksServer, TOPIC, TestKey, claims, http, now, with_member,
};
use crate::auth::{AuthError, Authenticator};

const TTL: Duration = Duration::from_secs(30);

/// The members of an active answer with one changed (`Value::Null` removes it).
fn members_with(name: &str, value: Value) -> Value {
    with_member(active_members(), name, value)
}

#[tokio::test]
async fn tok_18_an_active_opaque_token_is_accepted_with_its_members() {
    let server = IntrospectionServer::start().await;
    let authenticator = server.authenticator(TTL);
    server.issue("2YotnFZFEjr1zCsicMWpAA", active_members());
    let principal = authenticator
        .verify("2YotnFZFEjr1zCsicMWpAA")
        .await
        .expect("active token");
    assert_eq!(principal.subject.as_deref(), Some("user-7"));
    assert_eq!(principal.client_id.as_deref(), Some("app-7"));
    assert!(principal.permits_topic(TOPIC));
    let open = EventName::parse("Patient-open").expect("event");
    assert!(principal.scopes.allows(&open, Access::Write));
    // RFC 6749 §2.3.1: id and secret form-encoded, then HTTP Basic.
    let (authorization, form) = server.last_request().expect("a request");
    let expected = STANDARD.encode("fhircast+hub:introspection-secret%3A%26%3D%2B");
    assert_eq!(authorization, format!("Basic {expected}"));
    assert!(CLIENT_ID.contains(' ') && CLIENT_SECRET.contains(':'));
    assert_eq!(
        form,
        vec![
            ("token".to_owned(), "2YotnFZFEjr1zCsicMWpAA".to_owned()),
            ("token_type_hint".to_owned(), "access_token".to_owned()),
        ]
    );
}

#[tokio::test]
async fn tok_18_an_inactive_token_is_401() {
    let server = IntrospectionServer::start().await;
    let authenticator = server.authenticator(TTL);
    server.issue("revoked-later", active_members());
    server.revoke("revoked-later");
    for token in ["revoked-later", "never-issued"] {
        let err = authenticator.verify(token).await.expect_err(token);
        assert_eq!(err.http_status(), 401, "{token}: {err}");
        assert_eq!(err.reason(), "token is not active");
    }
}

#[tokio::test]
async fn tok_18_an_endpoint_that_is_down_or_broken_fails_closed_with_503() {
    let server = IntrospectionServer::start().await;
    let authenticator = server.authenticator(TTL);
    server.issue("good-token", active_members());
    let elsewhere = IntrospectionServer::start().await;
    let modes = [
        Mode::Raw(500, r#"{"active": true}"#),
        Mode::Raw(503, ""),
        Mode::Raw(401, r#"{"error": "invalid_client"}"#),
        Mode::Raw(200, "<html>login</html>"),
        Mode::Raw(200, r#"{"active": "true"}"#),
        Mode::Raw(200, r#"{"scope": "fhircast/*.read"}"#),
        Mode::Raw(200, r#"[{"active": true}]"#),
        Mode::Raw(200, r#"{"active": true, "active": false}"#),
        Mode::Redirect(elsewhere.url.clone()),
        Mode::Hang,
    ];
    for mode in modes {
        server.set_mode(mode.clone());
        let started = Instant::now();
        let err = authenticator
            .verify("good-token")
            .await
            .expect_err("fails closed");
        assert!(
            matches!(err, AuthError::IntrospectionUnavailable { .. }),
            "{mode:?}: {err}"
        );
        assert_eq!(err.http_status(), 503, "{mode:?}");
        assert!(err.retry_after_seconds().is_some(), "{mode:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{mode:?}");
    }
    assert_eq!(elsewhere.hits(), 0, "the redirect was not followed");
    // Failures are not cached: the endpoint back, the same token is accepted.
    server.set_mode(Mode::Normal);
    authenticator
        .verify("good-token")
        .await
        .expect("accepted once the endpoint answers");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut nobody = IntrospectionServer::start().await;
    nobody.url = format!("http://{closed}/introspect");
    let err = nobody
        .authenticator(TTL)
        .verify("good-token")
        .await
        .expect_err("nobody listens");
    assert_eq!(err.http_status(), 503, "{err}");
}

#[tokio::test]
async fn tok_18_an_active_tokens_members_pass_the_jwt_checks() {
    let server = IntrospectionServer::start().await;
    let authenticator = server.authenticator(TTL);
    let cases = [
        (
            "iss",
            json!("https://issuer.example/tenant-b"),
            "token issuer is not accepted",
        ),
        ("iss", Value::Null, "token issuer is not accepted"),
        (
            "aud",
            json!("https://fhir.example/r4"),
            "token audience does not include this hub",
        ),
        (
            "aud",
            json!(["a", "b"]),
            "token audience does not include this hub",
        ),
        ("aud", Value::Null, "token lacks the aud claim"),
        ("exp", json!(now() - 3600), "token expired"),
        ("exp", Value::Null, "token lacks the exp claim"),
        (
            "exp",
            json!("9999999999"),
            "token exp claim is not an integer date",
        ),
        ("nbf", json!(now() + 3600), "token is not valid yet"),
        ("hub.topic", json!(7), "token topic claim is malformed"),
        (
            "scope",
            json!(["fhircast/*.read"]),
            "token scope claim is malformed",
        ),
    ];
    for (at, (name, value, reason)) in cases.into_iter().enumerate() {
        let token = format!("opaque-{at}");
        server.issue(&token, members_with(name, value.clone()));
        let err = authenticator.verify(&token).await.expect_err(name);
        assert_eq!(err.http_status(), 401, "{name}={value}: {err}");
        assert_eq!(err.reason(), reason, "{name}={value}");
    }
    server.issue("aud-array", members_with("aud", json!(["x", AUDIENCE])));
    authenticator
        .verify("aud-array")
        .await
        .expect("an aud array holding the hub");
}

#[tokio::test]
async fn tok_18_answers_are_reused_at_most_the_ttl() {
    let ttl = Duration::from_millis(400);
    let server = IntrospectionServer::start().await;
    let authenticator = server.authenticator(ttl);
    server.issue("cached-token", active_members());
    let asked = Instant::now();
    authenticator.verify("cached-token").await.expect("first");
    let answered = Instant::now();
    authenticator.verify("cached-token").await.expect("cached");
    assert_eq!(server.hits(), 1, "the second check came from the cache");
    server.revoke("cached-token");
    // The revocation shows once the cached answer expires: never later than the TTL after
    // the answer came, never before the TTL after it was asked for.
    let refused_at = loop {
        let checked = Instant::now();
        match authenticator.verify("cached-token").await {
            Ok(_) => assert!(
                checked.duration_since(answered) < ttl,
                "accepted {:?} after the answer came",
                checked.duration_since(answered)
            ),
            Err(err) => {
                assert_eq!(err.reason(), "token is not active");
                break asked.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        refused_at >= ttl,
        "refused after {refused_at:?}, before the ttl"
    );
    assert_eq!(server.hits(), 2, "one more question after the ttl");
    // Inactive answers are cached too: a replayed bad token does not hammer the endpoint.
    authenticator
        .verify("cached-token")
        .await
        .expect_err("still revoked");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn tok_18_an_answer_is_never_reused_beyond_the_tokens_exp() {
    let server = IntrospectionServer::start().await;
    let mut config = server.config("http://127.0.0.1:9/jwks.json", Duration::from_secs(60));
    config.leeway = Duration::ZERO;
    let authenticator = Authenticator::new(vec![config], http()).expect("authenticator");
    let issued = Instant::now();
    server.issue("short-lived", members_with("exp", json!(now() + 1)));
    authenticator
        .verify("short-lived")
        .await
        .expect("valid for a second");
    // With a 60 s TTL the answer would be reused for a minute; `exp` (whole seconds, so
    // within two) ends it, and the endpoint's unchanged answer is then refused as expired.
    loop {
        if let Err(err) = authenticator.verify("short-lived").await {
            assert_eq!(err.reason(), "token expired");
            break;
        }
        assert!(
            issued.elapsed() < Duration::from_secs(5),
            "still accepted past exp"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.hits() >= 2, "asked again once exp passed");
}

#[tokio::test]
async fn tok_18_only_tokens_that_are_not_a_jws_go_to_introspection() {
    let key = TestKey::es256("ec-1");
    let jwks = JwksServer::start(&[&key]).await;
    let server = IntrospectionServer::start().await;
    let config = server.config(&jwks.jwks_url(), TTL);
    let authenticator = Authenticator::new(vec![config], http()).expect("authenticator");
    authenticator
        .verify(&key.mint(&claims()))
        .await
        .expect("a JWT verifies by signature");
    for three_segments in ["a.b.c", "eyJhbGciOiJub25lIn0.e30.", "x.y.z"] {
        let err = authenticator
            .verify(three_segments)
            .await
            .expect_err(three_segments);
        assert_eq!(err.http_status(), 401, "{three_segments}");
    }
    assert_eq!(server.hits(), 0, "three-segment tokens never leave the hub");
    for opaque in ["a.b", "a.b.c.d.e", "mF_9B5f-4~1JqM"] {
        let err = authenticator.verify(opaque).await.expect_err(opaque);
        assert_eq!(err.reason(), "token is not active", "{opaque}");
    }
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn tok_18_without_introspection_opaque_tokens_are_refused() {
    let key = TestKey::es256("ec-1");
    let jwks = JwksServer::start(&[&key]).await;
    let authenticator = Authenticator::new(
        vec![jwks.config_for(ISSUER, vec![jsonwebtoken::Algorithm::ES256])],
        http(),
    )
    .expect("authenticator");
    let err = authenticator
        .verify("2YotnFZFEjr1zCsicMWpAA")
        .await
        .expect_err("opaque");
    assert_eq!(err.http_status(), 401);
    assert_eq!(err.reason(), "token is not a compact jws (three segments)");
}

#[tokio::test]
async fn tok_18_only_one_issuer_may_introspect_and_secrets_never_print() {
    let server = IntrospectionServer::start().await;
    let mut other = server.config("http://127.0.0.1:9/jwks.json", TTL);
    other.issuer = "https://other.example".to_owned();
    let err = Authenticator::new(
        vec![server.config("http://127.0.0.1:9/jwks.json", TTL), other],
        http(),
    )
    .expect_err("two introspecting issuers");
    assert!(err.to_string().contains("only one issuer"), "{err}");
    let authenticator = server.authenticator(TTL);
    server.issue("printed-token", active_members());
    authenticator.verify("printed-token").await.expect("active");
    let printed = format!("{authenticator:?}");
    assert!(!printed.contains(CLIENT_SECRET), "{printed}");
    assert!(!printed.contains("printed-token"), "{printed}");
}
