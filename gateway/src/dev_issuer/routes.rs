//! HTTP face of the dev issuer: the token endpoint (form or JSON), the JWK set and the
//! SMART configuration document.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use tracing::warn;

use super::{DEFAULT_EXPIRES_IN, DEFAULT_SCOPE, DEFAULT_SUBJECT, DevIssuer, DevIssuerError};

/// Largest token request body read.
const MAX_BODY: usize = 16 * 1024;

pub(super) fn router(issuer: Arc<DevIssuer>) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/jwks.json", get(jwks))
        .route("/.well-known/smart-configuration", get(smart_configuration))
        .with_state(issuer)
}

async fn jwks(State(issuer): State<Arc<DevIssuer>>) -> Response {
    axum::Json(issuer.jwks()).into_response()
}

async fn smart_configuration(State(issuer): State<Arc<DevIssuer>>) -> Response {
    axum::Json(issuer.smart_configuration()).into_response()
}

async fn token(State(issuer): State<Arc<DevIssuer>>, headers: HeaderMap, body: Bytes) -> Response {
    match issue(&issuer, &headers, &body) {
        Ok(answer) => (
            [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")],
            axum::Json(answer),
        )
            .into_response(),
        Err(err) => {
            warn!(target: "dev_issuer", reason = %err, "dev-only issuer: refused token request");
            let status = StatusCode::from_u16(err.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (
                status,
                [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                err.to_string(),
            )
                .into_response()
        }
    }
}

/// What a token request asks for; absent fields take the defaults.
#[derive(Debug, Default)]
struct TokenRequest {
    topic: Option<String>,
    scope: Option<String>,
    expires_in: Option<String>,
    subject: Option<String>,
    grant_type: Option<String>,
}

fn issue(issuer: &DevIssuer, headers: &HeaderMap, body: &[u8]) -> Result<Value, DevIssuerError> {
    if body.len() > MAX_BODY {
        return Err(DevIssuerError::bad_request(
            "token request body is too large",
        ));
    }
    let request = parse_request(headers, body)?;
    if request
        .grant_type
        .as_deref()
        .is_some_and(|grant| grant != "client_credentials")
    {
        return Err(DevIssuerError::bad_request(
            "grant_type must be client_credentials",
        ));
    }
    let topic = request
        .topic
        .unwrap_or_else(fhircast_proto::ids::random_token);
    let scope = request
        .scope
        .filter(|scope| !scope.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SCOPE.to_owned());
    let subject = request
        .subject
        .unwrap_or_else(|| DEFAULT_SUBJECT.to_owned());
    let expires_in = match request.expires_in {
        None => DEFAULT_EXPIRES_IN,
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .map_err(|_| DevIssuerError::bad_request("expires_in must be a positive integer"))?,
    };
    let access_token = issuer.mint_for(&subject, &topic, &scope, expires_in)?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": scope,
        "hub.url": issuer.hub_url(),
        "hub.topic": topic,
    }))
}

fn parse_request(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, DevIssuerError> {
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match media_type.as_deref() {
        Some("application/x-www-form-urlencoded") => parse_form(body),
        None if body.is_empty() => Ok(TokenRequest::default()),
        Some(json) if json == "application/json" || json.ends_with("+json") => parse_json(body),
        _ => Err(DevIssuerError::UnsupportedMediaType),
    }
}

fn parse_form(body: &[u8]) -> Result<TokenRequest, DevIssuerError> {
    let mut request = TokenRequest::default();
    for (name, value) in form_urlencoded::parse(body) {
        if let Some(slot) = request.slot(&name)
            && slot.replace(value.into_owned()).is_some()
        {
            return Err(DevIssuerError::bad_request(format!(
                "{name} may appear only once"
            )));
        }
    }
    Ok(request)
}

fn parse_json(body: &[u8]) -> Result<TokenRequest, DevIssuerError> {
    let object: Map<String, Value> = match fhircast_proto::json::parse_strict(body, 8) {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return Err(DevIssuerError::bad_request(
                "token request must be a json object",
            ));
        }
        Err(err) => return Err(DevIssuerError::bad_request(err.reason())),
    };
    let mut request = TokenRequest::default();
    for (name, value) in object {
        let Some(slot) = request.slot(&name) else {
            continue;
        };
        *slot = match value {
            Value::String(text) => Some(text),
            Value::Number(number) if name == "expires_in" => Some(number.to_string()),
            Value::Null => None,
            _ => {
                return Err(DevIssuerError::bad_request(format!(
                    "{name} must be a string"
                )));
            }
        };
    }
    Ok(request)
}

impl TokenRequest {
    /// The field a request member fills; unknown members (client_id, aud…) are ignored.
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        match name {
            "topic" => Some(&mut self.topic),
            "scope" => Some(&mut self.scope),
            "expires_in" => Some(&mut self.expires_in),
            "subject" => Some(&mut self.subject),
            "grant_type" => Some(&mut self.grant_type),
            _ => None,
        }
    }
}
