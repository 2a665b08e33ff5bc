//! Which issuers the gateway trusts, read from its configuration: `--issuer` with its flags
//! (one issuer, as most sites have), `--issuers-file` (one or more, each with its own
//! settings: [`file`]), or the dev issuer this process serves.
//!
//! [`check`] reads everything that needs no network (algorithm names and families, URLs,
//! secret files, the set of issuers), so a bad configuration exits 64 before anything binds;
//! [`authenticator`] then fills in what the issuers' metadata says (JWKS URL, introspection
//! endpoint) and builds the [`Authenticator`].

mod file;
#[cfg(test)]
mod tests;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use jsonwebtoken::Algorithm;
use tracing::info;

use crate::auth::{
    self, AuthError, Authenticator, ClientSecret, DEFAULT_ALGORITHMS, IntrospectionConfig,
    VerifierConfig,
};
use crate::config::{Config, ConfigError};
use crate::dev_issuer::{DevIssuer, SigningKey};

/// Refuses a token-verification configuration before anything binds.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    if config.dev_issuer {
        return check_dev_issuer_flags(config);
    }
    let issuers = configured(config)?;
    let source = config
        .issuers_file
        .as_ref()
        .map(|path| format!("--issuers-file {}: ", path.display()))
        .unwrap_or_default();
    for issuer in &issuers {
        issuer.validate_allowing_discovery().map_err(|err| {
            ConfigError(format!(
                "{source}issuer {}: {}",
                issuer.issuer,
                reason(&err)
            ))
        })?;
    }
    auth::check_issuer_set(&issuers).map_err(|err| ConfigError(format!("{source}{}", reason(&err))))
}

/// Builds token verification: the configured issuers, completed from their metadata, or the
/// dev issuer this process serves (whose JWKS it fetches over loopback, the same path a real
/// issuer takes).
pub(crate) async fn authenticator(
    config: &Config,
    bound: &std::net::SocketAddr,
    public_url: &str,
    hub_url: &str,
) -> anyhow::Result<(Authenticator, Option<Arc<DevIssuer>>)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("failed to build the HTTP client for JWKS")?;
    let (issuers, dev_issuer) = if config.dev_issuer {
        let (rules, issuer) = dev_issuer(config, bound, public_url, hub_url)?;
        (vec![rules], Some(Arc::new(issuer)))
    } else {
        let mut issuers = configured(config)?;
        let from_flags = config.issuers_file.is_none();
        for issuer in &mut issuers {
            complete_from_metadata(&http, issuer, from_flags).await?;
        }
        (issuers, None)
    };
    let authenticator =
        Authenticator::new(issuers, http).context("invalid token verification settings")?;
    for issuer in authenticator.issuers() {
        info!(
            issuer = %issuer.issuer,
            jwks_url = %issuer.jwks_url,
            algorithms = ?issuer.algorithms,
            token_type_policy = %issuer.token_type_policy,
            jwks_refresh_min_seconds = issuer.refresh_min_interval.as_secs(),
            introspection = issuer.introspection.as_ref().map_or("off", |i| i.endpoint.as_str()),
            "trusting issuer"
        );
    }
    Ok((authenticator, dev_issuer))
}

/// The configured issuers; an empty JWKS URL or introspection endpoint is to be discovered.
fn configured(config: &Config) -> Result<Vec<VerifierConfig>, ConfigError> {
    let Some(path) = &config.issuers_file else {
        return from_flags(config).map(|issuer| vec![issuer]);
    };
    let single_issuer_flags = [
        ("--issuer", config.issuer.is_some()),
        ("--jwks-url", config.jwks_url.is_some()),
        ("--algorithms", config.algorithms.is_some()),
        (
            "--jwks-refresh-min-seconds",
            config.jwks_refresh_min_seconds.is_some(),
        ),
        ("--token-type-policy", config.token_type_policy.is_some()),
    ];
    let given = single_issuer_flags
        .into_iter()
        .chain(introspection_flags(config))
        .find(|(_, given)| *given);
    if let Some((flag, _)) = given {
        return Err(ConfigError(format!(
            "{flag} does not combine with --issuers-file: give that setting in the file, \
             per issuer"
        )));
    }
    let defaults = file::Defaults {
        audience: config.audience.as_deref(),
        topic_claim: &config.topic_claim,
    };
    file::read(path, &defaults)
        .map_err(|why| ConfigError(format!("--issuers-file {}: {why}", path.display())))
}

