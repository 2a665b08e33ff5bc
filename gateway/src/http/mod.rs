//! The HTTP API (docs/api.md): the route table and the layers around it.
//!
//! - `hub.rs`: `POST {base}` dispatch and `POST {base}/{topic}`.
//! - `subscribe.rs`, `publish.rs`, `context.rs`: the three things an app does.
//! - `health.rs`: health, readiness, discovery. `body.rs`: content types, size and time
//!   limits. `request_log.rs`: the log line of every refused request.
//!
//! The API may be served under several base paths at once (`--base-path
//! /api/hub,/fhircast/STU3`): Medplum clients default to `{base}/fhircast/STU3`, OHIF to
//! `/api/hub`. Every base path serves the same hub.

mod binding;
pub(crate) mod body;
mod context;
mod health;
mod hub;
mod publish;
mod rate_limit;
mod request_log;
mod source;
mod subscribe;

pub use binding::{BindingPolicy, TopicBinding, WeakTopics};
#[doc(hidden)]
pub use publish::check_event;
pub use rate_limit::{RateLimitSettings, RateLimits};
pub(crate) use request_log::{ErrorReason, note_endpoint, note_topic};
pub use source::{IpBlock, PeerAddr};

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{Principal, reject_token_in_query};
use crate::error::ApiError;
use crate::state::AppState;

/// Builds the router: the FHIRcast API under each base path (`""` for the root), the
/// WebSocket path, health.
pub fn router(state: AppState, base_paths: &[&str], cors_origins: &[String]) -> Router {
    let mut app = Router::new();
    for base_path in base_paths {
        app = app.merge(hub_routes(base_path));
    }
    app.route("/ws/{endpoint}", get(crate::ws::upgrade))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_log::log_refusals,
        ))
        .layer(cors_layer(cors_origins))
        .with_state(state)
}

fn hub_routes(base_path: &str) -> Router<AppState> {
    let topic_routes = Router::new()
        .route(
            "/.well-known/fhircast-configuration",
            get(health::discovery),
        )
        .route("/{topic}", get(context::get_context).post(hub::post_topic));
    if base_path.is_empty() {
        Router::new()
            .route("/", post(hub::post_hub))
            .merge(topic_routes)
    } else {
        Router::new()
            .route(base_path, post(hub::post_hub))
            .route(&format!("{base_path}/"), post(hub::post_hub))
            .nest(base_path, topic_routes)
    }
}

/// Verifies the caller's bearer token; a token in the query string is refused (it would
/// end up in access logs).
pub(crate) async fn authenticate(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    reject_token_in_query(uri.query())?;
    let principal = state.authenticator.verify_headers(headers).await?;
    request_log::note_client(&principal);
    state.limits.admit(&principal)?;
    Ok(principal)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

/// CORS for browser apps. Origins grant nothing (tokens do), so with the default `*` the
/// request's origin is echoed and credentials mode is allowed: the hub sets and reads no
/// cookies, and browser SDKs (Medplum's sends `credentials: 'include'`, `X-Medplum` and
/// `Cache-Control`) are refused by the browser otherwise.
fn cors_layer(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::CACHE_CONTROL,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-medplum"),
        ])
}
