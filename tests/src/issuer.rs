//! The test SMART issuer: an ES256 key pair, a JWKS endpoint on loopback, token minting.
//!
//! The issuer runs inside the test process (a tiny axum server on `127.0.0.1:0` serving
//! `GET /jwks.json`) and mints real signed access tokens, so the gateway runs its real
//! verification path. It also mints deliberately bad tokens that differ from a valid one in
//! exactly one property (expired, wrong issuer or audience, `alg: none`, HMAC, foreign key).
//! It counts JWKS fetches, and can publish further keys beside its own
//! ([`TestIssuer::start_publishing`]): the attack corpus's keys of other kinds and keys a hub
//! must not trust.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

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
            "capabilities": ["client-confidential-asymmetric"],
        });
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
            );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            issuer,
            key,
            foreign,
            jwks_fetches,
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
}
