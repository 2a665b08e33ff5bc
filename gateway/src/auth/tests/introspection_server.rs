//! A test RFC 7662 introspection endpoint on 127.0.0.1:0: answers from a table of the tokens
//! it issued (anything else is inactive), can be switched to fail in the ways real endpoints
//! do, and records what it was sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::support::{AUDIENCE, ISSUER, TOPIC, http, now};
use crate::auth::{Authenticator, ClientSecret, IntrospectionConfig, VerifierConfig};

pub(super) const CLIENT_ID: &str = "fhircast hub";
pub(super) const CLIENT_SECRET: &str = "introspection-secret:&=+";

/// How the endpoint answers.
#[derive(Clone, Debug)]
pub(super) enum Mode {
    /// From the token table.
    Normal,
    /// This status and body, whatever the token.
    Raw(u16, &'static str),
    /// A redirect to this URL.
    Redirect(String),
    /// Never answers.
    Hang,
}

/// What one request carried: its Authorization header and its form.
pub(super) type Request = (String, Vec<(String, String)>);

#[derive(Debug)]
struct Shared {
    tokens: Mutex<HashMap<String, Value>>,
    mode: Mutex<Mode>,
    hits: AtomicUsize,
    /// The last request's Authorization header and form.
    last: Mutex<Option<Request>>,
}

/// The test endpoint.
pub(super) struct IntrospectionServer {
    pub(super) url: String,
    shared: Arc<Shared>,
}

impl IntrospectionServer {
    pub(super) async fn start() -> Self {
        let shared = Arc::new(Shared {
            tokens: Mutex::new(HashMap::new()),
            mode: Mutex::new(Mode::Normal),
            hits: AtomicUsize::new(0),
            last: Mutex::new(None),
        });
        let app = Router::new()
            .route("/introspect", post(introspect))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self {
            url: format!("http://{addr}/introspect"),
            shared,
        }
    }

    /// Issues an opaque token whose introspection answer is `active: true` plus `members`.
    pub(super) fn issue(&self, token: &str, members: Value) {
        let mut answer = json!({"active": true});
        if let (Some(answer), Value::Object(members)) = (answer.as_object_mut(), members) {
            answer.extend(members);
        }
        self.lock_tokens().insert(token.to_owned(), answer);
    }

    /// Forgets a token: from now on it is inactive.
    pub(super) fn revoke(&self, token: &str) {
        self.lock_tokens().remove(token);
    }

    pub(super) fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().expect("mode lock") = mode;
    }

    pub(super) fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    /// The Authorization header and form of the last request.
    pub(super) fn last_request(&self) -> Option<Request> {
        self.shared.last.lock().expect("last lock").clone()
    }

    /// The configuration of [`ISSUER`] with this endpoint, caching for `cache_ttl`.
    pub(super) fn config(&self, jwks_url: &str, cache_ttl: Duration) -> VerifierConfig {
        let mut introspection = IntrospectionConfig::new(
            self.url.clone(),
            CLIENT_ID,
            ClientSecret::new(CLIENT_SECRET),
        );
        introspection.cache_ttl = cache_ttl;
        introspection.request_timeout = Duration::from_millis(500);
        let mut config = VerifierConfig::new(
            ISSUER,
            jwks_url,
            AUDIENCE,
            vec![jsonwebtoken::Algorithm::ES256],
        );
        config.introspection = Some(introspection);
        config
    }

    /// An authenticator trusting [`ISSUER`] with this endpoint.
    pub(super) fn authenticator(&self, cache_ttl: Duration) -> Authenticator {
        let config = self.config("http://127.0.0.1:9/jwks.json", cache_ttl);
        Authenticator::new(vec![config], http()).expect("introspecting authenticator")
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Value>> {
        self.shared.tokens.lock().expect("tokens lock")
    }
}

/// The members of a valid access token of [`ISSUER`] for [`TOPIC`].
pub(super) fn active_members() -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-7", "client_id": "app-7",
        "iat": now, "exp": now + 600, "token_type": "Bearer",
        "scope": "fhircast/Patient-open.read fhircast/Patient-open.write",
        "hub.topic": TOPIC,
    })
}

async fn introspect(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let form: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let token = form
        .iter()
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    *shared.last.lock().expect("last lock") = Some((authorization, form));
    let mode = shared.mode.lock().expect("mode lock").clone();
    match mode {
        Mode::Normal => {
            let answer = shared
                .tokens
                .lock()
                .expect("tokens lock")
                .get(&token)
                .cloned()
                .unwrap_or_else(|| json!({"active": false}));
            axum::Json(answer).into_response()
        }
        Mode::Raw(status, body) => {
            let status = StatusCode::from_u16(status).expect("status");
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Mode::Redirect(to) => {
            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response()
        }
        Mode::Hang => std::future::pending().await,
    }
}
