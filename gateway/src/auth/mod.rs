//! SMART access-token verification: the one room where bearer tokens are read.
//!
//! A request's `Authorization: Bearer <jwt>` is parsed ([`bearer`]), its header checked
//! against the algorithm allowlist, its signing key looked up in the issuer's JWKS
//! ([`jwks`], cached, refreshed single-flight and rate-limited on an unknown `kid`; found
//! through the issuer's metadata by [`discovery`] when not configured), its
//! signature and registered claims verified ([`verifier`]), and the result handed to the
//! HTTP handlers as a [`Principal`]: scopes, bound topics and expiry.
//!
//! Rules kept here (docs/api.md "Authorization", security catalogue TOK-01…TOK-19):
//! asymmetric algorithms only, never `none` or HMAC; keys come only from the configured
//! JWKS, never from the token header (`jwk`, `jku`, `x5u`, `x5c` are ignored); `iss` is
//! compared byte for byte; `aud`, `exp` are required; `nbf`/`iat` honoured with leeway.
//! Tokens and claim values are never logged, only short reasons.

mod bearer;
mod claims;
mod config;
mod discovery;
mod error;
mod jwks;
mod keyset;
mod principal;
mod self_test;
mod token;
mod verifier;

#[cfg(test)]
mod tests;

pub use bearer::{bearer_token, reject_token_in_query};
pub use config::{
    DEFAULT_LEEWAY, DEFAULT_REFRESH_MIN_INTERVAL, DEFAULT_TOPIC_CLAIM, VerifierConfig,
};
pub use discovery::discover_jwks_url;
pub use error::AuthError;
pub use principal::Principal;
pub use self_test::crypto_self_test;
pub use verifier::Verifier;
