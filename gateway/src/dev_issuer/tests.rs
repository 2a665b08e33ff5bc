//! Dev issuer tests: its tokens verify with the real [`Verifier`] against its JWKS over
//! real HTTP; the token route answers as documented; the loopback check.

use std::net::SocketAddr;
use std::sync::Arc;

use fhircast_proto::EventName;
use fhircast_proto::scope::Access;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::{DEFAULT_SCOPE, DevIssuer, DevIssuerError, MAX_EXPIRES_IN, is_loopback_bind};
use crate::auth::{Verifier, VerifierConfig};

const AUDIENCE: &str = "http://127.0.0.1:8080/api/hub";
const TOPIC: &str = "DevTopic0123456789abc";

struct Running {
    issuer: Arc<DevIssuer>,
    base: String,
    http: reqwest::Client,
}

/// Serves the dev issuer nested at `/dev-issuer`, as the gateway mounts it.
async fn start() -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let issuer = Arc::new(
        DevIssuer::new(
            format!("{base}/dev-issuer"),
            format!("{base}/api/hub"),
            AUDIENCE.to_owned(),
            "hub.topic".to_owned(),
        )
        .expect("dev issuer"),
    );
    let app = axum::Router::new().nest("/dev-issuer", Arc::clone(&issuer).router());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    Running { issuer, base, http }
}

impl Running {
    fn verifier(&self) -> Verifier {
        let config = VerifierConfig::new(
            self.issuer.issuer_url(),
            self.issuer.jwks_url(),
            AUDIENCE,
            vec![Algorithm::ES256],
        );
        Verifier::new(config, self.http.clone()).expect("verifier")
    }

    fn url(&self, path: &str) -> String {
        format!("{}/dev-issuer{path}", self.base)
    }
}

#[tokio::test]
async fn minted_token_verifies_against_the_served_jwks() {
    let running = start().await;
    let token = running
        .issuer
        .mint(TOPIC, "fhircast/Patient-open.read", 600)
        .expect("mint");
    let principal = running.verifier().verify(&token).await.expect("verifies");
    assert!(principal.permits_topic(TOPIC));
    assert_eq!(principal.subject.as_deref(), Some("dev-user"));
    assert_eq!(principal.client_id.as_deref(), Some("dev-client"));
    let open = EventName::parse("Patient-open").expect("event");
    assert!(principal.scopes.allows(&open, Access::Read));
    assert!(!principal.scopes.allows(&open, Access::Write));
    let left = principal.seconds_left(std::time::SystemTime::now());
    assert!((590..=600).contains(&left), "{left}");
}

#[tokio::test]
async fn token_route_returns_the_documented_json() {
    let running = start().await;
    let form = [
        ("topic", TOPIC),
        ("scope", "fhircast/*.read"),
        ("expires_in", "120"),
    ];
    let response = running
        .http
        .post(running.url("/token"))
        .form(&form)
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 120);
    assert_eq!(body["scope"], "fhircast/*.read");
    assert_eq!(body["hub.topic"], TOPIC);
    assert_eq!(body["hub.url"], format!("{}/api/hub", running.base));
    let token = body["access_token"].as_str().expect("access_token");
    assert!(
        running
            .verifier()
            .verify(token)
            .await
            .expect("verifies")
            .permits_topic(TOPIC)
    );

    // JSON body, and the defaults.
    for request in [json!({"subject": "dr-who", "expires_in": 60}), json!({})] {
        let response = running
            .http
            .post(running.url("/token"))
            .json(&request)
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        let topic = body["hub.topic"].as_str().expect("topic");
        assert_eq!(topic.len(), 43, "a fresh random topic");
        assert_eq!(body["scope"], DEFAULT_SCOPE);
        let principal = running
            .verifier()
            .verify(body["access_token"].as_str().expect("token"))
            .await
            .expect("verifies");
        assert!(principal.permits_topic(topic));
        let expected = if request.get("subject").is_some() {
            60
        } else {
            3600
        };
        assert_eq!(body["expires_in"], expected);
    }
}

