//! Where the conformance suite gets its access tokens from.
//!
//! The suite asks for a token for one topic, a space-separated scope list and a lifetime,
//! and never looks inside it, so it can run against any hub: with the in-process test
//! issuer, a dev-issuer style token endpoint, or an arbitrary shell command.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::issuer::TestIssuer;

/// Scopes that allow everything.
pub const ALL_SCOPES: &str = "fhircast/*.read fhircast/*.write";

/// A way to obtain access tokens.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// The in-process test issuer.
    Issuer(Arc<TestIssuer>),
    /// A token endpoint: `POST url` with form fields `topic`, `scope`, `expires_in`,
    /// answering JSON with `access_token`.
    TokenUrl(String),
    /// A shell command run as `sh -c "$cmd <topic> '<scopes>' <expires_in>"`, printing the
    /// token on stdout.
    Command(String),
}

impl TokenSource {
    /// Obtains a token bound to `topic` with `scopes`, valid for `expires_in` seconds.
    pub async fn token(&self, topic: &str, scopes: &str, expires_in: u64) -> Result<String> {
        match self {
            Self::Issuer(issuer) => {
                issuer.mint(topic, scopes, i64::try_from(expires_in).unwrap_or(i64::MAX))
            }
            Self::TokenUrl(url) => from_token_url(url, topic, scopes, expires_in).await,
            Self::Command(command) => from_command(command, topic, scopes, expires_in).await,
        }
    }

    /// Returns the test issuer when tokens come from it (to mint deliberately bad ones).
    pub fn issuer(&self) -> Option<&TestIssuer> {
        match self {
            Self::Issuer(issuer) => Some(issuer),
            Self::TokenUrl(_) | Self::Command(_) => None,
        }
    }
}

async fn from_token_url(url: &str, topic: &str, scopes: &str, expires_in: u64) -> Result<String> {
    let response = reqwest::Client::new()
        .post(url)
        .form(&[
            ("topic", topic),
            ("scope", scopes),
            ("expires_in", &expires_in.to_string()),
        ])
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("token endpoint {url} answered {status}: {body}");
    }
    let json: Value =
        serde_json::from_str(&body).with_context(|| format!("token response `{body}`"))?;
    json.get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no access_token in `{body}`"))
}

async fn from_command(command: &str, topic: &str, scopes: &str, expires_in: u64) -> Result<String> {
    let script = format!("{command} {topic} '{scopes}' {expires_in}");
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .await
        .with_context(|| format!("running `{script}`"))?;
    if !output.status.success() {
        bail!(
            "`{script}` failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let token = String::from_utf8(output.stdout)?.trim().to_owned();
    if token.is_empty() {
        bail!("`{script}` printed no token");
    }
    Ok(token)
}
