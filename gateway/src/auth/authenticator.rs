//! `Authenticator`: the one door for bearer tokens, whichever trusted issuer they come from.
//!
//! A compact JWS is read once, unverified, for its `iss`; that picks the issuer's
//! [`Verifier`], which checks algorithm, key, signature and claims (`iss` again, byte for
//! byte, under the signature). An `iss` no issuer has is refused before any key is looked
//! up, so a made-up issuer costs no fetch. A token that is not a three-segment JWS goes to
//! the [`Introspector`] of the one issuer configured for introspection, if any; otherwise
//! it is refused as malformed.
//!
//! At most one issuer may introspect: an opaque token does not say who issued it, and the
//! hub never shows one issuer's token to another (the second could replay it).

use std::fmt;
use std::sync::Arc;

use axum::http::HeaderMap;
use tracing::{info, warn};

use super::introspection::Introspector;
use super::verified::Verified;
use super::verifier::log_refusal;
use super::{AuthError, Principal, Verifier, VerifierConfig, bearer, token};

/// Verifies access tokens of every trusted issuer. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    issuers: Vec<Verifier>,
    introspector: Option<Introspector>,
    /// Signed tokens already verified (see [`Verified`]).
    verified: Verified,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("issuers", &self.inner.issuers)
            .field("introspector", &self.inner.introspector)
            .finish()
    }
}

impl Authenticator {
    /// Checks every issuer's configuration and the set as a whole (at least one issuer,
    /// each `iss` once, at most one introspecting); no network access yet.
    pub fn new(issuers: Vec<VerifierConfig>, http: reqwest::Client) -> Result<Self, AuthError> {
        check_issuer_set(&issuers)?;
        let introspector = match issuers.iter().find(|c| c.introspection.is_some()) {
            Some(config) => Introspector::new(config)?,
            None => None,
        };
        let issuers = issuers
            .into_iter()
            .map(|config| Verifier::new(config, http.clone()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                issuers,
                introspector,
                verified: Verified::default(),
            }),
        })
    }

    /// The issuers' configurations, in the order given.
    pub fn issuers(&self) -> impl Iterator<Item = &VerifierConfig> {
        self.inner.issuers.iter().map(Verifier::config)
    }

    /// Fetches every issuer's JWKS once and logs the ones that fail (the first request
    /// for that issuer fetches again). Call at start-up.
    pub async fn prefetch(&self) {
        for verifier in &self.inner.issuers {
            let issuer = &verifier.config().issuer;
            match verifier.prefetch().await {
                Ok(()) => info!(target: "auth", %issuer, "issuer keys ready"),
                Err(err) => warn!(target: "auth", %issuer, error = %err,
                    "could not fetch the issuer's JWKS yet; will retry on first use"),
            }
        }
    }

    /// Verifies the bearer token of a request (see [`bearer::bearer_token`]).
    pub async fn verify_headers(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let token = bearer::bearer_token(headers).inspect_err(log_refusal)?;
        self.verify(token).await
    }

    /// Verifies an access token: a compact JWS of a trusted issuer, or an opaque token the
    /// introspecting issuer vouches for.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_inner(token).await.inspect_err(log_refusal)
    }

    async fn verify_inner(&self, token: &str) -> Result<Principal, AuthError> {
        token::check_length(token)?;
        if !token::is_compact_jws(token) {
            return match &self.inner.introspector {
                Some(introspector) => introspector.verify(token).await,
                None => Err(AuthError::malformed(
                    "token is not a compact jws (three segments)",
                )),
            };
        }
        if let Some(principal) = self.inner.verified.get(token) {
            return Ok(principal);
        }
        let jws = token::read(token)?;
        let issuer = jws.issuer()?;
        let verifier = self
            .inner
            .issuers
            .iter()
            .find(|verifier| verifier.config().issuer == issuer)
            .ok_or_else(|| AuthError::invalid("token issuer is not accepted"))?;
        let principal = verifier.verify_jws(&jws).await?;
        self.inner.verified.insert(token, &principal);
        Ok(principal)
    }
}

/// Refuses a set of issuers the [`Authenticator`] cannot route between: none at all, an
/// `iss` configured twice, or more than one issuer introspecting opaque tokens.
pub fn check_issuer_set(issuers: &[VerifierConfig]) -> Result<(), AuthError> {
    if issuers.is_empty() {
        return Err(AuthError::config("at least one issuer must be trusted"));
    }
    for (at, config) in issuers.iter().enumerate() {
        if issuers[..at]
            .iter()
            .any(|seen| seen.issuer == config.issuer)
        {
            return Err(AuthError::config(format!(
                "issuer {} is configured twice",
                config.issuer
            )));
        }
    }
    if issuers
        .iter()
        .filter(|config| config.introspection.is_some())
        .count()
        > 1
    {
        return Err(AuthError::config(
            "only one issuer may introspect opaque tokens: an opaque token does not say who \
             issued it, and the hub must not send one issuer's tokens to another",
        ));
    }
    Ok(())
}
