//! Several trusted issuers (TOK-01, TOK-04, TOK-08): the unverified `iss` picks the issuer,
//! whose own keys, allowlist and audience then decide; a token cannot borrow another
//! issuer's trust.

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::support::{AUDIENCE, ISSUER, JwksServer, TestKey, claims, claims_with, http};
use crate::auth::{AuthError, Authenticator, VerifierConfig};

const OTHER_ISSUER: &str = "https://idp.radiology.example/realms/pacs";
const OTHER_AUDIENCE: &str = "https://hub.example/api/hub#radiology";

/// Issuer A (ES256 keys, [`ISSUER`]) and issuer B (RS256 keys, [`OTHER_ISSUER`], its own
/// audience), each with its own JWKS server.
struct TwoIssuers {
    a_key: TestKey,
    b_key: TestKey,
    a_server: JwksServer,
    b_server: JwksServer,
    authenticator: Authenticator,
}

impl TwoIssuers {
    async fn start(a_key: TestKey, b_key: TestKey) -> Self {
        let a_server = JwksServer::start(&[&a_key]).await;
        let b_server = JwksServer::start(&[&b_key]).await;
        let a = a_server.config_for(ISSUER, vec![a_key.alg]);
        let mut b = b_server.config_for(OTHER_ISSUER, vec![b_key.alg]);
        b.audience = OTHER_AUDIENCE.to_owned();
        let authenticator = Authenticator::new(vec![a, b], http()).expect("two issuers");
        Self {
            a_key,
            b_key,
            a_server,
            b_server,
            authenticator,
        }
    }

    fn b_claims() -> serde_json::Value {
        let mut claims = claims_with("iss", json!(OTHER_ISSUER));
        claims["aud"] = json!(OTHER_AUDIENCE);
        claims
    }

    async fn refused(&self, token: &str, what: &str) -> AuthError {
        let err = self.authenticator.verify(token).await.expect_err(what);
        assert_eq!(err.http_status(), 401, "{what}: {err}");
        err
    }
}

#[tokio::test]
async fn tok_01_each_issuer_verifies_with_its_own_keys_and_audience() {
    let issuers = TwoIssuers::start(TestKey::es256("a-1"), TestKey::rsa("b-1")).await;
    let from_a = issuers.a_key.mint(&claims());
    let principal = issuers.authenticator.verify(&from_a).await.expect("A");
    assert_eq!(principal.subject.as_deref(), Some("user-1"));
    let from_b = issuers.b_key.mint(&TwoIssuers::b_claims());
    issuers.authenticator.verify(&from_b).await.expect("B");
    assert_eq!(issuers.a_server.hits(), 1);
    assert_eq!(issuers.b_server.hits(), 1);
    // Each issuer's audience is its own: B's token for A's audience is refused.
    let mut wrong_audience = TwoIssuers::b_claims();
    wrong_audience["aud"] = json!(AUDIENCE);
    let err = issuers
        .refused(&issuers.b_key.mint(&wrong_audience), "B for A's audience")
        .await;
    assert_eq!(err.reason(), "token audience does not include this hub");
}

#[tokio::test]
async fn tok_08_a_token_signed_by_one_issuer_naming_another_is_refused() {
    let issuers = TwoIssuers::start(TestKey::es256("a-1"), TestKey::es256("b-1")).await;
    issuers.authenticator.prefetch().await;
    // A signs, with A's key and kid, claims that name B: B's keys are the ones looked up.
    let forged = issuers.a_key.mint(&TwoIssuers::b_claims());
    let err = issuers.refused(&forged, "A's signature, B's iss").await;
    assert!(matches!(err, AuthError::UnknownKey), "{err}");
    // Same again when both issuers happen to use the same kid: B's key fails the signature.
    let twin = TwoIssuers::start(TestKey::es256("shared"), TestKey::es256("shared")).await;
    let forged = twin.a_key.mint(&TwoIssuers::b_claims());
    let err = twin.refused(&forged, "same kid").await;
    assert_eq!(err.reason(), "token signature is invalid");
    // And the honest tokens still pass.
    twin.authenticator
        .verify(&twin.a_key.mint(&claims()))
        .await
        .expect("A's own token");
    twin.authenticator
        .verify(&twin.b_key.mint(&TwoIssuers::b_claims()))
        .await
        .expect("B's own token");
}

