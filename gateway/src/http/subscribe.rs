//! Subscribe and unsubscribe (2-4 Subscribing): topic binding, scopes (granted = requested
//! ∩ readable), the lease (never beyond the token), then the topic.

use std::time::SystemTime;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::debug;

use fhircast_proto::hub::{Caller, SubscribeCommand, unix_ms};
use fhircast_proto::scope::Access;
use fhircast_proto::subscription::{Mode, SubscriptionRequest};
use fhircast_proto::{EndpointId, EventName, TopicId};

use super::request_log::note_topic;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// Handles a parsed subscription request.
pub(crate) async fn handle_subscription(
    state: &AppState,
    principal: &Principal,
    request: SubscriptionRequest,
) -> Result<Response, ApiError> {
    for leniency in &request.leniencies {
        debug!(
            leniency = leniency.describe(),
            "accepted a subscription request beyond the letter of STU3"
        );
    }
    let caller = state.settings.binding.caller(principal, &request.topic)?;
    let topic = TopicId::parse(&request.topic, &state.topic_key)?;
    note_topic(topic.topic_ref());
    let endpoint = request
        .endpoint
        .as_deref()
        .map(|url| {
            EndpointId::from_endpoint_url(url)
                .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown hub.channel.endpoint"))
        })
        .transpose()?;
    let endpoint = match request.mode {
        Mode::Subscribe => subscribe(state, principal, caller, &topic, request, endpoint).await?,
        Mode::Unsubscribe => {
            if !principal.scopes.can_read_anything() {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "the token grants no fhircast read scope",
                ));
            }
            let endpoint = endpoint.ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unsubscribe requires hub.channel.endpoint",
                )
            })?;
            state
                .hub
                .unsubscribe(&topic, endpoint.clone(), caller)
                .await?;
            endpoint
        }
    };
    let body = json!({"hub.channel.endpoint": state.settings.endpoint_url(&endpoint)});
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn subscribe(
    state: &AppState,
    principal: &Principal,
    caller: Caller,
    topic: &TopicId,
    request: SubscriptionRequest,
    endpoint: Option<EndpointId>,
) -> Result<EndpointId, ApiError> {
    let granted: Vec<EventName> = request
        .events
        .into_iter()
        .filter(|event| principal.scopes.allows(event, Access::Read))
        .collect();
    if granted.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the token grants no fhircast/<event>.read scope for any requested event",
        ));
    }
    let now = SystemTime::now();
    let token_left = principal.seconds_left(now);
    if token_left == 0 {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the access token has expired",
        ));
    }
    let settings = &state.settings;
    let lease_seconds = request
        .lease_seconds
        .unwrap_or(settings.default_lease_seconds)
        .min(settings.max_lease_seconds)
        .min(token_left);
    let command = SubscribeCommand {
        events: granted,
        lease_seconds,
        token_expires: unix_ms(principal.expires_at),
        subscriber_name: request.subscriber_name,
        endpoint,
        owner: caller.owner,
        minted_for: caller.minted_for,
    };
    Ok(state.hub.subscribe(topic, command).await?)
}
