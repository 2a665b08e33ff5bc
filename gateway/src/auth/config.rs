//! `VerifierConfig`: which issuer, keys, audience and algorithms a token must match (and,
//! for opaque tokens, which introspection endpoint vouches for them), and the checks that
//! refuse an unsafe configuration at start-up.

use std::time::Duration;

use jsonwebtoken::{Algorithm, AlgorithmFamily};

use super::AuthError;
use super::IntrospectionConfig;
use super::TokenTypePolicy;

/// Default name of the claim that binds a token to topics (as SMART launch returns it).
pub const DEFAULT_TOPIC_CLAIM: &str = "hub.topic";
/// Default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default minimum time between two JWKS fetches caused by unknown key ids (TOK-06: at
/// most one fetch a minute, however many tokens name unknown keys). A rotated key is still
/// picked up by the first unknown `kid` after a quiet minute, and by the background
/// revalidation of keys older than ten minutes; issuers that switch to a new key the moment
/// they publish it can be given a shorter interval.
pub const DEFAULT_REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// Largest leeway accepted: more would make `exp` meaningless.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The allowlist when the operator names none: every asymmetric algorithm of the RSA and EC
/// families. Safe to mix here because a key only ever verifies algorithms of its own kind
/// (an RSA key never checks an ES256 signature); an operator's own list must name one
/// family (see [`check_one_family`]).
pub const DEFAULT_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// What a token must match to be accepted.
#[derive(Clone, Debug)]
pub struct VerifierConfig {
    /// Compared byte for byte with the `iss` claim.
    pub issuer: String,
    /// Where the issuer publishes its JWK set (`http` or `https`).
    pub jwks_url: String,
    /// The `aud` claim (string or array) must contain this value.
    pub audience: String,
    /// Accepted signing algorithms; asymmetric only (HMAC is refused at construction).
    pub algorithms: Vec<Algorithm>,
    /// Claim carrying the topics the token may be used for (string or array of strings).
    pub topic_claim: String,
    /// Clock leeway for `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Minimum time between JWKS refetches triggered by unknown key ids.
    pub refresh_min_interval: Duration,
    /// Which JOSE `typ` values (and token shapes) are accepted as access tokens (TOK-13).
    pub token_type_policy: TokenTypePolicy,
    /// How opaque (non-JWT) tokens of this issuer are checked; `None`: they are refused.
    pub introspection: Option<IntrospectionConfig>,
}

impl VerifierConfig {
    /// A configuration with the default topic claim, leeway, refresh interval and token
    /// type policy.
    pub fn new(
        issuer: impl Into<String>,
        jwks_url: impl Into<String>,
        audience: impl Into<String>,
        algorithms: Vec<Algorithm>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            jwks_url: jwks_url.into(),
            audience: audience.into(),
            algorithms,
            topic_claim: DEFAULT_TOPIC_CLAIM.to_owned(),
            leeway: DEFAULT_LEEWAY,
            refresh_min_interval: DEFAULT_REFRESH_MIN_INTERVAL,
            token_type_policy: TokenTypePolicy::default(),
            introspection: None,
        }
    }

    /// Refuses configurations that would weaken verification.
    pub(crate) fn validate(&self) -> Result<(), AuthError> {
        self.check(false)
    }

    /// Like the check [`Verifier::new`](super::Verifier::new) makes, except that an empty
    /// JWKS URL or introspection endpoint passes: the issuer's metadata fills them in at
    /// start-up. For refusing a configuration before anything binds.
    pub fn validate_allowing_discovery(&self) -> Result<(), AuthError> {
        self.check(true)
    }

    fn check(&self, allow_discovery: bool) -> Result<(), AuthError> {
        if self.issuer.is_empty() {
            return Err(AuthError::config("issuer must not be empty"));
        }
        if self.audience.is_empty() {
            return Err(AuthError::config("audience must not be empty"));
        }
        if self.topic_claim.is_empty() {
            return Err(AuthError::config("topic claim name must not be empty"));
        }
        if !(allow_discovery && self.jwks_url.is_empty()) {
            check_fetch_url(&self.jwks_url, "jwks url")?;
        }
        if self.algorithms.is_empty() {
            return Err(AuthError::config("algorithm allowlist must not be empty"));
        }
        if let Some(alg) = self
            .algorithms
            .iter()
            .find(|alg| alg.family() == AlgorithmFamily::Hmac)
        {
            return Err(AuthError::config(format!(
                "{alg:?} is a shared-secret algorithm; only asymmetric algorithms are accepted"
            )));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(AuthError::config(format!(
                "leeway must be at most {} seconds",
                MAX_LEEWAY.as_secs()
            )));
        }
        if self.refresh_min_interval.is_zero() {
            return Err(AuthError::config(
                "jwks refresh interval must be positive (unknown key ids would refetch without limit)",
            ));
        }
        if let Some(introspection) = &self.introspection {
            introspection.check(allow_discovery)?;
        }
        Ok(())
    }
}

