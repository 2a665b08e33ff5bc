//! The FHIRcast gateway: HTTP API, WebSocket channel and SMART token verification. Embedded
//! (the default), it also hosts the topics in-process through the hub-node library; with
//! `--redis-url` it joins a cluster, reaching the topics' owners over gRPC and their
//! notifications over Redis. Both fill the same seams ([`hub_client::HubClient`] and
//! `fhircast_proto::bus::Bus`), so handlers and sockets do not know which runs.
//!
//! The gateway uses hub-node for the embedded wiring and for process plumbing it shares with
//! the hub node binary (logs, signals, the topic flags, Redis connections); it never reaches
//! a topic except through the seam.
//!
//! # Layout
//!
//! - [`config`]: flags and `FHIRCAST_*` variables; [`run`]: start-up order and drain.
//! - [`listener`]: the accept loop (header timeout, connection cap, graceful close);
//!   [`tls`]: HTTPS/WSS with certificate rotation.
//! - [`http`]: the route table and handlers; [`ws`]: handshake, fan-out, socket tasks.
//! - [`auth`]: token verification (JWKS-backed JWTs, introspected opaque tokens);
//!   [`issuers`]: which issuers are trusted, from flags or an issuers file;
//!   [`dev_issuer`]: the dev-only issuer.
//! - [`admin`]: the admin API (mint, list, revoke topics) on its own listener.
//! - [`hub_client`]: the seam to the topics; [`embedded`]: the in-process hub behind it;
//!   [`cluster`]: the gRPC client, the Redis bus and the membership of cluster mode.
//! - [`state`]: what handlers share.
//! - [`error`]: HTTP error answers; [`walkthrough`]: what `make run` prints. Logs and
//!   signals are set up with `hub_node::telemetry` and `hub_node::shutdown`, shared with
//!   the hub node binary.

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod dev_issuer;
pub mod embedded;
pub mod error;
pub mod http;
pub mod hub_client;
pub mod issuers;
pub mod listener;
pub mod state;
pub mod tls;
pub mod walkthrough;
pub mod ws;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::http::{HeaderValue, header};
use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::set_header::SetResponseHeaderLayer;
use tracing::{info, warn};

use fhircast_proto::TopicKey;
use fhircast_proto::discovery::{Capabilities, discovery_document};
use hub_node::bus::HistoryLimits;

use crate::config::Config;
use crate::dev_issuer::DevIssuer;
use crate::embedded::EmbeddedHub;
use crate::listener::ListenerSettings;
use crate::state::{AppState, Settings, SocketSettings};
use crate::ws::Fanout;

/// The `Strict-Transport-Security` value: one year.
const HSTS: &str = "max-age=31536000";

