//! `GET /ws/{endpoint}`: the WebSocket handshake.
//!
//! The topic decides before anything else happens: an id the hub never issued (or has
//! forgotten) is 404 without an upgrade; an endpoint that already has a live socket is 409
//! and changes nothing; an endpoint whose subscription ended is upgraded, sent its denial
//! and closed with 1000, so a client that keeps reconnecting stops for good. Otherwise the
//! socket attaches (first time, or again within the re-attach window).
//!
//! The socket registers with its topic's fan-out *before* attaching, so no envelope
//! published after the attach snapshot can be missed; the registration is the socket's
//! own and a refused attempt drops it without touching any other socket of the endpoint.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fastwebsockets::upgrade::{IncomingUpgrade, UpgradeFut};
use fastwebsockets::{Frame, OpCode, Payload, Role, after_handshake_split};
use tracing::{debug, info};

use fhircast_proto::hub::TopicError;
use fhircast_proto::hub::{AttachOutcome, Attachment, Detach, DetachReason, EndReason};
use fhircast_proto::{EndpointId, TopicRef};

use super::connection::{Session, SessionContext};
use super::fanout::Registration;
use super::halves;
use super::outbound::Coalescing;
use super::reader::ReadSide;
use crate::error::ApiError;
use crate::http::{note_endpoint, note_topic};
use crate::listener::ConnectionPermit;
use crate::state::AppState;

/// How long an ended endpoint's socket waits for the client's close after the denial.
const DENIAL_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// `GET /ws/{endpoint}`.
pub async fn upgrade(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    permit: Option<axum::Extension<ConnectionPermit>>,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Result<Response, ApiError> {
    let upgrade = match upgrade {
        Ok(upgrade) if is_websocket_upgrade(&headers) => upgrade,
        _ => {
            return Err(refused(
                None,
                None,
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "expected a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Key, \
                     Sec-WebSocket-Version: 13)",
                ),
            ));
        }
    };
    if !state.is_ready() {
        let reason = if state.shutdown.is_cancelled() {
            "the hub is draining, retry"
        } else {
            "this gateway lost contact with the cluster for now, retry"
        };
        return Err(refused(
            None,
            None,
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason),
        ));
    }
    let Some(endpoint) = EndpointId::parse(&endpoint) else {
        return Err(refused(None, None, unknown_endpoint()));
    };
    let topic = match state.hub.resolve_endpoint(&endpoint).await {
        Ok(topic) => topic,
        Err(TopicError::UnknownEndpoint) => {
            return Err(refused(Some(&endpoint), None, unknown_endpoint()));
        }
        Err(err) => return Err(refused(Some(&endpoint), None, err.into())),
    };
    let capacity = state.settings.socket.outbox_capacity;
    let registration = state
        .fanout
        .register(&topic, &endpoint, capacity)
        .await
        .map_err(|err| {
            let error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string());
            refused(Some(&endpoint), Some(&topic), error)
        })?;
    let outcome = match state.hub.attach(endpoint.clone()).await {
        Ok(outcome) => outcome,
        Err(TopicError::UnknownEndpoint) => {
            return Err(refused(Some(&endpoint), Some(&topic), unknown_endpoint()));
        }
        Err(TopicError::EndpointInUse) => {
            let error = ApiError::new(
                StatusCode::CONFLICT,
                "this endpoint already has a live connection; it holds one socket at a time",
            );
            return Err(refused(Some(&endpoint), Some(&topic), error));
        }
        Err(err) => return Err(refused(Some(&endpoint), Some(&topic), err.into())),
    };
    let (response, socket) = upgrade.upgrade().map_err(|_| {
        let error = ApiError::new(StatusCode::BAD_REQUEST, "WebSocket handshake failed");
        refused(Some(&endpoint), Some(&topic), error)
    })?;
    let permit = permit.map(|axum::Extension(permit)| permit);
    let tracker = state.tracker.clone();
    match outcome {
        AttachOutcome::Attached(attachment) => {
            debug!(topic = %topic, endpoint = %endpoint, generation = attachment.generation, "socket attached");
            registration.note_attached(attachment.epoch, attachment.seq, &attachment.events);
            tracker.spawn(run_socket(
                state,
                socket,
                endpoint,
                attachment,
                registration,
                permit,
            ));
        }
        AttachOutcome::Ended { denial, reason } => {
            drop(registration);
            info!(
                topic = %topic,
                endpoint = %endpoint,
                reason = reason.label(),
                "handshake on an ended subscription: sending its denial and closing"
            );
            tracker.spawn(deny_and_close(socket, denial, reason, permit));
        }
    }
    Ok(response.into_response())
}

