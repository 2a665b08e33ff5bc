//! SMART access-token verification: the one room where bearer tokens are read.
//!
//! A request's `Authorization: Bearer <token>` is parsed ([`bearer`]) and handed to the
//! [`Authenticator`], which trusts one or more issuers. A JWT's unverified `iss` picks the
//! issuer's [`Verifier`]: its header is checked against that issuer's algorithm allowlist,
//! its signing key looked up in the issuer's JWKS ([`jwks`], cached, refreshed single-flight
//! and rate-limited on an unknown `kid`; found through the issuer's metadata by
//! [`discovery`] when not configured), its signature and registered claims verified
//! ([`verifier`], [`claims`]). An opaque token goes to the introspecting issuer's RFC 7662
//! endpoint ([`introspection`], cached, failing closed). Either way the result reaches the
//! HTTP handlers as a [`Principal`]: scopes, bound topics and expiry.
//!
//! Rules kept here (docs/api.md "Authorization", security catalogue TOK-01…TOK-19):
//! asymmetric algorithms only, never `none` or HMAC; keys come only from the configured
//! JWKS, never from the token header (`jwk`, `jku`, `x5u`, `x5c` are ignored); `iss` is
//! compared byte for byte; `aud`, `exp` are required; `nbf`/`iat` honoured with leeway;
//! `typ` and the token's shape judged by the issuer's [`TokenTypePolicy`] ([`token_type`]).
//! Tokens, client secrets and claim values are never logged, only short reasons.

mod authenticator;
mod bearer;
mod claims;
mod config;
mod discovery;
mod error;
mod http_body;
mod introspection;
mod jwks;
mod keyset;
mod principal;
mod self_test;
mod token;
mod token_type;
mod verified;
mod verifier;

#[cfg(test)]
mod tests;

pub use authenticator::{Authenticator, check_issuer_set};
pub use bearer::{bearer_token, reject_token_in_query};
pub use config::{
    DEFAULT_ALGORITHMS, DEFAULT_LEEWAY, DEFAULT_REFRESH_MIN_INTERVAL, DEFAULT_TOPIC_CLAIM,
    MAX_LEEWAY, VerifierConfig, check_allowlist,
};
pub use discovery::{IssuerMetadata, discover_metadata};
pub use error::AuthError;
pub use introspection::{
    ClientSecret, DEFAULT_CACHE_TTL, DEFAULT_REQUEST_TIMEOUT, IntrospectionConfig, MAX_CACHE_TTL,
};
pub use principal::Principal;
pub use self_test::crypto_self_test;
pub use token_type::{TokenTypePolicy, UnknownTokenTypePolicy};
pub use verifier::Verifier;
