//! The test issuer's RFC 7662 introspection endpoint (`POST /introspect`): it knows the
//! opaque tokens the issuer handed out and forgets the ones it revokes, checks the hub's
//! client credentials (HTTP Basic), counts the questions it is asked, and can be switched to
//! answer 503 the way an issuer in trouble does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::log_archive::SecretKind;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::unix_now;

/// The client id the hub introspects as.
pub const INTROSPECTION_CLIENT_ID: &str = "fhircast-hub-test";

/// The endpoint's state, shared with its route.
#[derive(Debug)]
pub(super) struct Introspection {
    secret: String,
    /// Opaque token → the members of its active answer.
    tokens: Mutex<HashMap<String, Value>>,
    failing: AtomicBool,
    requests: AtomicUsize,
}

impl Introspection {
    pub(super) fn new() -> Self {
        Self {
            secret: format!("secret-{}", uuid::Uuid::new_v4().simple()),
            tokens: Mutex::new(HashMap::new()),
            failing: AtomicBool::new(false),
            requests: AtomicUsize::new(0),
        }
    }

    pub(super) fn secret(&self) -> &str {
        &self.secret
    }

    /// Hands out a fresh opaque token (no dots: not a JWS) whose answer carries `claims`.
    pub(super) fn issue(&self, claims: Value) -> String {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        crate::log_archive::register_secret(SecretKind::Token, &token);
        self.lock().insert(token.clone(), claims);
        token
    }

    pub(super) fn revoke(&self, token: &str) {
        self.lock().remove(token);
    }

    pub(super) fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub(super) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Value>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let expected = STANDARD.encode(format!("{INTROSPECTION_CLIENT_ID}:{}", self.secret));
        headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Basic "))
            .is_some_and(|credentials| credentials == expected)
    }

    /// The answer for `token`: active with its members while issued and unexpired.
    fn answer(&self, token: &str) -> Value {
        let tokens = self.lock();
        match tokens.get(token) {
            Some(claims) if claims["exp"].as_i64().is_some_and(|exp| exp > unix_now()) => {
                let mut answer = claims.clone();
                answer["active"] = json!(true);
                answer
            }
            _ => json!({"active": false}),
        }
    }
}

/// `POST /introspect`.
pub(super) async fn introspect(
    State(endpoint): State<Arc<Introspection>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    endpoint.requests.fetch_add(1, Ordering::SeqCst);
    if endpoint.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "introspection is down").into_response();
    }
    if !endpoint.authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = form.get("token").map(String::as_str).unwrap_or_default();
    axum::Json(endpoint.answer(token)).into_response()
}
