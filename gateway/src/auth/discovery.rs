//! Finding the issuer's JWKS (and introspection endpoint) when the operator names only the
//! issuer: its SMART configuration (`{issuer}/.well-known/smart-configuration`), else its
//! OpenID Connect metadata (`{issuer}/.well-known/openid-configuration`); the first that
//! names a `jwks_uri` is used, with its `introspection_endpoint` if it has one.
//!
//! Discovery runs once at start-up. The metadata is fetched over `https://` only (plain
//! `http://` only for an issuer on loopback), since whoever answers it chooses the keys;
//! the URLs it names are then held to the same rule as configured ones.

use std::time::Duration;

use serde_json::Value;

use super::AuthError;
use super::config::is_loopback_url;
use super::http_body::read_capped;

/// Where the metadata documents are, under the issuer.
const METADATA_PATHS: [&str; 2] = [
    "/.well-known/smart-configuration",
    "/.well-known/openid-configuration",
];
/// How long one metadata request may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest metadata document read.
const MAX_BODY: usize = 256 * 1024;

/// What the issuer's metadata says about where to check its tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerMetadata {
    /// `jwks_uri`: the issuer's signing keys.
    pub jwks_uri: String,
    /// `introspection_endpoint` (RFC 7662), when the document names one.
    pub introspection_endpoint: Option<String>,
}

/// Returns the key and introspection URLs the issuer's metadata names.
pub async fn discover_metadata(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<IssuerMetadata, AuthError> {
    let base = issuer.trim_end_matches('/');
    let url = reqwest::Url::parse(base)
        .map_err(|err| AuthError::config(format!("the issuer is not a url: {err}")))?;
    if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback_url(&url)) {
        return Err(AuthError::config(
            "the issuer must be an https:// URL to discover its keys (plain http:// only on \
             loopback); or pass the JWKS URL",
        ));
    }
    let mut failures = Vec::new();
    for path in METADATA_PATHS {
        match fetch_metadata(http, &format!("{base}{path}")).await {
            Ok(metadata) => return Ok(metadata),
            Err(why) => failures.push(format!("{path}: {why}")),
        }
    }
    Err(AuthError::config(format!(
        "could not discover the issuer's JWKS ({}); or pass the JWKS URL",
        failures.join("; ")
    )))
}

async fn fetch_metadata(http: &reqwest::Client, url: &str) -> Result<IssuerMetadata, String> {
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|err| format!("request failed: {}", err.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let body = read_capped(response, MAX_BODY).await?;
    let document: Value = serde_json::from_slice(&body).map_err(|_| "not json".to_owned())?;
    let url_member = |name: &str| {
        document
            .get(name)
            .and_then(Value::as_str)
            .filter(|uri| !uri.is_empty())
            .map(str::to_owned)
    };
    Ok(IssuerMetadata {
        jwks_uri: url_member("jwks_uri").ok_or_else(|| "no jwks_uri in it".to_owned())?,
        introspection_endpoint: url_member("introspection_endpoint"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tok_05_an_http_issuer_off_loopback_is_never_asked_for_its_keys() {
        for issuer in [
            "http://issuer.example.org",
            "http://10.0.0.7/auth",
            "ftp://x",
        ] {
            let found = discover_metadata(&reqwest::Client::new(), issuer).await;
            assert!(
                matches!(&found, Err(AuthError::Config { .. })),
                "{issuer}: {found:?}"
            );
        }
    }
}
