//! The dev-only SMART issuer: mints access tokens for local development so the real
//! verification path runs even on a laptop. Only started with `--dev-issuer` on a loopback
//! bind (the caller checks [`is_loopback_bind`]). Its ES256 key is generated at
//! construction and lives only in memory, unless the gateway is given `--dev-issuer-key`:
//! then every gateway of a dev cluster given the same file signs with the same key, and
//! with the same `--dev-issuer-url` (the `iss` of its tokens) and `--audience`, a token
//! minted by one gateway is accepted by all. Every log line it writes says it is dev-only,
//! and no line contains a token, a topic or the key.
//!
//! Routes (relative to the mount point, `/dev-issuer`): `POST /token`, `GET /jwks.json`,
//! `GET /.well-known/smart-configuration`; see [`DevIssuer::router`].

mod key;
mod routes;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};
use tracing::warn;

pub use self::key::SigningKey;

/// Scope granted when a token request names none.
pub const DEFAULT_SCOPE: &str = "fhircast/*.read fhircast/*.write";
/// Token lifetime when a request names none, in seconds.
pub const DEFAULT_EXPIRES_IN: u64 = 3600;
/// Longest token lifetime the dev issuer mints, in seconds.
pub const MAX_EXPIRES_IN: u64 = 86_400;
/// `sub` of minted tokens when the request names no subject.
pub const DEFAULT_SUBJECT: &str = "dev-user";
/// `client_id` of every minted token.
pub const DEV_CLIENT_ID: &str = "dev-client";

const MAX_SCOPE_LEN: usize = 1024;
const MAX_SUBJECT_LEN: usize = 256;
const REGISTERED_CLAIMS: [&str; 10] = [
    "iss",
    "aud",
    "sub",
    "exp",
    "nbf",
    "iat",
    "jti",
    "scope",
    "client_id",
    "azp",
];

/// Why the dev issuer refused to start or to mint.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    /// A constructor argument is unusable.
    #[error("dev issuer configuration: {0}")]
    Config(String),
    /// The ephemeral key could not be generated.
    #[error("dev issuer could not generate its signing key")]
    KeyGeneration,
    /// The `--dev-issuer-key` file is missing, unreadable or not a PEM PKCS#8 EC P-256
    /// private key.
    #[error("dev issuer key file {path} {reason}")]
    Key {
        /// The file as given.
        path: String,
        /// Why it is unusable (never the key's content).
        reason: String,
    },
    /// The token request is invalid; the text is the reason for the client.
    #[error("{0}")]
    BadRequest(String),
    /// The token request has a body type other than form or JSON.
    #[error("token requests must be application/x-www-form-urlencoded or application/json")]
    UnsupportedMediaType,
    /// Signing failed.
    #[error("dev issuer could not sign the token")]
    Signing,
}

impl DevIssuerError {
    /// The HTTP status of this error when it answers a request.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::UnsupportedMediaType => 415,
            Self::Config(_) | Self::KeyGeneration | Self::Key { .. } | Self::Signing => 500,
        }
    }

    fn bad_request(reason: impl Into<String>) -> Self {
        Self::BadRequest(reason.into())
    }
}

/// A dev-only token issuer with an ES256 key: ephemeral, or shared through a key file.
pub struct DevIssuer {
    issuer_url: String,
    hub_url: String,
    audience: String,
    topic_claim: String,
    key: SigningKey,
}

impl fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer_url", &self.issuer_url)
            .field("hub_url", &self.hub_url)
            .field("audience", &self.audience)
            .field("topic_claim", &self.topic_claim)
            .field("kid", &self.key.kid())
            .finish_non_exhaustive()
    }
}

impl DevIssuer {
    /// Creates the issuer and its ephemeral key. `issuer_url` is the public URL of the
    /// mount point (for example `http://127.0.0.1:8080/dev-issuer`), without a trailing
    /// slash; it becomes the `iss` claim and the base of the other URLs.
    pub fn new(
        issuer_url: String,
        hub_url: String,
        audience: String,
        topic_claim: String,
    ) -> Result<Self, DevIssuerError> {
        let key = SigningKey::generate()?;
        Self::assemble(
            (issuer_url, hub_url, audience, topic_claim),
            key,
            "generated an ephemeral signing key",
        )
    }

    /// Like [`DevIssuer::new`], signing with `key` (read from `--dev-issuer-key`), so that
    /// every issuer built with the same key and `issuer_url` mints tokens the others'
    /// JWKS verify.
    pub fn with_key(
        issuer_url: String,
        hub_url: String,
        audience: String,
        topic_claim: String,
        key: SigningKey,
    ) -> Result<Self, DevIssuerError> {
        Self::assemble(
            (issuer_url, hub_url, audience, topic_claim),
            key,
            "signing with the key file given by --dev-issuer-key",
        )
    }

    /// Checks the settings, says where the key came from (dev-only), builds the issuer.
    fn assemble(
        (issuer_url, hub_url, audience, topic_claim): (String, String, String, String),
        key: SigningKey,
        origin: &str,
    ) -> Result<Self, DevIssuerError> {
        check_settings(&issuer_url, &hub_url, &audience, &topic_claim)?;
        warn!(
            target: "dev_issuer",
            issuer = %issuer_url,
            kid = %key.kid(),
            "dev-only issuer: {origin}; never use in production"
        );
        Ok(Self {
            issuer_url,
            hub_url,
            audience,
            topic_claim,
            key,
        })
    }