fn unknown_endpoint() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown endpoint: subscribe to get one",
    )
}

/// Notes what is known of a refused handshake (endpoint prefix, topic ref; never the raw
/// topic) in the request's span, whose log line carries the status and reason.
fn refused(endpoint: Option<&EndpointId>, topic: Option<&TopicRef>, error: ApiError) -> ApiError {
    if let Some(endpoint) = endpoint {
        note_endpoint(endpoint);
    }
    if let Some(topic) = topic {
        note_topic(topic);
    }
    error
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(header::UPGRADE).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.eq_ignore_ascii_case("websocket"))
    })
}

/// Sends the denial of an ended subscription and closes with 1000.
async fn deny_and_close(
    socket: UpgradeFut,
    denial: Bytes,
    reason: EndReason,
    _permit: Option<ConnectionPermit>,
) {
    let Ok(mut websocket) = socket.await else {
        return;
    };
    let sent = async {
        websocket
            .write_frame(Frame::text(Payload::Borrowed(&denial)))
            .await?;
        websocket
            .write_frame(Frame::close(1000, reason.denial_reason().as_bytes()))
            .await
    };
    if tokio::time::timeout(DENIAL_CLOSE_WAIT, sent).await.is_err() {
        return;
    }
    // Wait (briefly) for the client's close so the connection ends cleanly.
    let _ = tokio::time::timeout(DENIAL_CLOSE_WAIT, async {
        while let Ok(frame) = websocket.read_frame().await {
            if frame.opcode == OpCode::Close {
                break;
            }
        }
    })
    .await;
}

async fn run_socket(
    state: AppState,
    socket: UpgradeFut,
    endpoint: EndpointId,
    attachment: Attachment,
    registration: Registration,
    permit: Option<ConnectionPermit>,
) {
    let Ok(websocket) = socket.await else {
        debug!("client left during the WebSocket handshake");
        let detach = Detach {
            generation: attachment.generation,
            reason: DetachReason::ClientClosed {
                code: 1006,
                last_event: None,
            },
            resume: None,
        };
        let _ = state.hub.detach(endpoint, detach).await;
        return;
    };
    let (read, write) = halves::split(websocket.into_inner().into_inner());
    // Reading is ours (`inbound.rs`); fastwebsockets frames what we write, every frame
    // through the coalescing writer (no copy into a frame buffer of its own).
    let (_, mut writer) =
        after_handshake_split(tokio::io::empty(), Coalescing::new(write), Role::Server);
    writer.set_writev_threshold(0);
    let socket_settings = state.settings.socket;
    let context = SessionContext {
        settings: socket_settings,
        hub: Arc::clone(&state.hub),
        bus: Arc::clone(state.fanout.bus()),
        tracker: state.tracker.clone(),
    };
    let (session, shared) = Session::new(writer, endpoint, &attachment, context);
    let read = ReadSide::new(read, shared, socket_settings.max_frame_bytes);
    // The session in a task of its own: what the handshake needed is freed now, and an
    // idle socket keeps only the session's state (its read side included).
    let shutdown = state.shutdown.clone();
    state.tracker.spawn(async move {
        session.run(attachment, registration, read, shutdown).await;
        drop(permit);
    });
}
