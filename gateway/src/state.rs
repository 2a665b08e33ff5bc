//! [`AppState`]: what every HTTP and WebSocket handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use fhircast_proto::{EndpointId, TopicKey};

use crate::auth::Authenticator;
use crate::hub_client::HubClient;
use crate::ws::Fanout;

/// Settings handlers read on every request.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `hub.url`: public URL plus base path.
    pub hub_url: String,
    /// Base of endpoint URLs: `ws://host` or `wss://host`.
    pub ws_base: String,
    /// The discovery document, encoded once.
    pub discovery: Bytes,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Longest a request body may take to arrive.
    pub body_read_timeout: Duration,
    /// Lease granted when none is asked for.
    pub default_lease_seconds: u64,
    /// Longest lease granted.
    pub max_lease_seconds: u64,
    /// Per-socket behaviour.
    pub socket: SocketSettings,
    /// How tokens are bound to topics.
    pub binding: crate::http::TopicBinding,
    /// Peers whose `X-Forwarded-For` names the source address logged.
    pub trusted_proxies: Vec<crate::http::IpBlock>,
    /// How deep, how many and how long a request's parts may be.
    pub input_limits: fhircast_proto::limits::Limits,
}

impl Settings {
    /// Returns the WebSocket URL of an endpoint.
    pub fn endpoint_url(&self, endpoint: &EndpointId) -> String {
        format!("{}/ws/{}", self.ws_base, endpoint.expose())
    }
}

/// What each WebSocket connection is configured with.
#[derive(Clone, Copy, Debug)]
pub struct SocketSettings {
    /// How long a subscriber has to acknowledge a notification.
    pub ack_timeout: Duration,
    /// Ping interval; silence for two intervals is unresponsiveness.
    pub ping_interval: Duration,
    /// How long a subscriber may stay silent after a notification was written to it before
    /// the socket is cut as stalled (probed with a ping halfway); zero disables the cut.
    pub stall_timeout: Duration,
    /// Largest accepted inbound message.
    pub max_frame_bytes: usize,
    /// Queued notifications before a socket is cut as too slow.
    pub outbox_capacity: usize,
    /// Longest a batch of writes may block before the socket is cut as too slow.
    pub write_timeout: Duration,
}

/// Shared handler state.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The topics.
    pub hub: Arc<dyn HubClient>,
    /// Token verification, for every trusted issuer.
    pub authenticator: Authenticator,
    /// Per-topic fan-out of bus envelopes to local sockets.
    pub fanout: Fanout,
    /// Turns topics into loggable refs.
    pub topic_key: TopicKey,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Cancelled when the process drains.
    pub shutdown: CancellationToken,
    /// Tracks socket tasks so a drain can wait for them.
    pub tracker: TaskTracker,
    /// Per-client rate limits.
    pub limits: Arc<crate::http::RateLimits>,
    /// Readiness, false while starting and draining.
    pub ready: Arc<AtomicBool>,
}

impl AppState {
    /// Returns true if the gateway takes traffic.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}