fn from_flags(config: &Config) -> Result<VerifierConfig, ConfigError> {
    let (Some(issuer), Some(audience)) = (&config.issuer, &config.audience) else {
        return Err(ConfigError(
            "configure --issuer and --audience (FHIRCAST_ISSUER, FHIRCAST_AUDIENCE; \
             --jwks-url too unless the issuer publishes its SMART or OpenID metadata), \
             --issuers-file for several issuers, or pass --dev-issuer for local development"
                .into(),
        ));
    };
    let mut rules = VerifierConfig::new(
        issuer.clone(),
        config.jwks_url.clone().unwrap_or_default(),
        audience.clone(),
        flag_algorithms(config)?,
    );
    rules.topic_claim.clone_from(&config.topic_claim);
    apply_typing_and_refresh_flags(config, &mut rules);
    rules.introspection = introspection_from_flags(config)?;
    Ok(rules)
}

/// `--jwks-refresh-min-seconds` and `--token-type-policy`, where given (`check` refuses a
/// zero interval).
fn apply_typing_and_refresh_flags(config: &Config, rules: &mut VerifierConfig) {
    if let Some(seconds) = config.jwks_refresh_min_seconds {
        rules.refresh_min_interval = Duration::from_secs(seconds);
    }
    if let Some(policy) = config.token_type_policy {
        rules.token_type_policy = policy;
    }
}

fn introspection_from_flags(config: &Config) -> Result<Option<IntrospectionConfig>, ConfigError> {
    let (client_id, secret_file) = match (
        &config.introspection_client_id,
        &config.introspection_client_secret_file,
    ) {
        (Some(client_id), Some(secret_file)) => (client_id, secret_file),
        (None, None) => {
            if config.introspection_url.is_some() || config.introspection_cache_seconds.is_some() {
                return Err(ConfigError(
                    "--introspection-url and --introspection-cache-seconds apply only with \
                     --introspection-client-id and --introspection-client-secret-file"
                        .into(),
                ));
            }
            return Ok(None);
        }
        _ => {
            return Err(ConfigError(
                "--introspection-client-id and --introspection-client-secret-file go together"
                    .into(),
            ));
        }
    };
    let secret = ClientSecret::from_file(secret_file).map_err(|err| {
        ConfigError(format!(
            "--introspection-client-secret-file: {}",
            reason(&err)
        ))
    })?;
    let mut settings = IntrospectionConfig::new(
        config.introspection_url.clone().unwrap_or_default(),
        client_id.clone(),
        secret,
    );
    if let Some(seconds) = config.introspection_cache_seconds {
        settings.cache_ttl = Duration::from_secs(seconds);
    }
    Ok(Some(settings))
}

/// `--algorithms`, or the default list when it is not given.
fn flag_algorithms(config: &Config) -> Result<Vec<Algorithm>, ConfigError> {
    match &config.algorithms {
        None => Ok(DEFAULT_ALGORITHMS.to_vec()),
        Some(names) => {
            parse_algorithms(names).map_err(|why| ConfigError(format!("--algorithms: {why}")))
        }
    }
}

