//! Start-up and drain of a hub node: connect to Redis, join the membership, serve the
//! `HubNode` gRPC service (over mutual TLS when configured) over the registry of topic
//! actors with the Redis store, and on shutdown stop accepting, release every topic and
//! leave the membership. The service is the only one served: no reflection, no health.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::transport::server::TcpIncoming;
use tracing::{info, warn};

use fhircast_proto::TopicKey;
use fhircast_proto::ids::random_token;
use fhircast_proto::wire::v1::hub_node_server::HubNodeServer;

use super::membership::{self, NodeMember};
use super::node_config::NodeConfig;
use super::redis::{RedisConn, RedisTarget};
use super::service::HubNodeService;
use crate::Registry;
use crate::store::{RedisStore, RedisStoreSettings};

/// How long an endpoint index entry outlives a removal that was never written.
const ENDPOINT_TTL: Duration = Duration::from_secs(8 * 24 * 3600);

/// Runs a hub node until `shutdown` is cancelled, then drains.
pub async fn run(config: NodeConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let tls = config
        .grpc_tls()
        .map_err(|reason| anyhow::anyhow!("{reason}"))?;
    let listener = TcpListener::bind(config.grpc_listen)
        .await
        .with_context(|| format!("failed to bind {}", config.grpc_listen))?;
    let bound = listener
        .local_addr()
        .context("failed to read the bound address")?;
    let node_id = config
        .node_id
        .clone()
        .unwrap_or_else(|| format!("node-{}", &random_token()[..12]));
    let target = RedisTarget::parse(&config.redis_url)
        .map_err(|reason| anyhow::anyhow!("--redis-url: {reason}"))?;
    let conn = RedisConn::connect(&target)
        .await
        .context("failed to connect to Redis")?;
    let key = TopicKey::new(config.topic_key.as_bytes());
    let topics = config.topics.settings();
    let store = RedisStore::new(
        conn.clone(),
        RedisStoreSettings {
            node_id: node_id.clone(),
            lease_ms: config.lease_ms,
            stream_max_len: config.stream_max_len,
            accepted_capacity: topics.idempotency_capacity,
            endpoint_ttl_ms: u64::try_from(ENDPOINT_TTL.as_millis()).unwrap_or(u64::MAX),
            sharded_pubsub: target.is_cluster(),
            wait_replicas: config
                .redis_wait_replicas
                .unwrap_or(u32::from(matches!(target, RedisTarget::Sentinel { .. }))),
            wait_timeout_ms: config.redis_wait_ms,
        },
    )
    .with_failover_clock({
        let conn = conn.clone();
        std::sync::Arc::new(move || conn.last_moved())
    });
    let hub_tracker = TaskTracker::new();
    let hub_shutdown = CancellationToken::new();
    let registry = Registry::new(
        Arc::new(store),
        topics,
        key.clone(),
        hub_tracker.clone(),
        hub_shutdown.clone(),
    );
    let member = NodeMember {
        id: node_id.clone(),
        grpc_address: config
            .advertise_address
            .clone()
            .unwrap_or_else(|| bound.to_string()),
        ttl: Duration::from_millis(config.membership_ttl_ms),
    };
    let membership_shutdown = CancellationToken::new();
    let (gateways, membership_task) = membership::run(conn, member, membership_shutdown.clone());
    let confirm = Duration::from_millis(config.membership_ttl_ms.saturating_mul(3));
    tokio::spawn(drop_vanished_gateways(gateways, registry.clone(), confirm));

    announce(&bound, &node_id, tls.is_some());
    let service = HubNodeServer::new(HubNodeService::new(registry, key));
    let router = tonic::transport::Server::builder().add_service(service);
    let served = match &tls {
        Some(tls) => {
            let every = Duration::from_millis(config.tls_reload_check_ms);
            tokio::spawn(Arc::clone(tls.certificate()).watch(every, shutdown.clone()));
            let incoming = tls.incoming(listener, shutdown.clone());
            router
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                .await
        }
        None => {
            router
                .serve_with_incoming_shutdown(
                    TcpIncoming::from(listener),
                    shutdown.cancelled_owned(),
                )
                .await
        }
    };

    // Drain: stop the topics (each releases its lease), then leave the membership.
    hub_shutdown.cancel();
    hub_tracker.close();
    if tokio::time::timeout(config.shutdown_grace(), hub_tracker.wait())
        .await
        .is_err()
    {
        warn!("grace period ended before every topic released its lease");
    }
    membership_shutdown.cancel();
    let _ = membership_task.await;
    served.context("the gRPC server failed")?;
    info!("drained");
    Ok(())
}

/// Watches the live gateways; when one disappears, every topic drops its attachments.
///
/// Only trusted readings are compared: after this node's own heartbeats failed (Redis down,
/// a failover) the membership is read again only once it is steady, so a stale copy of it
/// (a promoted replica's) never detaches a live gateway's sockets, while a gateway that died
/// meanwhile is still missed from the next trusted reading.
async fn drop_vanished_gateways(
    mut live: watch::Receiver<Option<BTreeSet<String>>>,
    registry: Registry,
    confirm: Duration,
) {
    let mut known = live.borrow_and_update().clone();
    // After a stretch without trusted readings (this node's heartbeats failed: Redis down,
    // a failover), a missing gateway must stay missing for `confirm` before it counts as
    // gone: live gateways may take a moment longer to find the new primary than this node.
    let mut recovering_until: Option<Instant> = None;
    let mut missing: BTreeSet<String> = BTreeSet::new();
    loop {
        let wake = recovering_until.unwrap_or_else(|| Instant::now() + confirm);
        tokio::select! {
            changed = live.changed() => if changed.is_err() { return },
            () = tokio::time::sleep_until(wake), if recovering_until.is_some() => {}
        }
        let now = live.borrow_and_update().clone();
        let Some(after) = now else {
            recovering_until = Some(Instant::now() + confirm);
            continue;
        };
        if recovering_until.is_some_and(|until| Instant::now() >= until) {
            recovering_until = None;
        }
        if let Some(before) = &known {
            missing.extend(before.difference(&after).cloned());
        }
        missing.retain(|gateway| !after.contains(gateway));
        if recovering_until.is_none() && !missing.is_empty() {
            let gone = std::mem::take(&mut missing);
            info!(gateways = ?gone, "gateways left the cluster; their sockets are detached");
            registry.gateways_gone(gone).await;
        }
        if recovering_until.is_none() {
            known = Some(after);
        } else if let Some(before) = &mut known {
            // Keep every gateway ever trusted while recovering, so a missing one is judged
            // when recovery ends.
            before.extend(after);
        } else {
            known = Some(after);
        }
    }
}

/// Prints the machine-readable `listening` line on stdout (the same with or without TLS).
fn announce(bound: &std::net::SocketAddr, node_id: &str, mutual_tls: bool) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening grpc://{bound}");
    let _ = stdout.flush();
    info!(node = node_id, address = %bound, mutual_tls, "fhircast hub node listening");
    if !mutual_tls && !bound.ip().is_loopback() {
        warn!(
            address = %bound,
            "gRPC is plaintext and does not authenticate gateways (--grpc-insecure-allow): \
             anything that reaches this port can run topic commands"
        );
    }
}
