//! The test SMART issuer: an ES256 key pair, a JWKS endpoint on loopback, token minting,
//! and an RFC 7662 introspection endpoint for the opaque tokens it hands out.
//!
//! The issuer runs inside the test process (a tiny axum server on `127.0.0.1:0` serving
//! `GET /jwks.json`, its SMART configuration and `POST /introspect`) and mints real signed
//! access tokens, so the gateway runs its real verification path. It also mints
//! deliberately bad tokens that differ from a valid one in exactly one property (expired,
//! wrong issuer or audience, `alg: none`, HMAC, foreign key), and opaque tokens it can
//! revoke ([`introspection`]). It counts JWKS fetches, and can publish further keys beside
//! its own ([`TestIssuer::start_publishing`]): the attack corpus's keys of other kinds and
//! keys a hub must not trust.

mod introspection;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub use self::introspection::INTROSPECTION_CLIENT_ID;
use self::introspection::Introspection;
use crate::gateway::TEST_AUDIENCE;
use crate::jose::{self, KeyKind, TestKey};

/// Returns the current Unix time in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The in-process test issuer. Dropping it stops its JWKS server.
#[derive(Debug)]
pub struct TestIssuer {
    issuer: String,
    key: TestKey,
    foreign: TestKey,
    jwks_fetches: Arc<AtomicUsize>,
    introspection: Arc<Introspection>,
    server: JoinHandle<()>,
}

impl TestIssuer {
    /// Generates a key and serves its JWKS (and its SMART configuration naming it) on
    /// `127.0.0.1:0`.
    pub async fn start() -> Result<Self> {
        Self::start_publishing(Vec::new()).await
    }

