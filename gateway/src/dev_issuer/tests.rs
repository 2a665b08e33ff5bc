//! Dev issuer tests: its tokens verify with the real [`Verifier`] against its JWKS over
//! real HTTP; the token route answers as documented; the loopback check; a key file shared
//! by two issuers (same `kid`, tokens of one verify on the other) and unusable key files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Parser as _;

use fhircast_proto::EventName;
use fhircast_proto::scope::Access;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use super::{
    DEFAULT_SCOPE, DevIssuer, DevIssuerError, MAX_EXPIRES_IN, SigningKey, is_loopback_bind,
};
use crate::auth::{AuthError, Verifier, VerifierConfig};
use crate::config::Config;

const AUDIENCE: &str = "http://127.0.0.1:8080/api/hub";
const TOPIC: &str = "DevTopic0123456789abc";

struct Running {
    issuer: Arc<DevIssuer>,
    base: String,
    http: reqwest::Client,
}

/// Serves the dev issuer nested at `/dev-issuer`, as the gateway mounts it.
async fn start() -> Running {
    start_with(None, None).await
}

/// Like [`start`], signing with `key` when given, and with `issuer_url` pinned (the `iss`)
/// when given instead of the served URL.
async fn start_with(key: Option<SigningKey>, issuer_url: Option<&str>) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let issuer_url = issuer_url.map_or_else(|| format!("{base}/dev-issuer"), str::to_owned);
    let hub_url = format!("{base}/api/hub");
    let claim = "hub.topic".to_owned();
    let issuer = match key {
        Some(key) => DevIssuer::with_key(issuer_url, hub_url, AUDIENCE.to_owned(), claim, key),
        None => DevIssuer::new(issuer_url, hub_url, AUDIENCE.to_owned(), claim),
    };
    let issuer = Arc::new(issuer.expect("dev issuer"));
    let app = axum::Router::new().nest("/dev-issuer", Arc::clone(&issuer).router());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    Running { issuer, base, http }
}

impl Running {
    /// A verifier of this issuer's `iss` that fetches the JWKS this instance serves, as
    /// the gateway's own verifier does.
    fn verifier(&self) -> Verifier {
        let config = VerifierConfig::new(
            self.issuer.issuer_url(),
            self.url("/jwks.json"),
            AUDIENCE,
            vec![Algorithm::ES256],
        );
        Verifier::new(config, self.http.clone()).expect("verifier")
    }

    fn url(&self, path: &str) -> String {
        format!("{}/dev-issuer{path}", self.base)
    }
}

/// A PKCS#8 PEM of a fresh key for `alg`, as `openssl genpkey` writes one.
fn pkcs8_pem(alg: &'static EcdsaSigningAlgorithm) -> String {
    let der = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).expect("generate");
    let base64 = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = base64
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// A file under the temp dir removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn with(content: &[u8]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "fhircast-dev-issuer-key-{}-{}.pem",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, content).expect("write key file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
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

#[test]
fn same_key_file_gives_the_same_kid() {
    let file = TempFile::with(pkcs8_pem(&ECDSA_P256_SHA256_FIXED_SIGNING).as_bytes());
    let first = SigningKey::from_pem_file(&file.0).expect("key");
    let second = SigningKey::from_pem_file(&file.0).expect("key");
    assert_eq!(first.kid(), second.kid());
    assert_eq!(first.kid().len(), 43, "a base64url SHA-256 thumbprint");
    assert_eq!(first.public_jwk(), second.public_jwk());
    assert!(first.public_jwk().get("d").is_none());
    let other =
        SigningKey::from_pem(pkcs8_pem(&ECDSA_P256_SHA256_FIXED_SIGNING).as_bytes()).expect("key");
    assert_ne!(first.kid(), other.kid());
    let debug = format!("{first:?}");
    assert!(
        debug.contains(first.kid()) && !debug.contains("encoding"),
        "{debug}"
    );
}

#[tokio::test]
async fn a_token_from_one_issuer_verifies_on_another_sharing_key_and_issuer_url() {
    const PINNED: &str = "http://127.0.0.1:8080/dev-issuer";
    let pem = pkcs8_pem(&ECDSA_P256_SHA256_FIXED_SIGNING);
    let file = TempFile::with(pem.as_bytes());
    let load = || SigningKey::from_pem_file(&file.0).expect("key");
    let one = start_with(Some(load()), Some(PINNED)).await;
    let two = start_with(Some(load()), Some(PINNED)).await;
    assert_ne!(one.base, two.base);
    assert_eq!(one.issuer.kid(), two.issuer.kid());
    assert_eq!(one.issuer.issuer_url(), PINNED);

    // Minted over HTTP by the first, verified by the second's JWKS and `iss`.
    let body: Value = one
        .http
        .post(one.url("/token"))
        .form(&[("topic", TOPIC)])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("json");
    let token = body["access_token"].as_str().expect("access_token");
    let principal = two.verifier().verify(token).await.expect("verifies on two");
    assert!(principal.permits_topic(TOPIC));
    let back = two.issuer.mint(TOPIC, DEFAULT_SCOPE, 60).expect("mint");
    assert!(one.verifier().verify(&back).await.is_ok(), "and back");

    // Both publish the same key, and their SMART configuration the pinned issuer.
    for running in [&one, &two] {
        let jwks: Value = running
            .http
            .get(running.url("/jwks.json"))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("json");
        assert_eq!(jwks["keys"][0]["kid"], one.issuer.kid());
        let config: Value = running
            .http
            .get(running.url("/.well-known/smart-configuration"))
            .send()
            .await
            .expect("smart configuration")
            .json()
            .await
            .expect("json");
        assert_eq!(config["issuer"], PINNED);
    }
}