/// Longest a batch of socket writes may block before the socket is cut as too slow.
const SOCKET_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the gateway on a bound listener until `shutdown` is cancelled, then drains:
/// readiness off, stop accepting, close sockets with 1012, let HTTP requests in flight
/// finish, wait for the sockets (each bounded by the grace period), then stop the topics.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let bound = listener
        .local_addr()
        .context("failed to read the bound address")?;
    let tls = match config.tls_files() {
        Some(files) => Some(tls::ReloadingCert::load(files).context("TLS certificate")?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{bound}"));
    let hub_url = format!("{public_url}{}", config.normalized_base_path());
    let ws_base = match public_url.strip_prefix("https://") {
        Some(rest) => format!("wss://{rest}"),
        None => format!("ws://{}", public_url.trim_start_matches("http://")),
    };

    let hub_tracker = TaskTracker::new();
    let hub_shutdown = CancellationToken::new();
    let topic_key = config
        .topic_key
        .as_ref()
        .map_or_else(TopicKey::random, |key| TopicKey::new(key.as_bytes()));
    let (hub, bus, in_standing, bus_healthy) = match &config.redis_url {
        Some(url) => {
            let cluster =
                cluster::start(&config, url, topic_key.clone(), hub_shutdown.clone()).await?;
            (
                cluster.hub,
                cluster.bus,
                Some(cluster.in_standing),
                Some(cluster.bus_healthy),
            )
        }
        None => {
            let history = HistoryLimits {
                max_bytes: config.topic_history_bytes,
                max_total_bytes: config.history_total_bytes,
                ..HistoryLimits::default()
            };
            let embedded = EmbeddedHub::start(
                config.topics.settings(),
                history,
                topic_key.clone(),
                hub_tracker.clone(),
                hub_shutdown.clone(),
            );
            (embedded.hub, embedded.bus, None, None)
        }
    };

    let (authenticator, dev_issuer) =
        issuers::authenticator(&config, &bound, &public_url, &hub_url).await?;

    let socket_tracker = TaskTracker::new();
    let socket_shutdown = shutdown.child_token();
    let state = AppState {
        hub,
        authenticator: authenticator.clone(),
        fanout: Fanout::new(bus, socket_tracker.clone(), socket_shutdown.clone()),
        topic_key,
        settings: Arc::new(handler_settings(&config, hub_url.clone(), ws_base)?),
        shutdown: socket_shutdown.clone(),
        tracker: socket_tracker.clone(),
        limits: Arc::new(http::RateLimits::new(http::RateLimitSettings {
            requests_per_second: config.rate_limit_per_second,
            burst: config.rate_limit_burst,
            topic_refusals_per_minute: config.topic_refusals_per_minute,
        })),
        ready: Arc::new(AtomicBool::new(false)),
    };
    let mut router = http::router(
        state.clone(),
        &config.normalized_base_paths(),
        &config.cors_origins,
    );
    if let Some(issuer) = &dev_issuer {
        router = router.nest("/dev-issuer", Arc::clone(issuer).router());
    }
    if config.serves_tls() {
        // Browsers that reached the hub over HTTPS never try plain HTTP again.
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        ));
    }
    let acceptor = match &tls {
        Some(cert) => {
            let every = Duration::from_millis(config.tls_reload_check_ms);
            socket_tracker.spawn(Arc::clone(cert).watch(every, shutdown.child_token()));
            Some(tokio_rustls::TlsAcceptor::from(
                tls::server_config(cert).context("TLS configuration")?,
            ))
        }
        None => None,
    };

    announce(
        &format!("{scheme}://{bound}"),
        &public_url,
        &hub_url,
        dev_issuer.as_deref(),
        config.redis_url.is_none(),
    );
    state.ready.store(true, Ordering::Relaxed);
    let prefetch = authenticator.clone();
    socket_tracker.spawn(async move { prefetch.prefetch().await });

    if let Some(bus_healthy) = bus_healthy {
        socket_tracker.spawn(cluster::revalidation::run(
            state.fanout.clone(),
            Arc::clone(&state.hub),
            bus_healthy,
            Duration::from_millis(config.revalidate_interval_ms),
            shutdown.clone(),
        ));
    }
    if let Some(in_standing) = in_standing {
        socket_tracker.spawn(follow_standing(
            in_standing,
            state.clone(),
            shutdown.clone(),
        ));
    }
    {
        let state = state.clone();
        let shutdown = shutdown.clone();
        socket_tracker.spawn(async move {
            shutdown.cancelled().await;
            state.ready.store(false, Ordering::Relaxed);
        });
    }
    let listener_settings = ListenerSettings {
        header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
        max_connections: config.max_connections,
    };
    if let (Some(address), Some(path)) = (config.admin_listen, &config.admin_token_file) {
        let secret = admin::AdminSecret::from_file(path)
            .map_err(|reason| anyhow::anyhow!("--admin-token-file: {reason}"))?;
        let admin_listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("failed to bind the admin listener on {address}"))?;
        let admin_bound = admin_listener
            .local_addr()
            .context("failed to read the admin listener's address")?;
        let served = listener::serve(
            admin_listener,
            admin::router(state.clone(), secret),
            listener_settings,
            acceptor.clone(),
            shutdown.clone(),
            config.shutdown_grace(),
        );
        socket_tracker.spawn(served);
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "admin listening {scheme}://{admin_bound}");
        let _ = stdout.flush();
        info!(address = %admin_bound, "admin API listening");
    }
    if config.weak_topics == http::WeakTopics::Allow
        && config.topic_binding != http::BindingPolicy::Owner
    {
        warn!(
            "--weak-topics allow: guessable topics (patient ids, counters, time-based UUIDs) \
             are served; anyone who guesses one and holds a token for it joins the session"
        );
    }
    if config.topic_binding == http::BindingPolicy::None {
        warn!(
            "--topic-binding none: any valid token may use any topic; use it only where \
             every app is trusted with every session"
        );
    }
    listener::serve(
        listener,
        router,
        listener_settings,
        acceptor,
        shutdown.clone(),
        config.shutdown_grace(),
    )
    .await;

    // Sockets were told to close (1012) when `shutdown` was cancelled; wait for them.
    socket_shutdown.cancel();
    socket_tracker.close();
    let drained = tokio::time::timeout(config.shutdown_grace(), socket_tracker.wait()).await;
    hub_shutdown.cancel();
    hub_tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), hub_tracker.wait()).await;
    match drained {
        Ok(()) => info!("drained"),
        Err(_) => warn!("grace period ended before every socket closed"),
    }
    Ok(())
}