/// Reads an operator's algorithm list: known names, not empty, no HMAC (TOK-04).
fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
    let algorithms = names
        .iter()
        .map(|name| {
            Algorithm::from_str(name.trim()).map_err(|_| format!("unknown algorithm {name:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    auth::check_allowlist(&algorithms).map_err(|err| reason(&err).to_owned())?;
    Ok(algorithms)
}

/// The flags that name a real issuer make no sense next to the dev issuer.
fn check_dev_issuer_flags(config: &Config) -> Result<(), ConfigError> {
    let given = [("--issuers-file", config.issuers_file.is_some())]
        .into_iter()
        .chain(introspection_flags(config))
        .find(|(_, given)| *given);
    if let Some((flag, _)) = given {
        return Err(ConfigError(format!(
            "{flag} does not combine with --dev-issuer"
        )));
    }
    flag_algorithms(config).map(drop)
}

/// The introspection flags, each with whether it was given.
fn introspection_flags(config: &Config) -> [(&'static str, bool); 4] {
    [
        (
            "--introspection-client-id",
            config.introspection_client_id.is_some(),
        ),
        (
            "--introspection-client-secret-file",
            config.introspection_client_secret_file.is_some(),
        ),
        ("--introspection-url", config.introspection_url.is_some()),
        (
            "--introspection-cache-seconds",
            config.introspection_cache_seconds.is_some(),
        ),
    ]
}

/// The dev issuer and the rules its tokens are verified by.
fn dev_issuer(
    config: &Config,
    bound: &std::net::SocketAddr,
    public_url: &str,
    hub_url: &str,
) -> anyhow::Result<(VerifierConfig, DevIssuer)> {
    let audience = config
        .audience
        .clone()
        .unwrap_or_else(|| hub_url.to_owned());
    let issuer_url = config
        .dev_issuer_url
        .clone()
        .unwrap_or_else(|| format!("{public_url}/dev-issuer"));
    let issuer = match &config.dev_issuer_key {
        Some(path) => DevIssuer::with_key(
            issuer_url,
            hub_url.to_owned(),
            audience.clone(),
            config.topic_claim.clone(),
            SigningKey::from_pem_file(path).context("failed to start the dev issuer")?,
        ),
        None => DevIssuer::new(
            issuer_url,
            hub_url.to_owned(),
            audience.clone(),
            config.topic_claim.clone(),
        ),
    }
    .context("failed to start the dev issuer")?;
    let mut rules = VerifierConfig::new(
        issuer.issuer_url(),
        format!("http://{bound}/dev-issuer/jwks.json"),
        audience,
        flag_algorithms(config)?,
    );
    rules.topic_claim.clone_from(&config.topic_claim);
    apply_typing_and_refresh_flags(config, &mut rules);
    Ok((rules, issuer))
}

/// Fills in the JWKS URL and introspection endpoint the operator left to the issuer's
/// metadata.
async fn complete_from_metadata(
    http: &reqwest::Client,
    issuer: &mut VerifierConfig,
    from_flags: bool,
) -> anyhow::Result<()> {
    let needs_jwks = issuer.jwks_url.is_empty();
    let needs_introspection = issuer
        .introspection
        .as_ref()
        .is_some_and(|settings| settings.endpoint.is_empty());
    if !(needs_jwks || needs_introspection) {
        return Ok(());
    }
    let (jwks_setting, introspection_setting) = if from_flags {
        ("--jwks-url", "--introspection-url")
    } else {
        ("jwks_url", "introspection.endpoint")
    };
    let unset = if needs_jwks {
        jwks_setting
    } else {
        introspection_setting
    };
    let metadata = auth::discover_metadata(http, &issuer.issuer)
        .await
        .with_context(|| format!("issuer {}: {unset} is not set", issuer.issuer))?;
    if needs_jwks {
        info!(issuer = %issuer.issuer, jwks_url = %metadata.jwks_uri,
            "found the issuer's JWKS in its metadata");
        issuer.jwks_url = metadata.jwks_uri;
    }
    if let Some(settings) = issuer
        .introspection
        .as_mut()
        .filter(|_| needs_introspection)
    {
        let Some(endpoint) = metadata.introspection_endpoint else {
            bail!(
                "issuer {}: its metadata names no introspection_endpoint; set {introspection_setting}",
                issuer.issuer
            );
        };
        info!(issuer = %issuer.issuer, endpoint = %endpoint,
            "found the issuer's introspection endpoint in its metadata");
        settings.endpoint = endpoint;
    }
    Ok(())
}

/// The operator-facing reason of a configuration refusal.
fn reason(err: &AuthError) -> &str {
    match err {
        AuthError::Config { reason } => reason,
        other => other.reason(),
    }
}