    /// Like [`TestIssuer::start`], publishing `extra` JWKs in the JWKS after the issuer's
    /// own key (the attack corpus's other key kinds, and keys a hub must not trust).
    pub async fn start_publishing(extra: Vec<Value>) -> Result<Self> {
        let kid = format!("test-{}", uuid::Uuid::new_v4().simple());
        let key = TestKey::generate(KeyKind::P256, &kid)?;
        // Same kid as the real key, so only the signature check can reject it.
        let foreign = TestKey::generate(KeyKind::P256, &kid)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the test issuer")?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let mut keys = vec![key.jwk().clone()];
        keys.extend(extra);
        let jwks = json!({ "keys": keys });
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&jwks_fetches);
        // What a SMART authorization server publishes; the gateway reads `jwks_uri` from it
        // when it is not given a JWKS URL.
        let smart_configuration = json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/jwks.json"),
            "token_endpoint": format!("{issuer}/token"),
            "introspection_endpoint": format!("{issuer}/introspect"),
            "capabilities": ["client-confidential-asymmetric"],
        });
        let introspection = Arc::new(Introspection::new());
        let app = axum::Router::new()
            .route(
                "/jwks.json",
                axum::routing::get(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let jwks = jwks.clone();
                    async move { axum::Json(jwks) }
                }),
            )
            .route(
                "/.well-known/smart-configuration",
                axum::routing::get(move || {
                    let document = smart_configuration.clone();
                    async move { axum::Json(document) }
                }),
            )
            .route(
                "/introspect",
                axum::routing::post(introspection::introspect)
                    .with_state(Arc::clone(&introspection)),
            );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            issuer,
            key,
            foreign,
            jwks_fetches,
            introspection,
            server,
        })
    }

    /// Returns the issuer's signing key (ES256, published first in the JWKS).
    pub fn key(&self) -> &TestKey {
        &self.key
    }

    /// Returns how many times the JWKS has been fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Returns the issuer identifier (`iss`), `http://127.0.0.1:PORT`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Returns the JWKS URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.issuer)
    }

    /// Returns valid claims for `topic` with space-separated `scopes`, expiring in
    /// `expires_in` seconds.
    pub fn claims(&self, topic: &str, scopes: &str, expires_in: i64) -> Value {
        let now = unix_now();
        json!({
            "iss": self.issuer,
            "aud": TEST_AUDIENCE,
            "exp": now + expires_in,
            "iat": now,
            "nbf": now,
            "sub": "test-user",
            "client_id": "hub-tests",
            "scope": scopes,
            "hub.topic": topic,
        })
    }

    /// Signs arbitrary claims with the issuer's key.
    pub fn sign(&self, claims: &Value) -> Result<String> {
        sign_jwt(&self.key, claims)
    }

    /// Mints a valid token.
    pub fn mint(&self, topic: &str, scopes: &str, expires_in: i64) -> Result<String> {
        self.sign(&self.claims(topic, scopes, expires_in))
    }

    /// Mints a token that expired two minutes ago (beyond the 60 s leeway).
    pub fn expired(&self, topic: &str, scopes: &str) -> Result<String> {
        let mut claims = self.claims(topic, scopes, 3600);
        let now = unix_now();
        claims["iat"] = json!(now - 600);
        claims["nbf"] = json!(now - 600);
        claims["exp"] = json!(now - 120);
        self.sign(&claims)
    }

    /// Mints a token whose issuer differs by a trailing slash.
    pub fn wrong_issuer(&self, topic: &str, scopes: &str) -> Result<String> {
        let mut claims = self.claims(topic, scopes, 3600);
        claims["iss"] = json!(format!("{}/", self.issuer));
        self.sign(&claims)
    }

    /// Mints a token for another audience.
    pub fn wrong_audience(&self, topic: &str, scopes: &str) -> Result<String> {
        let mut claims = self.claims(topic, scopes, 3600);
        claims["aud"] = json!("some-other-service");
        self.sign(&claims)
    }

    /// Builds an unsigned `alg: none` token with otherwise valid claims.
    pub fn alg_none(&self, topic: &str, scopes: &str) -> Result<String> {
        let header = json!({ "alg": "none", "typ": "JWT", "kid": self.key.kid() });
        let claims = self.claims(topic, scopes, 3600);
        Ok(jose::unsigned(
            &serde_json::to_vec(&header)?,
            &serde_json::to_vec(&claims)?,
            "",
        ))
    }

    /// Mints an HS256 token keyed with the issuer's public JWK (algorithm confusion).
    pub fn hmac(&self, topic: &str, scopes: &str) -> Result<String> {
        let header = json!({ "alg": "HS256", "typ": "JWT", "kid": self.key.kid() });
        let header = serde_json::to_vec(&header)?;
        let payload = serde_json::to_vec(&self.claims(topic, scopes, 3600))?;
        let secret = serde_json::to_vec(self.key.jwk())?;
        let mac = jose::hmac(
            "HS256",
            &secret,
            jose::signing_input(&header, &payload).as_bytes(),
        )?;
        Ok(jose::unsigned(&header, &payload, &jose::b64(mac)))
    }

    /// Mints a token signed by a key the JWKS does not contain (but with its `kid`).
    pub fn foreign_key(&self, topic: &str, scopes: &str) -> Result<String> {
        sign_jwt(&self.foreign, &self.claims(topic, scopes, 3600))
    }

    /// Hands out an opaque (non-JWT) token that the introspection endpoint answers as active
    /// with [`TestIssuer::claims`], until it expires or is revoked.
    pub fn mint_opaque(&self, topic: &str, scopes: &str, expires_in: i64) -> String {
        self.introspection
            .issue(self.claims(topic, scopes, expires_in))
    }

    /// Revokes an opaque token: introspection answers `active: false` from now on.
    pub fn revoke(&self, token: &str) {
        self.introspection.revoke(token);
    }

    /// Returns the introspection endpoint (also named in the SMART configuration).
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.issuer)
    }

    /// Returns the client secret the hub must present (with [`INTROSPECTION_CLIENT_ID`]).
    pub fn introspection_secret(&self) -> &str {
        self.introspection.secret()
    }

    /// Makes the introspection endpoint answer 503 (`true`) or normally again.
    pub fn set_introspection_failing(&self, failing: bool) {
        self.introspection.set_failing(failing);
    }

    /// Returns how many introspection requests the endpoint has received.
    pub fn introspection_requests(&self) -> usize {
        self.introspection.requests()
    }

    /// Returns strings that are not tokens at all.
    pub fn garbage() -> Vec<String> {
        vec![
            "garbage".to_owned(),
            "a.b.c".to_owned(),
            "eyJhbGciOiJFUzI1NiJ9.e30".to_owned(),
            "....".to_owned(),
            "x".repeat(2000),
        ]
    }
}