/// Out of the cluster's membership, a gateway cannot vouch for its sockets (the hub nodes
/// may have detached them, and its bus may be cut): it closes them with 1012, so clients
/// reconnect through another gateway, and refuses attaches (not ready) until it is back.
async fn follow_standing(
    mut in_standing: tokio::sync::watch::Receiver<bool>,
    state: AppState,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = in_standing.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let standing = *in_standing.borrow_and_update();
        if !standing {
            state.fanout.evict_everything(ws::CLOSE_RECONNECT);
        }
        if !shutdown.is_cancelled() {
            state.ready.store(standing, Ordering::Relaxed);
        }
    }
}

/// Returns what handlers read on every request, with the discovery document encoded once.
fn handler_settings(config: &Config, hub_url: String, ws_base: String) -> anyhow::Result<Settings> {
    let capabilities = Capabilities {
        non_current_context_updates: config.topics.non_current_context_updates,
        extra_events: Vec::new(),
    };
    let discovery = serde_json::to_vec(&discovery_document(&capabilities))
        .context("failed to encode the discovery document")?;
    Ok(Settings {
        hub_url,
        ws_base,
        discovery: Bytes::from(discovery),
        max_body_bytes: config.max_body_bytes,
        body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
        default_lease_seconds: config.default_lease_seconds,
        max_lease_seconds: config.max_lease_seconds,
        socket: SocketSettings {
            ack_timeout: Duration::from_millis(config.ack_timeout_ms),
            ping_interval: Duration::from_millis(config.ping_interval_ms),
            stall_timeout: Duration::from_millis(config.stall_timeout_ms),
            max_frame_bytes: config.max_frame_bytes,
            outbox_capacity: config.outbox_capacity,
            write_timeout: SOCKET_WRITE_TIMEOUT,
        },
        binding: http::TopicBinding {
            policy: config.topic_binding,
            weak_topics: config.weak_topics,
        },
        trusted_proxies: config.trusted_proxies.clone(),
        input_limits: config
            .input_limits
            .limits()
            .context("input limits (checked at start-up)")?,
    })
}

/// Prints the machine-readable `listening` line on stdout and the start-up notes.
fn announce(
    bound_url: &str,
    public_url: &str,
    hub_url: &str,
    dev_issuer: Option<&DevIssuer>,
    embedded: bool,
) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening {bound_url}");
    if dev_issuer.is_some() {
        let _ = write!(
            stdout,
            "{}",
            walkthrough::walkthrough(public_url, hub_url, embedded)
        );
    }
    let _ = stdout.flush();
    info!(hub_url, "fhircast hub listening");
    if embedded {
        warn!(
            "embedded hub: subscriptions and context are kept in memory only; a restart loses them"
        );
    }
    if let Some(issuer) = dev_issuer {
        warn!(
            target: "dev_issuer",
            token_url = %issuer.token_url(),
            kid = %issuer.kid(),
            "dev-only issuer enabled: tokens are signed with a dev key; never use in production"
        );
    }
}
