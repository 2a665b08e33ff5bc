//! `POST {base}` and `POST {base}/{topic}`: one URL for subscriptions and events, told
//! apart by content (DESIGN §4): a form is a subscription request; JSON with `hub.mode`
//! is a subscription request (as some clients send it); JSON with `event` is an event.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;

use fhircast_proto::json::parse_strict;
use fhircast_proto::subscription::SubscriptionRequest;

use super::authenticate;
use super::body::{BodyKind, body_kind, read_body};
use super::publish::handle_event;
use super::subscribe::handle_subscription;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// `POST {base}`.
pub(crate) async fn post_hub(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &uri, &headers).await?;
    let result = post_hub_as(&state, &principal, &headers, body).await;
    state.limits.observe(&principal, &result);
    result
}

async fn post_hub_as(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let kind = body_kind(headers)?;
    let bytes = read_body(
        body,
        state.settings.max_body_bytes,
        state.settings.body_read_timeout,
    )
    .await?;
    let limits = &state.settings.input_limits;
    if kind == BodyKind::Form {
        let request = SubscriptionRequest::from_form(&bytes, limits)?;
        return handle_subscription(state, principal, request).await;
    }
    let value = parse_strict(&bytes, limits.max_json_depth)?;
    match value.as_object() {
        Some(object) if object.contains_key("hub.mode") => {
            let request = SubscriptionRequest::from_json(object, limits)?;
            handle_subscription(state, principal, request).await
        }
        Some(object) if object.contains_key("event") => {
            handle_event(state, principal, &value, None).await
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a JSON body must be a subscription request (with hub.mode) or an event (with event)",
        )),
    }
}

/// `POST {base}/{topic}`: the STU2-era event path.
pub(crate) async fn post_topic(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let principal = authenticate(&state, &uri, &headers).await?;
    if body_kind(&headers)? != BodyKind::Json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST {hub.url}/{topic} takes an event as application/json or application/fhir+json",
        ));
    }
    let bytes = read_body(
        body,
        state.settings.max_body_bytes,
        state.settings.body_read_timeout,
    )
    .await?;
    let value = parse_strict(&bytes, state.settings.input_limits.max_json_depth)?;
    let result = handle_event(&state, &principal, &value, Some(&topic)).await;
    state.limits.observe(&principal, &result);
    result
}