    /// The `kid` of the signing key (its RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    /// The URL of the JWK set: `{issuer_url}/jwks.json`.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.issuer_url)
    }

    /// The issuer URL (`iss` of minted tokens).
    pub fn issuer_url(&self) -> &str {
        &self.issuer_url
    }

    /// The token endpoint: `{issuer_url}/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.issuer_url)
    }

    /// The hub URL returned as `hub.url` by the token endpoint.
    pub fn hub_url(&self) -> &str {
        &self.hub_url
    }

    /// The routes, to be nested at the mount point (`/dev-issuer`).
    pub fn router(self: Arc<Self>) -> axum::Router {
        routes::router(self)
    }

    /// Mints a token for `topic` with `scope`, valid for `expires_in` seconds, for the
    /// default subject.
    pub fn mint(
        &self,
        topic: &str,
        scope: &str,
        expires_in: u64,
    ) -> Result<String, DevIssuerError> {
        self.mint_for(DEFAULT_SUBJECT, topic, scope, expires_in)
    }

    /// Like [`DevIssuer::mint`] with an explicit subject.
    pub fn mint_for(
        &self,
        subject: &str,
        topic: &str,
        scope: &str,
        expires_in: u64,
    ) -> Result<String, DevIssuerError> {
        fhircast_proto::ids::validate_topic(topic)
            .map_err(|err| DevIssuerError::bad_request(err.reason()))?;
        check_scope(scope)?;
        check_subject(subject)?;
        if expires_in == 0 || expires_in > MAX_EXPIRES_IN {
            return Err(DevIssuerError::bad_request(format!(
                "expires_in must be 1 to {MAX_EXPIRES_IN} seconds"
            )));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| DevIssuerError::Signing)?
            .as_secs();
        let mut claims = json!({
            "iss": self.issuer_url,
            "aud": self.audience,
            "sub": subject,
            "client_id": DEV_CLIENT_ID,
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "scope": scope,
            "jti": fhircast_proto::ids::random_token(),
        });
        if let Value::Object(map) = &mut claims {
            map.insert(self.topic_claim.clone(), Value::String(topic.to_owned()));
        }
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.key.kid().to_owned());
        let token = jsonwebtoken::encode(&header, &claims, self.key.encoding())
            .map_err(|_| DevIssuerError::Signing)?;
        warn!(target: "dev_issuer", expires_in, "dev-only issuer: minted token");
        Ok(token)
    }

    fn jwks(&self) -> Value {
        json!({ "keys": [self.key.public_jwk()] })
    }

    fn smart_configuration(&self) -> Value {
        json!({
            "issuer": self.issuer_url,
            "jwks_uri": self.jwks_url(),
            "token_endpoint": self.token_url(),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": [
                "fhircast/*.read", "fhircast/*.write", "fhircast/*.*",
                "fhircast/Patient-open.read", "fhircast/Patient-open.write",
            ],
        })
    }
}

/// True only for 127.0.0.0/8 and `::1`; the unspecified addresses (`0.0.0.0`, `::`)
/// listen on every interface and are not loopback.
pub fn is_loopback_bind(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => ip.is_loopback(),
    }
}

fn check_settings(
    issuer_url: &str,
    hub_url: &str,
    audience: &str,
    topic_claim: &str,
) -> Result<(), DevIssuerError> {
    check_issuer_url(issuer_url)?;
    if hub_url.is_empty() || audience.is_empty() {
        return Err(DevIssuerError::Config(
            "hub url and audience must not be empty".to_owned(),
        ));
    }
    if topic_claim.is_empty() || REGISTERED_CLAIMS.contains(&topic_claim) {
        return Err(DevIssuerError::Config(
            "topic claim must be a non-empty, non-registered claim name".to_owned(),
        ));
    }
    Ok(())
}

/// Checks an issuer URL (`--dev-issuer-url`): http or https, without a trailing `/`, a
/// query or a fragment.
pub fn check_issuer_url(raw: &str) -> Result<(), DevIssuerError> {
    let config = |reason: &str| Err(DevIssuerError::Config(reason.to_owned()));
    let Ok(url) = reqwest::Url::parse(raw) else {
        return config("issuer url is not a url");
    };
    if !matches!(url.scheme(), "http" | "https") {
        return config("issuer url must be http or https");
    }
    if raw.ends_with('/') || url.query().is_some() || url.fragment().is_some() {
        return config("issuer url must not end with '/' or carry a query or fragment");
    }
    Ok(())
}

/// RFC 6749 §3.3: space-separated tokens of visible ASCII except `"` and `\`.
fn check_scope(scope: &str) -> Result<(), DevIssuerError> {
    let valid = !scope.trim().is_empty()
        && scope.len() <= MAX_SCOPE_LEN
        && scope
            .bytes()
            .all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\'));
    if valid {
        Ok(())
    } else {
        Err(DevIssuerError::bad_request(format!(
            "scope must be 1 to {MAX_SCOPE_LEN} characters of space-separated scope tokens"
        )))
    }
}

fn check_subject(subject: &str) -> Result<(), DevIssuerError> {
    if subject.is_empty()
        || subject.len() > MAX_SUBJECT_LEN
        || subject.chars().any(char::is_control)
    {
        return Err(DevIssuerError::bad_request(format!(
            "subject must be 1 to {MAX_SUBJECT_LEN} characters without control characters"
        )));
    }
    Ok(())
}
