//! `Verifier`: the whole check of one access token, from bearer header to [`Principal`].

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::IgnoredAny;
use serde_json::Value;
use tracing::debug;

use super::jwks::{self, JwksCache};
use super::keyset::KeySet;
use super::token::UnverifiedJws;
use super::{AuthError, Principal, VerifierConfig, claims, token};

/// Verifies SMART access tokens against one issuer. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: VerifierConfig,
    jwks: Arc<JwksCache>,
    validations: Vec<(Algorithm, Validation)>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.inner.config)
            .field("jwks", &self.inner.jwks)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Checks the configuration and builds a verifier; no network access yet.
    pub fn new(config: VerifierConfig, http: reqwest::Client) -> Result<Self, AuthError> {
        config.validate()?;
        let validations = config
            .algorithms
            .iter()
            .map(|&alg| (alg, validation(&config, alg)))
            .collect();
        let jwks = Arc::new(JwksCache::new(
            config.jwks_url.clone(),
            http,
            config.refresh_min_interval,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                jwks,
                validations,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &VerifierConfig {
        &self.inner.config
    }

    /// Fetches the issuer's JWKS once; call at start-up and log a failure (the first
    /// request fetches again).
    pub async fn prefetch(&self) -> Result<(), AuthError> {
        self.inner.jwks.prefetch().await
    }

    /// Verifies a compact JWS access token of this issuer (requests go through the
    /// [`Authenticator`](super::Authenticator), which picks the issuer).
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let jws = token::read(token).inspect_err(log_refusal)?;
        self.verify_jws(&jws).await.inspect_err(log_refusal)
    }

    /// Verifies a compact JWS access token against a given JWK set instead of the issuer's:
    /// the checks of [`Verifier::verify`] with the key looked up in `jwks` (no cache, no
    /// network, the configured `jwks_url` unused). For the `access_token` fuzz target and
    /// tests that need verification without an issuer.
    #[doc(hidden)]
    pub fn verify_with_jwks(&self, token: &str, jwks: &Value) -> Result<Principal, AuthError> {
        let keys = KeySet::from_document(jwks).ok_or_else(|| AuthError::JwksUnavailable {
            cause: "the document is not a jwk set".to_owned(),
        })?;
        let jws = token::read(token)?;
        let validation = self.validation_for(&jws)?;
        self.check_type(&jws)?;
        let key = jwks::decide(&keys, jws.header().kid.as_deref(), jws.header().alg)?
            .ok_or(AuthError::UnknownKey)?;
        self.check_signed(&jws, validation, &key)
    }

    /// Verifies a token already read (the [`Authenticator`](super::Authenticator) reads it
    /// once to pick the issuer): algorithm allowlist, token type, key, signature, then the
    /// claims.
    pub(crate) async fn verify_jws(&self, jws: &UnverifiedJws<'_>) -> Result<Principal, AuthError> {
        let validation = self.validation_for(jws)?;
        self.check_type(jws)?;
        let key = self
            .inner
            .jwks
            .key_for(jws.header().kid.as_deref(), jws.header().alg)
            .await?;
        self.check_signed(jws, validation, &key)
    }

    /// The validation of the token's algorithm, if the allowlist names it.
    fn validation_for(&self, jws: &UnverifiedJws<'_>) -> Result<&Validation, AuthError> {
        self.inner
            .validations
            .iter()
            .find_map(|(alg, validation)| (*alg == jws.header().alg).then_some(validation))
            .ok_or_else(|| AuthError::invalid("token algorithm is not allowed"))
    }

    /// The issuer's token type policy, before any key is looked up: a token refused for its
    /// type never costs a JWKS fetch.
    fn check_type(&self, jws: &UnverifiedJws<'_>) -> Result<(), AuthError> {
        self.inner
            .config
            .token_type_policy
            .check(jws.header().typ.as_deref(), jws.claims())
    }

    /// The signature with `key`, then the claims.
    fn check_signed(
        &self,
        jws: &UnverifiedJws<'_>,
        validation: &Validation,
        key: &DecodingKey,
    ) -> Result<Principal, AuthError> {
        jsonwebtoken::decode::<IgnoredAny>(jws.token(), key, validation).map_err(refusal)?;
        // The signature holds over the payload these claims were read from (strictly:
        // duplicate members, integer dates, claim types).
        claims::principal(jws.claims(), &self.inner.config, SystemTime::now())
    }
}

fn validation(config: &VerifierConfig, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.validate_aud = true;
    validation.leeway = config.leeway.as_secs();
    validation
}

/// Maps a jsonwebtoken failure to a reason that names the check, never the value.
fn refusal(err: jsonwebtoken::errors::Error) -> AuthError {
    let reason: &'static str = match err.kind() {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token is not valid yet",
        ErrorKind::InvalidIssuer => "token issuer is not accepted",
        ErrorKind::InvalidAudience => "token audience does not include this hub",
        ErrorKind::InvalidSignature => "token signature is invalid",
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "token algorithm is not allowed"
        }
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => "token lacks the exp claim",
            "iss" => "token lacks the iss claim",
            "aud" => "token lacks the aud claim",
            _ => "token lacks a required claim",
        },
        ErrorKind::InvalidClaimFormat(claim) => match claim.as_str() {
            "exp" => "token exp claim is malformed",
            "nbf" => "token nbf claim is malformed",
            "iss" => "token iss claim is malformed",
            "aud" => "token aud claim is malformed",
            _ => "token claim is malformed",
        },
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => return AuthError::malformed("token is malformed"),
        _ => "token is invalid",
    };
    AuthError::invalid(reason)
}

pub(super) fn log_refusal(err: &AuthError) {
    debug!(target: "auth", status = err.http_status(), reason = %err.reason(), "token refused");
}