#[tokio::test]
async fn token_route_refuses_bad_requests() {
    let running = start().await;
    let over = (MAX_EXPIRES_IN + 1).to_string();
    let bad_forms: Vec<Vec<(&str, &str)>> = vec![
        vec![("topic", "short")],
        vec![("topic", "has spaces in the topic value")],
        vec![("expires_in", "0")],
        vec![("expires_in", "-5")],
        vec![("expires_in", "soon")],
        vec![("expires_in", over.as_str())],
        vec![("topic", TOPIC), ("topic", TOPIC)],
        vec![("grant_type", "password")],
        vec![("scope", "fhircast/*.read \"quoted\"")],
    ];
    for form in bad_forms {
        let response = running
            .http
            .post(running.url("/token"))
            .form(&form)
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 400, "{form:?}");
        let reason = response.text().await.expect("text");
        assert!(!reason.is_empty() && !reason.contains('\n'), "{reason}");
    }
    let response = running
        .http
        .post(running.url("/token"))
        .header("content-type", "text/plain")
        .body("topic=x")
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 415);
    for json in [json!({"expires_in": 1.5}), json!({"topic": 5}), json!([1])] {
        let response = running
            .http
            .post(running.url("/token"))
            .json(&json)
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 400, "{json}");
    }
}

#[tokio::test]
async fn jwks_and_smart_configuration_are_served() {
    let running = start().await;
    let jwks: Value = running
        .http
        .get(running.issuer.jwks_url())
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(
        (key["alg"].as_str(), key["use"].as_str()),
        (Some("ES256"), Some("sig"))
    );
    assert!(key["kid"].as_str().is_some_and(|kid| kid.len() == 43));
    assert!(key.get("d").is_none(), "the private key is never published");

    let config: Value = running
        .http
        .get(running.url("/.well-known/smart-configuration"))
        .send()
        .await
        .expect("smart configuration")
        .json()
        .await
        .expect("json");
    assert_eq!(config["issuer"], running.issuer.issuer_url());
    assert_eq!(config["jwks_uri"], running.issuer.jwks_url());
    assert_eq!(config["token_endpoint"], running.url("/token"));
    assert_eq!(
        config["grant_types_supported"],
        json!(["client_credentials"])
    );
    assert!(
        config["scopes_supported"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
}

#[test]
fn mint_checks_its_inputs() {
    let issuer = DevIssuer::new(
        "http://127.0.0.1:1/dev-issuer".to_owned(),
        "http://127.0.0.1:1/api/hub".to_owned(),
        AUDIENCE.to_owned(),
        "hub.topic".to_owned(),
    )
    .expect("dev issuer");
    assert!(issuer.mint(TOPIC, DEFAULT_SCOPE, MAX_EXPIRES_IN).is_ok());
    for (topic, scope, expires_in) in [
        ("short", DEFAULT_SCOPE, 60),
        (TOPIC, "", 60),
        (TOPIC, DEFAULT_SCOPE, 0),
        (TOPIC, DEFAULT_SCOPE, MAX_EXPIRES_IN + 1),
    ] {
        let err = issuer.mint(topic, scope, expires_in).expect_err("refused");
        assert!(matches!(err, DevIssuerError::BadRequest(_)), "{err}");
        assert_eq!(err.http_status(), 400);
    }
    let debug = format!("{issuer:?}");
    assert!(debug.contains("DevIssuer") && !debug.contains("encoding"));
}

#[test]
fn new_refuses_unusable_configuration() {
    let make = |issuer: &str, claim: &str| {
        DevIssuer::new(
            issuer.to_owned(),
            "http://127.0.0.1:1/api/hub".to_owned(),
            AUDIENCE.to_owned(),
            claim.to_owned(),
        )
    };
    for issuer in [
        "http://127.0.0.1/dev-issuer/",
        "ftp://x/dev-issuer",
        "dev-issuer",
        "",
    ] {
        assert!(make(issuer, "hub.topic").is_err(), "{issuer}");
    }
    for claim in ["", "iss", "exp", "scope"] {
        assert!(
            make("http://127.0.0.1/dev-issuer", claim).is_err(),
            "{claim}"
        );
    }
}

#[test]
fn is_loopback_bind_truth_table() {
    let cases = [
        ("127.0.0.1:8080", true),
        ("127.255.0.9:1", true),
        ("[::1]:8080", true),
        ("0.0.0.0:8080", false),
        ("[::]:8080", false),
        ("10.0.0.1:8080", false),
        ("192.168.1.2:80", false),
        ("[::ffff:127.0.0.1]:8080", false),
        ("[fe80::1]:8080", false),
        ("128.0.0.1:80", false),
    ];
    for (addr, expected) in cases {
        let addr: SocketAddr = addr.parse().expect("socket address");
        assert_eq!(is_loopback_bind(&addr), expected, "{addr}");
    }
}
