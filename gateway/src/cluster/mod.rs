//! The gateway in cluster mode (DESIGN §2, §6): topics live on hub nodes reached over gRPC
//! ([`hub_client`], over mutual TLS when configured: [`grpc_tls`]), notifications arrive
//! over Redis pub/sub ([`bus`]), and the gateway heartbeats into the membership and reads
//! the live nodes from it ([`membership`]). The bus link is pinged ([`bus_health`]); while
//! it stalls, sockets are revalidated with their topics' owners ([`revalidation`]).

pub mod bus;
pub mod bus_health;
pub mod grpc_tls;
pub mod hub_client;
pub mod membership;
pub mod revalidation;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hub_node::cluster::redis::{RedisConn, RedisTarget};
use tokio_util::sync::CancellationToken;

use fhircast_proto::TopicKey;
use fhircast_proto::bus::Bus;
use fhircast_proto::ids::random_token;

use crate::config::Config;
use crate::hub_client::HubClient;

/// What a gateway in cluster mode talks to.
#[derive(Debug)]
pub struct ClusterHub {
    /// The owners of topics, over gRPC.
    pub hub: Arc<dyn HubClient>,
    /// Notifications, over Redis pub/sub.
    pub bus: Arc<dyn Bus>,
    /// Whether this gateway is in the membership (see [`membership::Membership`]).
    pub in_standing: tokio::sync::watch::Receiver<bool>,
    /// Whether the bus link answers its PINGs (see [`bus_health`]).
    pub bus_healthy: tokio::sync::watch::Receiver<bool>,
}

/// Connects to Redis, joins the membership (waiting for its first read) and prepares the
/// gRPC client; everything stops when `shutdown` is cancelled.
pub async fn start(
    config: &Config,
    url: &str,
    key: TopicKey,
    shutdown: CancellationToken,
) -> anyhow::Result<ClusterHub> {
    let target =
        RedisTarget::parse(url).map_err(|reason| anyhow::anyhow!("--redis-url: {reason}"))?;
    let redis = RedisConn::connect(&target)
        .await
        .context("failed to connect to Redis")?;
    let bus = bus::RedisBus::connect(&target, redis.clone(), shutdown.clone())
        .await
        .context("failed to subscribe to Redis")?;
    let bus_healthy = bus_health::watch(bus.clone(), shutdown.clone());
    let id = config
        .gateway_id
        .clone()
        .unwrap_or_else(|| format!("gateway-{}", &random_token()[..12]));
    let tls = grpc_tls::GrpcClientTls::from_config(config)?;
    if let Some(tls) = &tls {
        let every = Duration::from_millis(config.tls_reload_check_ms);
        tokio::spawn(Arc::clone(tls.certificate()).watch(every, shutdown.clone()));
    }
    let ttl = Duration::from_millis(config.membership_ttl_ms);
    let membership = membership::join(redis.clone(), id.clone(), ttl, shutdown)
        .await
        .context("failed to join the cluster membership")?;
    let hub = hub_client::GrpcHubClient::new(
        membership.nodes,
        redis,
        key,
        hub_client::CallBudgets::default(),
        id,
    )
    .with_redis_health(membership.redis_up)
    .with_tls(tls);
    Ok(ClusterHub {
        hub: Arc::new(hub),
        bus: Arc::new(bus),
        in_standing: membership.in_standing,
        bus_healthy,
    })
}