/// Refuses an operator's allowlist that is empty or names a shared-secret (HMAC)
/// algorithm (TOK-04). Families may be mixed: each key of the JWKS verifies only the
/// algorithms of its own kind (an EC key never checks an RS256 signature), so a list naming
/// RSA and EC algorithms lets a token choose nothing its issuer's keys do not allow.
pub fn check_allowlist(algorithms: &[Algorithm]) -> Result<(), AuthError> {
    if algorithms.is_empty() {
        return Err(AuthError::config("algorithm allowlist must not be empty"));
    }
    match algorithms
        .iter()
        .find(|alg| alg.family() == AlgorithmFamily::Hmac)
    {
        None => Ok(()),
        Some(alg) => Err(AuthError::config(format!(
            "{alg:?} is a shared-secret algorithm; only asymmetric algorithms are accepted"
        ))),
    }
}

/// Refuses a URL the hub would fetch keys from or send tokens to unless it is `https://`
/// (plain `http://` only on loopback) and carries no credentials. `what` names it in the
/// reason.
pub(crate) fn check_fetch_url(raw: &str, what: &str) -> Result<(), AuthError> {
    let url = reqwest::Url::parse(raw)
        .map_err(|err| AuthError::config(format!("{what} is not a url: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AuthError::config(format!("{what} must be http or https")));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(AuthError::config(format!("{what} has no host")));
    }
    // Keys fetched, or tokens sent, over plain HTTP could be swapped or read by anyone on
    // the path (TOK-05): only a server on this machine may be reached without TLS.
    if url.scheme() == "http" && !is_loopback_url(&url) {
        return Err(AuthError::config(format!(
            "{what} must be https:// (plain http:// only for an issuer on loopback)"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AuthError::config(format!(
            "{what} must not carry credentials"
        )));
    }
    Ok(())
}

/// Whether the URL's host is `localhost`, 127.0.0.0/8 or ::1.
pub(super) fn is_loopback_url(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VerifierConfig {
        VerifierConfig::new(
            "https://issuer.example",
            "https://issuer.example/jwks.json",
            "https://hub.example/api/hub",
            vec![Algorithm::ES256, Algorithm::RS256],
        )
    }

    #[test]
    fn tok_04_hmac_in_allowlist_is_refused_at_start_up() {
        for hmac in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut config = config();
            config.algorithms.push(hmac);
            assert!(matches!(config.validate(), Err(AuthError::Config { .. })));
        }
    }

    #[test]
    fn empty_allowlist_and_bad_urls_are_refused() {
        let mut empty = config();
        empty.algorithms.clear();
        assert!(empty.validate().is_err());
        for url in [
            "ftp://x/jwks",
            "not a url",
            "file:///etc/passwd",
            "https://u:p@h/j",
            "http://issuer.example/jwks.json",
            "http://10.0.0.1/jwks.json",
            "http://127.0.0.1.example.org/jwks.json",
        ] {
            let mut bad = config();
            bad.jwks_url = url.to_owned();
            assert!(bad.validate().is_err(), "{url}");
        }
        let mut zero = config();
        zero.refresh_min_interval = Duration::ZERO;
        assert!(zero.validate().is_err());
        assert!(config().validate().is_ok());
    }

    #[test]
    fn tok_05_plain_http_jwks_is_accepted_only_on_loopback() {
        for url in [
            "http://127.0.0.1:8080/jwks.json",
            "http://127.0.0.2/jwks.json",
            "http://[::1]:9/jwks.json",
            "http://localhost/jwks.json",
            "https://issuer.example/jwks.json",
        ] {
            let mut loopback = config();
            loopback.jwks_url = url.to_owned();
            assert!(loopback.validate().is_ok(), "{url}");
        }
    }

    #[test]
    fn tok_04_an_allowlist_is_asymmetric_and_may_span_key_kinds() {
        use Algorithm::*;
        for allowed in [
            vec![RS256],
            vec![RS256, RS384, PS256, PS512],
            vec![ES256, ES384],
            vec![EdDSA],
            vec![RS256, ES256],
            DEFAULT_ALGORITHMS.to_vec(),
        ] {
            assert!(check_allowlist(&allowed).is_ok(), "{allowed:?}");
        }
        for refused in [vec![RS256, HS256], vec![HS512], vec![]] {
            assert!(check_allowlist(&refused).is_err(), "{refused:?}");
        }
        let mut default = config();
        default.algorithms = DEFAULT_ALGORITHMS.to_vec();
        assert!(default.validate().is_ok());
    }
}
