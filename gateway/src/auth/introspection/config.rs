//! `IntrospectionConfig`: where an issuer's RFC 7662 introspection endpoint is, the hub's
//! client credentials for it, and how long answers are cached. The client secret is held
//! in a [`ClientSecret`], which never prints.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::super::AuthError;
use super::super::config::check_fetch_url;

/// Longest an introspection answer may be reused: a revoked token stops working within it.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default reuse of an introspection answer.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);
/// Default time one introspection request may take before the token is refused with 503.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest request timeout accepted: a request waits this long on a slow issuer.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the opaque tokens of one issuer are checked.
#[derive(Clone, Debug)]
pub struct IntrospectionConfig {
    /// The RFC 7662 endpoint (`https://`; `http://` only on loopback).
    pub endpoint: String,
    /// The hub's client id at the issuer (HTTP Basic user name).
    pub client_id: String,
    /// The hub's client secret (HTTP Basic password).
    pub client_secret: ClientSecret,
    /// How long an answer (active or not) is reused; at most [`MAX_CACHE_TTL`], never
    /// beyond the token's `exp`; zero disables the cache.
    pub cache_ttl: Duration,
    /// How long one request may take.
    pub request_timeout: Duration,
}

impl IntrospectionConfig {
    /// A configuration with the default cache TTL and request timeout.
    pub fn new(
        endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: ClientSecret,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            client_id: client_id.into(),
            client_secret,
            cache_ttl: DEFAULT_CACHE_TTL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Refuses endpoints that would expose tokens and caches that outlive revocation.
    pub(crate) fn validate(&self) -> Result<(), AuthError> {
        self.check(false)
    }

    /// The checks; an empty endpoint passes with `allow_discovery` (metadata fills it in).
    pub(crate) fn check(&self, allow_discovery: bool) -> Result<(), AuthError> {
        if !(allow_discovery && self.endpoint.is_empty()) {
            check_fetch_url(&self.endpoint, "introspection endpoint")?;
        }
        if self.client_id.is_empty() {
            return Err(AuthError::config(
                "introspection client id must not be empty",
            ));
        }
        if self.client_secret.expose().is_empty() {
            return Err(AuthError::config(
                "introspection client secret must not be empty",
            ));
        }
        if self.cache_ttl > MAX_CACHE_TTL {
            return Err(AuthError::config(format!(
                "introspection cache must keep answers at most {} seconds (a revoked token \
                 would keep working longer)",
                MAX_CACHE_TTL.as_secs()
            )));
        }
        if self.request_timeout.is_zero() || self.request_timeout > MAX_REQUEST_TIMEOUT {
            return Err(AuthError::config(format!(
                "introspection request timeout must be between 1 ms and {} s",
                MAX_REQUEST_TIMEOUT.as_secs()
            )));
        }
        Ok(())
    }
}

/// A client secret: compared and sent, never printed (`Debug` shows `[redacted]`).
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// Reads a secret file: its content without the trailing line break editors and
    /// `echo` leave. The error names the file, never its content.
    pub fn from_file(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|err| {
            AuthError::config(format!("cannot read secret file {}: {err}", path.display()))
        })?;
        let secret = text.trim_end_matches(['\n', '\r']);
        if secret.is_empty() {
            return Err(AuthError::config(format!(
                "secret file {} is empty",
                path.display()
            )));
        }
        Ok(Self(secret.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IntrospectionConfig {
        IntrospectionConfig::new(
            "https://issuer.example/introspect",
            "fhircast-hub",
            ClientSecret::new("s3cret-value"),
        )
    }

    #[test]
    fn tok_18_cache_longer_than_a_minute_and_plain_http_off_loopback_are_refused() {
        assert!(config().validate().is_ok());
        let mut long = config();
        long.cache_ttl = MAX_CACHE_TTL + Duration::from_secs(1);
        assert!(long.validate().is_err());
        let mut off = config();
        off.cache_ttl = Duration::ZERO;
        assert!(off.validate().is_ok(), "zero disables the cache");
        for endpoint in [
            "http://issuer.example/introspect",
            "http://10.1.2.3/introspect",
            "https://u:p@issuer.example/introspect",
            "ftp://issuer.example/introspect",
        ] {
            let mut bad = config();
            bad.endpoint = endpoint.to_owned();
            assert!(bad.validate().is_err(), "{endpoint}");
        }
        let mut loopback = config();
        loopback.endpoint = "http://127.0.0.1:9/introspect".to_owned();
        assert!(loopback.validate().is_ok());
        let mut no_secret = config();
        no_secret.client_secret = ClientSecret::new("");
        assert!(no_secret.validate().is_err());
    }

    #[test]
    fn the_secret_never_prints() {
        let printed = format!("{:?}", config());
        assert!(!printed.contains("s3cret-value"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