#[tokio::test]
async fn tok_08_an_unknown_issuer_is_refused_before_any_key_fetch() {
    let issuers = TwoIssuers::start(TestKey::es256("a-1"), TestKey::rsa("b-1")).await;
    for (iss, reason) in [
        (
            json!("https://attacker.example"),
            "token issuer is not accepted",
        ),
        (json!(format!("{ISSUER}/")), "token issuer is not accepted"),
        (json!(ISSUER.to_uppercase()), "token issuer is not accepted"),
        (
            json!(["https://issuer.example/tenant-a"]),
            "token iss claim is malformed",
        ),
        (serde_json::Value::Null, "token lacks the iss claim"),
    ] {
        let token = issuers.a_key.mint(&claims_with("iss", iss.clone()));
        let err = issuers.refused(&token, &iss.to_string()).await;
        assert_eq!(err.reason(), reason, "{iss}");
    }
    assert_eq!(issuers.a_server.hits() + issuers.b_server.hits(), 0);
}

#[tokio::test]
async fn tok_04_each_issuer_has_its_own_algorithm_allowlist() {
    let (a_key, b_rsa, b_ec) = (
        TestKey::es256("a-1"),
        TestKey::rsa("b-rsa"),
        TestKey::es256("b-ec"),
    );
    let a_server = JwksServer::start(&[&a_key]).await;
    // B publishes an EC key too, but its allowlist names RSA only.
    let b_server = JwksServer::start(&[&b_rsa, &b_ec]).await;
    let authenticator = Authenticator::new(
        vec![
            a_server.config_for(ISSUER, vec![Algorithm::ES256]),
            b_server.config_for(OTHER_ISSUER, vec![Algorithm::RS256, Algorithm::PS256]),
        ],
        http(),
    )
    .expect("two issuers");
    let b_claims = claims_with("iss", json!(OTHER_ISSUER));
    let es256_for_b = b_ec.mint(&b_claims);
    let err = authenticator
        .verify(&es256_for_b)
        .await
        .expect_err("ES256 for B");
    assert_eq!(err.reason(), "token algorithm is not allowed");
    assert_eq!(b_server.hits(), 0, "refused before any key lookup");
    let ps256 = b_rsa.mint_as(Algorithm::PS256, &json!({"kid": b_rsa.kid}), &b_claims);
    authenticator.verify(&ps256).await.expect("PS256 for B");
    let rs256_for_a = b_rsa.mint(&claims());
    let err = authenticator
        .verify(&rs256_for_a)
        .await
        .expect_err("RS256 for A");
    assert_eq!(err.reason(), "token algorithm is not allowed");
    authenticator
        .verify(&a_key.mint(&claims()))
        .await
        .expect("ES256 for A");
}

#[test]
fn an_issuer_set_that_cannot_be_routed_is_refused() {
    let config = |issuer: &str| {
        VerifierConfig::new(
            issuer,
            "https://issuer.example/jwks.json",
            AUDIENCE,
            vec![Algorithm::ES256],
        )
    };
    let refused = |issuers: Vec<VerifierConfig>| match Authenticator::new(issuers, http()) {
        Err(AuthError::Config { reason }) => reason,
        other => panic!("accepted: {other:?}"),
    };
    assert!(refused(Vec::new()).contains("at least one issuer"));
    assert!(refused(vec![config(ISSUER), config(OTHER_ISSUER), config(ISSUER)]).contains("twice"));
    let mut mixed = config(OTHER_ISSUER);
    mixed.algorithms = vec![Algorithm::ES256, Algorithm::HS256];
    assert!(refused(vec![config(ISSUER), mixed]).contains("shared-secret"));
}
