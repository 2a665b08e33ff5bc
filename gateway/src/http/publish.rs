//! Event requests (2-6 Send Event Notification): validation, topic binding, the
//! `.write` scope, then the topic. `202 Accepted` only after the topic committed the event.

use std::time::SystemTime;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use fhircast_proto::TopicId;
use fhircast_proto::event::EventRequest;
use fhircast_proto::scope::Access;

use super::request_log::note_topic;
use super::subscribe::owner_of;
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
    let event = EventRequest::from_json(body, SystemTime::now())?;
    if route_topic.is_some_and(|route| route != event.topic) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "event.hub.topic does not match the topic in the URL",
        ));
    }
    if !principal.permits_topic(&event.topic) {
        return Err(ApiError::topic_not_permitted());
    }
    if !principal.scopes.allows(&event.name, Access::Write) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the token lacks the scope fhircast/{}.write", event.name),
        ));
    }
    let topic = TopicId::parse(&event.topic, &state.topic_key)?;
    note_topic(topic.topic_ref());
    state
        .hub
        .publish(&topic, event, owner_of(principal))
        .await?;
    Ok(StatusCode::ACCEPTED.into_response())
}
