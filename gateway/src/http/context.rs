//! `GET {base}/{topic}`: Get Current Context (2-9), filtered by the caller's read scopes:
//! a caller that may not read the current anchor's open event sees the empty form.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;

use fhircast_proto::TopicId;
use fhircast_proto::scope::Access;

use super::authenticate;
use super::request_log::note_topic;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET {base}/{topic}`.
pub(crate) async fn get_context(
    State(state): State<AppState>,
    Path(topic): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let principal = authenticate(&state, &uri, &headers).await?;
    let result = context_as(&state, &principal, &topic).await;
    state.limits.observe(&principal, &result);
    result
}

async fn context_as(
    state: &AppState,
    principal: &Principal,
    topic: &str,
) -> Result<Json<Value>, ApiError> {
    let caller = state.settings.binding.caller(principal, topic)?;
    if !principal.scopes.can_read_anything() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the token grants no fhircast read scope",
        ));
    }
    let topic = TopicId::parse(topic, &state.topic_key)?;
    note_topic(topic.topic_ref());
    let mut context = state.hub.current_context(&topic, caller).await?;
    let readable = context
        .event_name
        .as_ref()
        .is_none_or(|name| principal.scopes.allows(name, Access::Read));
    if !readable {
        context = context.emptied();
    }
    Ok(Json(context.to_json()))
}
