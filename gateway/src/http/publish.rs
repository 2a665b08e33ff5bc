//! Event requests (2-6 Send Event Notification): validation, topic binding, the
//! `.write` scope, then the topic. `202 Accepted` only after the topic committed the event.

use std::time::SystemTime;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use fhircast_proto::TopicId;
use fhircast_proto::event::EventRequest;
use fhircast_proto::hub::Caller;
use fhircast_proto::limits::Limits;
use fhircast_proto::scope::Access;

use super::binding::TopicBinding;
use super::request_log::note_topic;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// Handles an event request body; `route_topic` is the topic of `POST {base}/{topic}`.
pub(crate) async fn handle_event(
    state: &AppState,
    principal: &Principal,
    body: &Value,
    route_topic: Option<&str>,
) -> Result<Response, ApiError> {
    let (event, caller) = check_event(
        body,
        principal,
        state.settings.binding,
        route_topic,
        &state.settings.input_limits,
        SystemTime::now(),
    )?;
    let topic = TopicId::parse(&event.topic, &state.topic_key)?;
    note_topic(topic.topic_ref());
    state.hub.publish(&topic, event, caller).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Validates an event request body (parsed strictly) for `principal`: the envelope, the
/// topic against the URL's and (under `binding`) the token's, and the `.write` scope, within
/// `limits`.
/// Returns the event and the caller to name to the topic. Public for the
/// `event_envelope` fuzz target.
#[doc(hidden)]
pub fn check_event(
    body: &Value,
    principal: &Principal,
    binding: TopicBinding,
    route_topic: Option<&str>,
    limits: &Limits,
    now: SystemTime,
) -> Result<(EventRequest, Caller), ApiError> {
    let event = EventRequest::from_json(body, now, limits)?;
    if route_topic.is_some_and(|route| route != event.topic) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "event.hub.topic does not match the topic in the URL",
        ));
    }
    let caller = binding.caller(principal, &event.topic)?;
    if !principal.scopes.allows(&event.name, Access::Write) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the token lacks the scope fhircast/{}.write", event.name),
        ));
    }
    Ok((event, caller))
}
