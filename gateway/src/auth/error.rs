//! `AuthError`: why a request's token was refused, and the HTTP status that says so.
//!
//! Reasons are short lowercase developer text, safe to send to the client and to log:
//! they never contain the token, a claim value or a key id.

use std::borrow::Cow;

/// Why a token (or the verifier configuration) was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing bearer token")]
    Missing,
    /// The header or the token does not have the expected shape.
    #[error("{reason}")]
    Malformed {
        /// What is wrong with the shape.
        reason: &'static str,
    },
    /// More than one `Authorization` header: ambiguous, refused with 400.
    #[error("more than one authorization header")]
    DuplicateHeader,
    /// The token was carried in the query string: refused with 400, never read.
    #[error("access tokens are accepted only in the authorization header")]
    TokenInQuery,
    /// The token is well formed but not acceptable (signature, algorithm, claims).
    #[error("{reason}")]
    Invalid {
        /// Which check failed.
        reason: Cow<'static, str>,
    },
    /// The token names a signing key the issuer does not publish (after at most one refresh).
    #[error("token signing key is unknown")]
    UnknownKey,
    /// The issuer's JWKS could not be fetched and no usable cached copy exists.
    #[error("token signing keys are unavailable: {cause}")]
    JwksUnavailable {
        /// What went wrong while fetching (no URL, no body); for logs.
        cause: String,
    },
    /// An opaque token could not be checked: the introspection endpoint is down, slow, or
    /// answered something that is not an RFC 7662 response. Fails closed with 503.
    #[error("token introspection is unavailable: {cause}")]
    IntrospectionUnavailable {
        /// What went wrong (no token, no secret); for logs.
        cause: String,
    },
    /// The verifier configuration is unusable; raised by `Verifier::new` only.
    #[error("invalid token verifier configuration: {reason}")]
    Config {
        /// Which setting is wrong.
        reason: String,
    },
}

impl AuthError {
    pub(crate) fn invalid(reason: &'static str) -> Self {
        Self::Invalid {
            reason: Cow::Borrowed(reason),
        }
    }

    pub(crate) fn malformed(reason: &'static str) -> Self {
        Self::Malformed { reason }
    }

    pub(crate) fn config(reason: impl Into<String>) -> Self {
        Self::Config {
            reason: reason.into(),
        }
    }

    /// The HTTP status for this refusal: 400 for an ambiguous or misplaced credential,
    /// 503 when keys or introspection are unavailable, 500 for configuration, 401
    /// otherwise (send `WWW-Authenticate: Bearer` with 401).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::DuplicateHeader | Self::TokenInQuery => 400,
            Self::JwksUnavailable { .. } | Self::IntrospectionUnavailable { .. } => 503,
            Self::Config { .. } => 500,
            Self::Missing | Self::Malformed { .. } | Self::Invalid { .. } | Self::UnknownKey => 401,
        }
    }

    /// A one-line reason for the client: lowercase, no token, no internal detail.
    pub fn reason(&self) -> &str {
        match self {
            Self::Missing => "missing bearer token",
            Self::Malformed { reason } => reason,
            Self::DuplicateHeader => "more than one authorization header",
            Self::TokenInQuery => "access tokens are accepted only in the authorization header",
            Self::Invalid { reason } => reason,
            Self::UnknownKey => "token signing key is unknown",
            Self::JwksUnavailable { .. } => "token signing keys are unavailable, retry later",
            Self::IntrospectionUnavailable { .. } => {
                "token introspection is unavailable, retry later"
            }
            Self::Config { .. } => "token verification is misconfigured",
        }
    }

    /// Seconds a client should wait before retrying (`Retry-After`), for the refusals that
    /// are the hub's trouble rather than the token's.
    pub fn retry_after_seconds(&self) -> Option<u32> {
        match self {
            Self::JwksUnavailable { .. } | Self::IntrospectionUnavailable { .. } => {
                Some(RETRY_AFTER_SECONDS)
            }
            _ => None,
        }
    }
}

/// `Retry-After` for a 503 caused by the issuer's keys or introspection endpoint.
const RETRY_AFTER_SECONDS: u32 = 5;