#[tokio::test]
async fn a_token_from_another_key_or_issuer_url_is_refused() {
    let shared = pkcs8_pem(&ECDSA_P256_SHA256_FIXED_SIGNING);
    let key = || SigningKey::from_pem(shared.as_bytes()).expect("key");
    let verifying = start_with(Some(key()), Some("http://127.0.0.1:8080/dev-issuer")).await;

    let ephemeral = start_with(None, Some("http://127.0.0.1:8080/dev-issuer")).await;
    let token = ephemeral
        .issuer
        .mint(TOPIC, DEFAULT_SCOPE, 60)
        .expect("mint");
    let err = verifying
        .verifier()
        .verify(&token)
        .await
        .expect_err("refused");
    assert!(matches!(err, AuthError::UnknownKey), "{err:?}");

    let own_url = start_with(Some(key()), None).await;
    let token = own_url.issuer.mint(TOPIC, DEFAULT_SCOPE, 60).expect("mint");
    assert!(verifying.verifier().verify(&token).await.is_err());
}

#[test]
fn unusable_key_files_are_refused_with_the_reason() {
    let missing = std::env::temp_dir().join("fhircast-no-such-dev-issuer-key.pem");
    let err = SigningKey::from_pem_file(&missing).expect_err("missing");
    let text = err.to_string();
    assert!(matches!(err, DevIssuerError::Key { .. }), "{err:?}");
    assert!(text.contains(&missing.display().to_string()) && text.contains("cannot open"));

    let p256 = pkcs8_pem(&ECDSA_P256_SHA256_FIXED_SIGNING);
    let truncated = {
        let mut lines: Vec<&str> = p256.lines().collect();
        lines.remove(1);
        lines.join("\n")
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "BEGIN PRIVATE KEY"),
        (b"not a key at all".to_vec(), "BEGIN PRIVATE KEY"),
        (vec![0xff, 0xfe, 0x00], "PEM text"),
        (
            b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n".to_vec(),
            "openssl pkcs8 -topk8",
        ),
        (
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .to_vec(),
            "encrypted",
        ),
        (
            b"-----BEGIN PRIVATE KEY-----\n!!not base64!!\n-----END PRIVATE KEY-----\n".to_vec(),
            "base64",
        ),
        (
            p256.replace("-----END PRIVATE KEY-----\n", "").into_bytes(),
            "END PRIVATE KEY",
        ),
        (format!("{p256}{p256}").into_bytes(), "more than one"),
        (truncated.into_bytes(), "EC P-256"),
        (
            pkcs8_pem(&ECDSA_P384_SHA384_FIXED_SIGNING).into_bytes(),
            "EC P-256",
        ),
    ];
    for (content, reason) in cases {
        let file = TempFile::with(&content);
        let err = SigningKey::from_pem_file(&file.0).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains(reason), "{text}");
        assert!(text.contains(&file.0.display().to_string()), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }
}

#[test]
fn config_validation_checks_the_dev_issuer_flags() {
    let parse = |extra: &[&str]| {
        let mut args = vec!["fhircast-gateway", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Config::try_parse_from(args)
            .expect("parses")
            .validate()
            .map_err(|err| err.0)
    };
    let good = TempFile::with(pkcs8_pem(&ECDSA_P256_SHA256_FIXED_SIGNING).as_bytes());
    let good_path = good.0.display().to_string();
    let garbled = TempFile::with(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let garbled_path = garbled.0.display().to_string();
    let pinned = "http://127.0.0.1:8080/dev-issuer";

    assert_eq!(parse(&["--dev-issuer"]), Ok(()));
    assert_eq!(
        parse(&[
            "--dev-issuer",
            "--dev-issuer-key",
            &good_path,
            "--dev-issuer-url",
            pinned
        ]),
        Ok(())
    );
    let missing = parse(&[
        "--dev-issuer",
        "--dev-issuer-key",
        "/nonexistent/dev-key.pem",
    ])
    .expect_err("missing");
    assert!(
        missing.starts_with("--dev-issuer-key: ") && missing.contains("/nonexistent/dev-key.pem"),
        "{missing}"
    );
    let bad = parse(&["--dev-issuer", "--dev-issuer-key", &garbled_path]).expect_err("garbled");
    assert!(bad.contains("EC P-256"), "{bad}");
    for url in [
        "http://127.0.0.1:8080/dev-issuer/",
        "ftp://x/dev-issuer",
        "not a url",
    ] {
        let err = parse(&["--dev-issuer", "--dev-issuer-url", url]).expect_err("bad url");
        assert!(err.starts_with("--dev-issuer-url: "), "{err}");
    }
    for flags in [
        ["--dev-issuer-key", good_path.as_str()],
        ["--dev-issuer-url", pinned],
    ] {
        let mut args = vec![
            "--issuer",
            "https://issuer.example",
            "--jwks-url",
            "https://issuer.example/jwks.json",
            "--audience",
            "https://hub.example/api/hub",
        ];
        args.extend_from_slice(&flags);
        let err = parse(&args).expect_err("needs --dev-issuer");
        assert!(err.contains("only with --dev-issuer"), "{err}");
    }
}