/// Signs `claims` with `key` under its own algorithm, `typ: JWT` and its `kid` in the header.
pub fn sign_jwt(key: &TestKey, claims: &Value) -> Result<String> {
    let header = json!({ "alg": key.alg(), "typ": "JWT", "kid": key.kid() });
    jose::sign_compact(
        key,
        key.alg(),
        &serde_json::to_vec(&header)?,
        &serde_json::to_vec(claims)?,
    )
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    use super::*;

    async fn verify(issuer: &TestIssuer, token: &str) -> Result<Value> {
        let jwks: JwkSet = reqwest::get(issuer.jwks_url()).await?.json().await?;
        let header = jsonwebtoken::decode_header(token)?;
        let kid = header.kid.context("no kid")?;
        let jwk = jwks.find(&kid).context("kid not in the JWKS")?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[issuer.issuer()]);
        validation.set_audience(&[TEST_AUDIENCE]);
        Ok(jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation)?.claims)
    }

    #[tokio::test]
    async fn minted_tokens_verify_against_the_served_jwks() -> Result<()> {
        let issuer = TestIssuer::start().await?;
        let claims = verify(
            &issuer,
            &issuer.mint("topic-0123456789abcdef", "fhircast/*.read", 60)?,
        )
        .await?;
        assert_eq!(claims["hub.topic"], "topic-0123456789abcdef");
        assert_eq!(claims["scope"], "fhircast/*.read");
        Ok(())
    }

    #[tokio::test]
    async fn forged_tokens_do_not_verify() -> Result<()> {
        let issuer = TestIssuer::start().await?;
        let topic = "topic-0123456789abcdef";
        for (what, token) in [
            ("expired", issuer.expired(topic, "x")?),
            ("wrong issuer", issuer.wrong_issuer(topic, "x")?),
            ("wrong audience", issuer.wrong_audience(topic, "x")?),
            ("alg none", issuer.alg_none(topic, "x")?),
            ("hmac", issuer.hmac(topic, "x")?),
            ("foreign key", issuer.foreign_key(topic, "x")?),
        ] {
            assert!(
                verify(&issuer, &token).await.is_err(),
                "{what} token verified"
            );
        }
        Ok(())
    }

    async fn introspect(issuer: &TestIssuer, secret: &str, token: &str) -> Result<(u16, Value)> {
        let response = reqwest::Client::new()
            .post(issuer.introspection_url())
            .basic_auth(INTROSPECTION_CLIENT_ID, Some(secret))
            .form(&[("token", token)])
            .send()
            .await?;
        Ok((response.status().as_u16(), response.json().await?))
    }

    #[tokio::test]
    async fn introspection_answers_for_issued_tokens_until_revoked() -> Result<()> {
        let issuer = TestIssuer::start().await?;
        let secret = issuer.introspection_secret().to_owned();
        let token = issuer.mint_opaque("topic-0123456789abcdef", "fhircast/*.read", 60);
        assert!(!token.contains('.'), "an opaque token is not a JWS");
        let (status, answer) = introspect(&issuer, &secret, &token).await?;
        assert_eq!(status, 200);
        assert_eq!(answer["active"], true);
        assert_eq!(answer["iss"], issuer.issuer());
        assert_eq!(answer["hub.topic"], "topic-0123456789abcdef");
        let (status, _) = introspect(&issuer, "wrong-secret", &token).await?;
        assert_eq!(status, 401, "the hub's credentials are checked");
        issuer.revoke(&token);
        let (_, answer) = introspect(&issuer, &secret, &token).await?;
        assert_eq!(answer, json!({"active": false}));
        let expired = issuer.mint_opaque("topic-0123456789abcdef", "fhircast/*.read", -1);
        assert_eq!(
            introspect(&issuer, &secret, &expired).await?.1["active"],
            false
        );
        assert_eq!(issuer.introspection_requests(), 4);
        Ok(())
    }
}
