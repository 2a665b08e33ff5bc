//! `GET /ws/{endpoint}`: the WebSocket handshake. Everything that can refuse happens before
//! the 101: an unknown, expired or already used endpoint is 404 (2-4: the endpoint is
//! single-use). The socket registers with its topic's fan-out *before* attaching, so no
//! batch published after the attach snapshot can be missed.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fastwebsockets::upgrade::{IncomingUpgrade, UpgradeFut};
use fastwebsockets::{Role, after_handshake_split};
use hyper_util::rt::TokioIo;
use tokio::io::BufWriter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use fhircast_proto::EndpointId;
use hub_node::topic::{Attachment, DetachReason};

use super::connection::Session;
use super::fanout::Registration;
use super::reader;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /ws/{endpoint}`.
pub async fn upgrade(
    State(state): State<AppState>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown, expired or already used endpoint",
        )
    };
    let upgrade = match upgrade {
        Ok(upgrade) if is_websocket_upgrade(&headers) => upgrade,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "expected a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Key, \
                 Sec-WebSocket-Version: 13)",
            ));
        }
    };
    if !state.is_ready() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the hub is draining, retry",
        ));
    }
    let endpoint = EndpointId::parse(&endpoint).ok_or_else(not_found)?;
    let topic = state
        .hub
        .resolve_endpoint(&endpoint)
        .await
        .map_err(|_| not_found())?;
    let capacity = state.settings.socket.outbox_capacity;
    let registration = state
        .fanout
        .register(&topic, &endpoint, capacity)
        .await
        .map_err(|err| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string()))?;
    let attachment = state
        .hub
        .attach(endpoint.clone())
        .await
        .map_err(|_| not_found())?;
    let (response, socket) = upgrade
        .upgrade()
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "WebSocket handshake failed"))?;
    let tracker = state.tracker.clone();
    tracker.spawn(run_socket(
        state,
        socket,
        endpoint,
        attachment,
        registration,
    ));
    Ok(response.into_response())
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers.get_all(header::UPGRADE).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.eq_ignore_ascii_case("websocket"))
    })
}

async fn run_socket(
    state: AppState,
    socket: UpgradeFut,
    endpoint: EndpointId,
    attachment: Attachment,
    registration: Registration,
) {
    let Ok(websocket) = socket.await else {
        debug!("client left during the WebSocket handshake");
        let reason = DetachReason::ClientClosed {
            code: 1006,
            last_event: None,
        };
        let _ = state.hub.detach(endpoint, reason).await;
        return;
    };
    let io: TokioIo<_> = websocket.into_inner();
    let (read, write) = tokio::io::split(io);
    let (mut reader, writer) = after_handshake_split(read, BufWriter::new(write), Role::Server);
    let socket_settings = state.settings.socket;
    reader.set_max_message_size(socket_settings.max_frame_bytes);
    let (events_tx, events_rx) = mpsc::channel(64);
    let stop_reader = CancellationToken::new();
    state.tracker.spawn(reader::run(
        reader,
        events_tx,
        socket_settings.max_frame_bytes,
        stop_reader.clone(),
    ));
    let session = Session::new(
        writer,
        endpoint,
        &attachment,
        socket_settings,
        Arc::clone(&state.hub),
        state.tracker.clone(),
    );
    session
        .run(attachment, registration, events_rx, state.shutdown.clone())
        .await;
    stop_reader.cancel();
}
