//! Opaque access tokens, checked through the issuer's RFC 7662 introspection endpoint.
//!
//! A token that is not a three-segment JWS is POSTed (`token=…&token_type_hint=access_token`,
//! the hub's client credentials in HTTP Basic, RFC 6749 §2.3.1) to the one issuer configured
//! for introspection. The answer must be a JSON object with a boolean `active`; an active
//! token's members then pass the same checks as a JWT's claims (`iss` byte for byte, `aud`,
//! `exp` required, `nbf`/`iat` with leeway, scopes, topic claim).
//!
//! Failing closed: an endpoint that is down, slow, redirects, answers other than 200, or
//! answers something that is not an introspection response refuses the token with 503
//! (never accepts it) and that failure is not cached. Answers are cached by token digest
//! ([`cache`]) for at most the configured TTL (≤ 60 s), an active one never beyond `exp`.
//! Redirects are never followed: the token would be re-sent to wherever they point.

mod cache;
mod config;

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tracing::warn;

use self::cache::{Answer, DEFAULT_CAPACITY, IntrospectionCache};
pub use self::config::{
    ClientSecret, DEFAULT_CACHE_TTL, DEFAULT_REQUEST_TIMEOUT, IntrospectionConfig, MAX_CACHE_TTL,
};
use super::http_body::read_capped;
use super::token::MAX_JSON_DEPTH;
use super::{AuthError, Principal, VerifierConfig, claims};

/// The largest introspection answer read.
const MAX_BODY: usize = 64 * 1024;
/// Introspection requests in flight at once; more wait (up to the request timeout), so a
/// flood of made-up opaque tokens cannot turn the hub into a flood against the issuer.
const MAX_IN_FLIGHT: usize = 32;

/// Checks one issuer's opaque tokens at its introspection endpoint.
pub(crate) struct Introspector {
    /// The issuer's rules, applied to an active token's members.
    rules: VerifierConfig,
    settings: IntrospectionConfig,
    http: reqwest::Client,
    cache: IntrospectionCache,
    in_flight: Semaphore,
}

impl fmt::Debug for Introspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspector")
            .field("issuer", &self.rules.issuer)
            .field("endpoint", &self.settings.endpoint)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    /// The introspector of an issuer configured for introspection; `None` otherwise.
    pub(crate) fn new(rules: &VerifierConfig) -> Result<Option<Self>, AuthError> {
        let Some(settings) = rules.introspection.clone() else {
            return Ok(None);
        };
        settings.validate()?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| {
                AuthError::config(format!("cannot build the introspection client: {err}"))
            })?;
        Ok(Some(Self {
            cache: IntrospectionCache::new(settings.cache_ttl, DEFAULT_CAPACITY)?,
            rules: rules.clone(),
            settings,
            http,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
        }))
    }

    /// Checks an opaque token: from the cache, else at the endpoint.
    pub(crate) async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let key = self.cache.key(token);
        if let Some(answer) = self.cache.get(&key, Instant::now()) {
            return answer.into_result();
        }
        let unavailable = |cause: String| {
            warn!(target: "auth", issuer = %self.rules.issuer, cause = %cause,
                "token introspection failed; refusing the token");
            AuthError::IntrospectionUnavailable { cause }
        };
        let document = self.ask(token).await.map_err(unavailable)?;
        let (answer, lifetime) = judge(&document, &self.rules, SystemTime::now())
            .map_err(|cause| unavailable(cause.to_owned()))?;
        self.cache
            .insert(key, answer.clone(), lifetime, Instant::now());
        answer.into_result()
    }

    /// POSTs the token and reads the answer as a JSON object.
    async fn ask(&self, token: &str) -> Result<Map<String, Value>, String> {
        let timeout = self.settings.request_timeout;
        let _permit = tokio::time::timeout(timeout, self.in_flight.acquire())
            .await
            .map_err(|_| "too many introspection requests in flight".to_owned())?
            .map_err(|_| "introspection is shutting down".to_owned())?;
        let encode =
            |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        let response = self
            .http
            .post(&self.settings.endpoint)
            .basic_auth(
                encode(&self.settings.client_id),
                Some(encode(self.settings.client_secret.expose())),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .timeout(timeout)
            .send()
            .await
            .map_err(|err| format!("request failed: {}", err.without_url()))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(format!("endpoint answered {status}"));
        }
        let body = read_capped(response, MAX_BODY).await?;
        match fhircast_proto::json::parse_strict(&body, MAX_JSON_DEPTH) {
            Ok(Value::Object(document)) => Ok(document),
            _ => Err("answer is not a json object".to_owned()),
        }
    }
}

/// What an introspection answer comes to, and how long that may be reused; `Err` when it is
/// not an introspection answer at all (no boolean `active`).
fn judge(
    document: &Map<String, Value>,
    rules: &VerifierConfig,
    now: SystemTime,
) -> Result<(Answer, Duration), &'static str> {
    match document.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            return Ok((Answer::Refused("token is not active".into()), Duration::MAX));
        }
        _ => return Err("answer has no boolean active member"),
    }
    let checked = claims::check_audience(document, &rules.audience)
        .and_then(|()| claims::principal(document, rules, now));
    Ok(match checked {
        Ok(principal) => {
            let left = principal
                .expires_at
                .duration_since(now)
                .unwrap_or(Duration::ZERO);
            (Answer::Accepted(principal), left)
        }
        Err(AuthError::Invalid { reason }) => (Answer::Refused(reason), Duration::MAX),
        Err(other) => (
            Answer::Refused(other.reason().to_owned().into()),
            Duration::MAX,
        ),
    })
}
