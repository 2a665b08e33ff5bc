//! The issuers file (`--issuers-file`): a JSON document listing every issuer the gateway
//! trusts, each with its own settings.
//!
//! ```json
//! {"issuers": [
//!   {"issuer": "https://ehr.example.org/fhir", "algorithms": ["RS256", "RS384"],
//!    "introspection": {"client_id": "fhircast-hub",
//!                      "client_secret_file": "/run/secrets/ehr-introspection"}},
//!   {"issuer": "https://pacs-idp.example.org", "jwks_url": "https://pacs-idp.example.org/jwks",
//!    "audience": "https://hub.example.org/api/hub", "algorithms": ["ES256"],
//!    "token_type_policy": "strict", "jwks_refresh_min_seconds": 300}
//! ]}
//! ```
//!
//! What an entry omits comes from `--audience`, `--topic-claim` and the built-in defaults;
//! the JWKS URL and introspection endpoint from the issuer's metadata. Unknown members are
//! refused, so a misspelt setting stops the start instead of silently taking a default. A
//! relative `client_secret_file` is read relative to the issuers file. Secrets never sit in
//! the file itself: a file path or the name of an environment variable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::{
    ClientSecret, DEFAULT_ALGORITHMS, DEFAULT_CACHE_TTL, IntrospectionConfig, TokenTypePolicy,
    VerifierConfig,
};

/// Largest issuers file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Settings an entry falls back to.
#[derive(Debug)]
pub(super) struct Defaults<'a> {
    /// `--audience`.
    pub(super) audience: Option<&'a str>,
    /// `--topic-claim`.
    pub(super) topic_claim: &'a str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuersFile {
    issuers: Vec<IssuerEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerEntry {
    issuer: String,
    #[serde(alias = "jwks_uri")]
    jwks_url: Option<String>,
    audience: Option<String>,
    algorithms: Option<Vec<String>>,
    topic_claim: Option<String>,
    leeway_seconds: Option<u64>,
    jwks_refresh_min_seconds: Option<u64>,
    token_type_policy: Option<String>,
    introspection: Option<IntrospectionEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntrospectionEntry {
    endpoint: Option<String>,
    client_id: String,
    client_secret_file: Option<PathBuf>,
    client_secret_env: Option<String>,
    cache_seconds: Option<u64>,
}

/// Reads the issuers file; an empty JWKS URL or introspection endpoint is to be discovered.
pub(super) fn read(path: &Path, defaults: &Defaults<'_>) -> Result<Vec<VerifierConfig>, String> {
    let size = std::fs::metadata(path)
        .map_err(|err| format!("cannot read it: {err}"))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    let text = std::fs::read(path).map_err(|err| format!("cannot read it: {err}"))?;
    let document: IssuersFile =
        serde_json::from_slice(&text).map_err(|err| format!("not a valid issuers file: {err}"))?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    document
        .issuers
        .into_iter()
        .map(|entry| {
            let issuer = entry.issuer.clone();
            entry
                .into_config(defaults, base)
                .map_err(|why| format!("issuer {issuer}: {why}"))
        })
        .collect()
}

impl IssuerEntry {
    fn into_config(self, defaults: &Defaults<'_>, base: &Path) -> Result<VerifierConfig, String> {
        let audience = self
            .audience
            .or_else(|| defaults.audience.map(str::to_owned))
            .ok_or("no audience: set \"audience\" or --audience")?;
        let algorithms = match &self.algorithms {
            Some(names) => super::parse_algorithms(names)?,
            None => DEFAULT_ALGORITHMS.to_vec(),
        };
        let mut rules = VerifierConfig::new(
            self.issuer,
            self.jwks_url.unwrap_or_default(),
            audience,
            algorithms,
        );
        rules.topic_claim = self
            .topic_claim
            .unwrap_or_else(|| defaults.topic_claim.to_owned());
        if let Some(seconds) = self.leeway_seconds {
            rules.leeway = Duration::from_secs(seconds);
        }
        if let Some(seconds) = self.jwks_refresh_min_seconds {
            rules.refresh_min_interval = Duration::from_secs(seconds);
        }
        if let Some(name) = &self.token_type_policy {
            rules.token_type_policy = name
                .parse::<TokenTypePolicy>()
                .map_err(|err| format!("token_type_policy: {err}"))?;
        }
        rules.introspection = self
            .introspection
            .map(|entry| entry.into_config(base))
            .transpose()?;
        Ok(rules)
    }
}

impl IntrospectionEntry {
    fn into_config(self, base: &Path) -> Result<IntrospectionConfig, String> {
        let secret = match (&self.client_secret_file, &self.client_secret_env) {
            (Some(file), None) => ClientSecret::from_file(&base.join(file))
                .map_err(|err| format!("introspection: {}", super::reason(&err)))?,
            (None, Some(variable)) => match std::env::var(variable) {
                Ok(secret) if !secret.is_empty() => ClientSecret::new(secret),
                _ => {
                    return Err(format!(
                        "introspection: the environment variable {variable} is not set"
                    ));
                }
            },
            _ => {
                return Err(
                    "introspection: give exactly one of client_secret_file and client_secret_env"
                        .to_owned(),
                );
            }
        };
        let mut settings =
            IntrospectionConfig::new(self.endpoint.unwrap_or_default(), self.client_id, secret);
        settings.cache_ttl = self
            .cache_seconds
            .map_or(DEFAULT_CACHE_TTL, Duration::from_secs);
        Ok(settings)
    }
}
