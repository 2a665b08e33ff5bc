//! `fhircast-hub-node` configuration: every flag also a `FHIRCAST_*` environment variable.
//! Checked before anything connects; a bad configuration exits with status 64.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use fhircast_proto::ids::MIN_TOPIC_KEY_LEN;

use crate::config::TopicArgs;
use crate::telemetry::LogFormat;

/// `fhircast-hub-node` configuration.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "fhircast-hub-node",
    version,
    about = "FHIRcast hub node: hosts topic actors for the gateways of a cluster"
)]
pub struct NodeConfig {
    /// Redis holding the topics and carrying the bus: `redis://user:password@host:port`
    /// (`rediss://` for TLS; credentials optional),
    /// `redis+sentinel://user:password@host:port,host:port/master-name`, or
    /// `redis+cluster://user:password@host:port,host:port`.
    #[arg(long, env = "FHIRCAST_REDIS_URL")]
    pub redis_url: String,

    /// Address the gRPC service listens on (port 0 picks a free port; the bound address
    /// is printed).
    #[arg(long, env = "FHIRCAST_GRPC_LISTEN", default_value = "127.0.0.1:50051")]
    pub grpc_listen: SocketAddr,

    /// Address gateways use to reach this node (host:port). Default: the bound address.
    #[arg(long, env = "FHIRCAST_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<String>,

    /// This node's id in the cluster: stable across restarts (in Kubernetes, the
    /// StatefulSet pod name). Default: a random id.
    #[arg(long, env = "FHIRCAST_NODE_ID")]
    pub node_id: Option<String>,

    /// The deployment's topic key: one secret shared by every gateway and hub node (at
    /// least 32 characters). It turns topics into the refs that key Redis and placement.
    #[arg(long, env = "FHIRCAST_TOPIC_KEY", hide_env_values = true)]
    pub topic_key: String,

    /// How long a topic's ownership lease lasts without renewal; ownership of a dead
    /// node's topics returns after at most this long.
    #[arg(long, env = "FHIRCAST_LEASE_MS", default_value_t = 1_000)]
    pub lease_ms: u64,

    /// How long a membership heartbeat keeps this node in the live set.
    #[arg(long, env = "FHIRCAST_MEMBERSHIP_TTL_MS", default_value_t = 1_500)]
    pub membership_ttl_ms: u64,

    /// Replicas that must hold each change before it is acknowledged (Redis `WAIT`), so a
    /// failover cannot lose an acknowledged change. Default: 1 with a `redis+sentinel://`
    /// URL, 0 otherwise.
    #[arg(long, env = "FHIRCAST_REDIS_WAIT_REPLICAS")]
    pub redis_wait_replicas: Option<u32>,

    /// How long a change waits for those replicas before it fails (503, not acknowledged).
    #[arg(long, env = "FHIRCAST_REDIS_WAIT_MS", default_value_t = 1_000)]
    pub redis_wait_ms: u64,

    /// Envelopes kept per topic stream for gateways' gap recovery.
    #[arg(long, env = "FHIRCAST_STREAM_MAX_LEN", default_value_t = 1_024)]
    pub stream_max_len: usize,

    /// Grace period for draining on SIGTERM.
    #[arg(long, env = "FHIRCAST_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// Log format.
    #[arg(long, env = "FHIRCAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// How topics behave.
    #[command(flatten)]
    pub topics: TopicArgs,
}

impl NodeConfig {
    /// Checks the combination of flags; called before anything connects.
    pub fn validate(&self) -> Result<(), String> {
        if self.topic_key.len() < MIN_TOPIC_KEY_LEN {
            return Err(format!(
                "--topic-key must be at least {MIN_TOPIC_KEY_LEN} characters (a shared secret, \
                 e.g. `openssl rand -base64 32`)"
            ));
        }
        super::redis::RedisTarget::parse(&self.redis_url)
            .map_err(|reason| format!("--redis-url: {reason}"))?;
        if self.lease_ms < 300 || self.membership_ttl_ms < 300 {
            return Err("--lease-ms and --membership-ttl-ms must be at least 300".into());
        }
        if let Some(flag) = self.topics.zero_flag() {
            return Err(format!("{flag} must be greater than 0"));
        }
        Ok(())
    }

    /// Returns the drain grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}
