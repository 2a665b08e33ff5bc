//! One info line for every request the hub refuses (4xx) or fails (5xx), with its reason,
//! so an operator can tell from the log why an app was turned away. Each request runs in a
//! `request` span whose fields the handlers fill as they learn them: the client id of the
//! token, the topic's ref, the endpoint's prefix; and the source address it came from
//! (see [`super::source`]). Never the raw topic, a token or PHI: the
//! route is logged as its pattern (`/api/hub/{topic}`), not the path.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::field::Empty;
use tracing::{Instrument as _, Span, info, info_span};

use fhircast_proto::{EndpointId, TopicRef};

use super::source::{PeerAddr, source_address};
use crate::auth::Principal;
use crate::state::AppState;

/// The reason of an error answer, put in the response's extensions by
/// [`crate::error::ApiError`] for this log.
#[derive(Clone, Debug)]
pub(crate) struct ErrorReason(pub(crate) String);

/// Wraps every route: runs the request in its span and logs a refusal when it ends in one.
pub(crate) async fn log_refusals(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let source = request.extensions().get::<PeerAddr>().map(|peer| {
        source_address(
            peer.0.ip(),
            request.headers(),
            &state.settings.trusted_proxies,
        )
    });
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let span = info_span!(
        "request",
        method = %request.method(),
        route = %route,
        source = source.map(tracing::field::display),
        client = Empty,
        topic = Empty,
        endpoint = Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        let reason = response
            .extensions()
            .get::<ErrorReason>()
            .map_or("-", |reason| reason.0.as_str());
        span.in_scope(|| info!(status = status.as_u16(), reason, "request refused"));
    }
    response
}

/// Records the caller's client id in the current request's span.
pub(crate) fn note_client(principal: &Principal) {
    Span::current().record(
        "client",
        tracing::field::display(principal.client_id.as_deref().unwrap_or("-")),
    );
}

/// Records the topic's ref in the current request's span.
pub(crate) fn note_topic(topic: &TopicRef) {
    Span::current().record("topic", tracing::field::display(topic));
}

/// Records the endpoint's prefix in the current request's span.
pub(crate) fn note_endpoint(endpoint: &EndpointId) {
    Span::current().record("endpoint", tracing::field::display(endpoint));
}
