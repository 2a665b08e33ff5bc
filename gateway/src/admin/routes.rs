//! The admin API's routes and their checks: the admin credential, then the request.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::info;

use fhircast_proto::TopicId;
use fhircast_proto::hub::TopicRecord;
use fhircast_proto::ids::random_token;
use fhircast_proto::json::parse_strict;

use super::AdminSecret;
use crate::error::ApiError;
use crate::http::body::{BodyKind, body_kind, read_body};
use crate::state::AppState;

/// Largest admin request body.
const MAX_ADMIN_BODY: usize = 4096;
/// Longest user name a topic is minted for.
const MAX_USER_LEN: usize = 1024;
/// Topics listed when no limit is asked for.
const DEFAULT_LIST_LIMIT: usize = 100;

#[derive(Clone, Debug)]
struct Admin {
    state: AppState,
    secret: AdminSecret,
}

/// The admin API's routes, for its own listener.
pub fn router(state: AppState, secret: AdminSecret) -> Router {
    Router::new()
        .route("/admin/topics", get(list).post(mint))
        .route("/admin/topics/{topic}", delete(revoke))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such admin route") })
        .with_state(Admin { state, secret })
}

/// Refuses a request without the admin credential (401 with `WWW-Authenticate`).
fn authorize(admin: &Admin, headers: &HeaderMap) -> Result<(), ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let presented = match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok().and_then(|value| {
            let (scheme, secret) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| secret.trim())
        }),
        _ => None,
    };
    if presented.is_some_and(|secret| admin.secret.matches(secret)) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "the admin API needs its own bearer secret (--admin-token-file)",
    ))
}

fn record_json(record: &TopicRecord) -> Value {
    json!({
        "topic": record.topic,
        "user": record.user,
        "minted_unix_ms": record.minted_at,
        "revoked_unix_ms": record.revoked_at,
    })
}

/// `POST /admin/topics` `{"user": "<sub>"}`.
async fn mint(
    State(admin): State<Admin>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(&admin, &headers)?;
    if body_kind(&headers)? != BodyKind::Json {
        return Err(bad_request("send the request as application/json"));
    }
    let settings = &admin.state.settings;
    let bytes = read_body(body, MAX_ADMIN_BODY, settings.body_read_timeout).await?;
    let request = parse_strict(&bytes, settings.input_limits.max_json_depth)?;
    let user = match request.get("user") {
        Some(Value::String(user)) if !user.is_empty() && user.len() <= MAX_USER_LEN => user,
        _ => {
            return Err(bad_request(format!(
                "the body must be {{\"user\": \"<sub of the user's tokens>\"}} (1 to \
                 {MAX_USER_LEN} characters)"
            )));
        }
    };
    if request.as_object().is_some_and(|fields| fields.len() > 1) {
        return Err(bad_request("the body takes only \"user\""));
    }
    let topic = TopicId::parse(&random_token(), &admin.state.topic_key)?;
    let record = admin.state.hub.mint_topic(&topic, user).await?;
    info!(topic = %topic, "admin minted a topic");
    Ok((StatusCode::CREATED, Json(record_json(&record))).into_response())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    user: Option<String>,
    limit: Option<usize>,
}

/// `GET /admin/topics[?user=…][&limit=…]`.
async fn list(
    State(admin): State<Admin>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&admin, &headers)?;
    let Ok(Query(query)) = query else {
        return Err(bad_request(
            "the query takes user=<sub> and limit=<1..1000>",
        ));
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=hub_node::registry::MAX_LISTED_RECORDS).contains(&limit) {
        return Err(bad_request("limit must be between 1 and 1000"));
    }
    let records = admin
        .state
        .hub
        .list_topics(query.user.as_deref(), limit)
        .await?;
    let topics: Vec<Value> = records.iter().map(record_json).collect();
    Ok(Json(json!({ "topics": topics })).into_response())
}

/// `DELETE /admin/topics/{topic}`.
async fn revoke(
    State(admin): State<Admin>,
    headers: HeaderMap,
    Path(topic): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&admin, &headers)?;
    let topic = TopicId::parse(&topic, &admin.state.topic_key)?;
    let (record, ended) = admin.state.hub.revoke_topic(&topic).await?;
    info!(topic = %topic, subscriptions_ended = ended, "admin revoked a topic");
    let mut body = record_json(&record);
    body["subscriptions_ended"] = json!(ended);
    Ok(Json(body).into_response())
}

fn bad_request(reason: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, reason)
}
