//! TOK-01 and TOK-08…TOK-13: a valid token is accepted; each registered claim is checked.

use std::time::{Duration, UNIX_EPOCH};

use fhircast_proto::EventName;
use fhircast_proto::scope::Access;
use serde_json::{Value, json};

use super::support::{
    AUDIENCE, ISSUER, JwksServer, TOPIC, TestKey, claims, claims_with, now, sign_raw,
};
use crate::auth::AuthError;

fn event(name: &str) -> EventName {
    EventName::parse(name).expect("event name")
}

async fn refused(server: &JwksServer, key: &TestKey, claims: Value) -> AuthError {
    let token = key.mint(&claims);
    let err = server
        .verifier()
        .verify(&token)
        .await
        .expect_err("must be refused");
    assert_eq!(err.http_status(), 401, "{err}");
    assert!(!err.reason().contains(&token));
    err
}

#[tokio::test]
async fn tok_01_valid_token_is_accepted_with_scopes_and_topics() {
    let (ec, rsa) = (TestKey::es256("ec-1"), TestKey::rsa("rsa-1"));
    let server = JwksServer::start(&[&ec, &rsa]).await;
    let verifier = server.verifier();
    for key in [&ec, &rsa] {
        let claims = claims();
        let principal = verifier
            .verify(&key.mint(&claims))
            .await
            .expect("valid token");
        assert_eq!(principal.subject.as_deref(), Some("user-1"));
        assert_eq!(principal.client_id.as_deref(), Some("app-1"));
        assert!(principal.permits_topic(TOPIC));
        assert!(!principal.permits_topic("AnotherTopic0123456789"));
        assert!(
            principal
                .scopes
                .allows(&event("patient-open"), Access::Read)
        );
        assert!(
            !principal
                .scopes
                .allows(&event("patient-close"), Access::Read)
        );
        assert!(
            principal
                .scopes
                .allows(&event("patient-close"), Access::Write)
        );
        let exp = claims["exp"].as_u64().expect("exp");
        assert_eq!(principal.expires_at, UNIX_EPOCH + Duration::from_secs(exp));
    }
}

#[tokio::test]
async fn tok_01_scp_array_azp_and_topic_arrays_are_read() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let mut claims = claims_with("scope", Value::Null);
    claims["scp"] = json!(["fhircast/*.read"]);
    claims["azp"] = json!("app-2");
    claims["client_id"] = Value::Null;
    claims["aud"] = json!(["https://fhir.example", AUDIENCE]);
    claims["hub.topic"] = json!(["FirstTopic0123456789", TOPIC]);
    let principal = server
        .verifier()
        .verify(&key.mint(&claims))
        .await
        .expect("valid");
    assert_eq!(principal.client_id.as_deref(), Some("app-2"));
    assert!(
        principal
            .scopes
            .allows(&event("Encounter-open"), Access::Read)
    );
    assert!(
        !principal
            .scopes
            .allows(&event("Encounter-open"), Access::Write)
    );
    assert!(principal.permits_topic(TOPIC) && principal.permits_topic("FirstTopic0123456789"));
}

#[tokio::test]
async fn topic_claim_name_is_configurable_and_typed() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let custom = server.verifier_with(|config| config.topic_claim = "fhircast_topic".to_owned());
    let token = key.mint(&claims_with("fhircast_topic", json!(TOPIC)));
    assert!(
        custom
            .verify(&token)
            .await
            .expect("valid")
            .permits_topic(TOPIC)
    );
    let no_topic = key.mint(&claims_with("hub.topic", Value::Null));
    let none = server.verifier().verify(&no_topic).await;
    assert!(none.expect("valid without topic").topics.is_empty());
    for bad in [json!(5), json!([TOPIC, 5]), json!({"t": TOPIC})] {
        refused(&server, &key, claims_with("hub.topic", bad)).await;
    }
    refused(
        &server,
        &key,
        claims_with("scope", json!(["fhircast/*.read"])),
    )
    .await;
}

#[tokio::test]
async fn tok_08_issuer_is_compared_byte_for_byte() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    for iss in [
        json!(format!("{ISSUER}/")),
        json!(ISSUER.replace("https", "http")),
        json!(ISSUER.to_uppercase()),
        json!("https://issuer.example/tenant-b"),
        json!([ISSUER]),
        Value::Null,
    ] {
        refused(&server, &key, claims_with("iss", iss)).await;
    }
}

#[tokio::test]
async fn tok_09_audience_must_contain_the_hub() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    for aud in [
        Value::Null,
        json!("https://other.example/api/hub"),
        json!(["app-1", "https://fhir.example/r4"]),
        json!(format!("{AUDIENCE}/")),
        json!(5),
    ] {
        refused(&server, &key, claims_with("aud", aud)).await;
    }
}

#[tokio::test]
async fn tok_10_exp_must_be_a_future_integer() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let err = refused(&server, &key, claims_with("exp", json!(now() - 120))).await;
    assert_eq!(err.reason(), "token expired");
    for exp in [
        Value::Null,
        json!("9999999999"),
        json!(9_999_999_999.5),
        json!(-1),
        json!(now() as f64 + 600.0),
    ] {
        refused(&server, &key, claims_with("exp", exp)).await;
    }
    // Within the 60 s leeway.
    let token = key.mint(&claims_with("exp", json!(now() - 30)));
    assert!(server.verifier().verify(&token).await.is_ok());
}

#[tokio::test]
async fn tok_11_nbf_in_the_future_is_refused() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let err = refused(&server, &key, claims_with("nbf", json!(now() + 300))).await;
    assert_eq!(err.reason(), "token is not valid yet");
    refused(&server, &key, claims_with("nbf", json!("99999999999"))).await;
    let token = key.mint(&claims_with("nbf", json!(now() + 30)));
    assert!(server.verifier().verify(&token).await.is_ok());
}

#[tokio::test]
async fn tok_12_iat_in_the_future_is_refused() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let err = refused(&server, &key, claims_with("iat", json!(now() + 300))).await;
    assert_eq!(err.reason(), "token is issued in the future");
    refused(&server, &key, claims_with("iat", json!("now"))).await;
}

#[tokio::test]
async fn tok_13_at_jwt_typ_is_accepted() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let token = key.mint_as(
        key.alg,
        &json!({"kid": key.kid, "typ": "at+jwt"}),
        &claims(),
    );
    assert!(server.verifier().verify(&token).await.is_ok());
}

#[tokio::test]
async fn duplicate_claim_members_are_refused() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let body = claims().to_string();
    let payload = format!(
        "{}, \"hub.topic\": \"Smuggled0123456789\"}}",
        &body[..body.len() - 1]
    );
    let token = sign_raw(&key.encoding, key.alg, &json!({"kid": key.kid}), &payload);
    let err = server
        .verifier()
        .verify(&token)
        .await
        .expect_err("duplicate member");
    assert_eq!(err.http_status(), 401);
}
