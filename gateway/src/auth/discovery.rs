//! Finding the issuer's JWKS when the operator names only the issuer: its SMART
//! configuration (`{issuer}/.well-known/smart-configuration`), else its OpenID Connect
//! metadata (`{issuer}/.well-known/openid-configuration`), whose `jwks_uri` is used.
//!
//! Discovery runs once at start-up. The metadata is fetched over `https://` only (plain
//! `http://` only for an issuer on loopback), since whoever answers it chooses the keys;
//! the `jwks_uri` it names is then held to the same rule as a configured JWKS URL.

use std::time::Duration;

use serde_json::Value;

use super::AuthError;
use super::config::is_loopback_url;

/// Where the metadata documents are, under the issuer.
const METADATA_PATHS: [&str; 2] = [
    "/.well-known/smart-configuration",
    "/.well-known/openid-configuration",
];
/// How long one metadata request may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest metadata document read.
const MAX_BODY: usize = 256 * 1024;

/// Returns the `jwks_uri` the issuer's metadata names.
pub async fn discover_jwks_url(http: &reqwest::Client, issuer: &str) -> Result<String, AuthError> {
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
        match fetch_jwks_uri(http, &format!("{base}{path}")).await {
            Ok(jwks_uri) => return Ok(jwks_uri),
            Err(why) => failures.push(format!("{path}: {why}")),
        }
    }
    Err(AuthError::config(format!(
        "could not discover the issuer's JWKS ({}); or pass the JWKS URL",
        failures.join("; ")
    )))
}

async fn fetch_jwks_uri(http: &reqwest::Client, url: &str) -> Result<String, String> {
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
    if response
        .content_length()
        .is_some_and(|len| len > MAX_BODY as u64)
    {
        return Err("document too large".to_owned());
    }
    let body = response
        .bytes()
        .await
        .map_err(|err| format!("reading failed: {}", err.without_url()))?;
    if body.len() > MAX_BODY {
        return Err("document too large".to_owned());
    }
    let document: Value = serde_json::from_slice(&body).map_err(|_| "not json".to_owned())?;
    document
        .get("jwks_uri")
        .and_then(Value::as_str)
        .filter(|uri| !uri.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "no jwks_uri in it".to_owned())
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
            let found = discover_jwks_url(&reqwest::Client::new(), issuer).await;
            assert!(
                matches!(&found, Err(AuthError::Config { .. })),
                "{issuer}: {found:?}"
            );
        }
    }
}
