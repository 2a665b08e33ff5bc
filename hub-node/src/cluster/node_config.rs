//! `fhircast-hub-node` configuration: every flag also a `FHIRCAST_*` environment variable.
//! Checked before anything connects; a bad configuration exits with status 64.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use fhircast_proto::ids::MIN_TOPIC_KEY_LEN;

use super::grpc_tls::{GrpcServerTls, dialed_host};
use crate::config::TopicArgs;
use crate::telemetry::LogFormat;
use crate::tls::{TlsFiles, all_or_none};

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

    /// PEM certificate chain (leaf first) the gRPC listener presents to gateways; with
    /// --grpc-tls-key and --grpc-client-ca (mutual TLS). It must name the host gateways dial
    /// (--advertise-address, else the listen address) as a subjectAltName. The files are
    /// watched and a rotated pair serves new connections without a restart.
    #[arg(long, env = "FHIRCAST_GRPC_TLS_CERT")]
    pub grpc_tls_cert: Option<PathBuf>,

    /// PEM private key of --grpc-tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "FHIRCAST_GRPC_TLS_KEY")]
    pub grpc_tls_key: Option<PathBuf>,

    /// PEM CA certificate(s) that sign the gateways' client certificates: only a gateway
    /// presenting one is served.
    #[arg(long, env = "FHIRCAST_GRPC_CLIENT_CA")]
    pub grpc_client_ca: Option<PathBuf>,

    /// Serve gRPC in plaintext, without authenticating gateways, on a non-loopback address
    /// (only where the network itself protects the port, e.g. a mesh adding mutual TLS).
    /// Without it or the --grpc-tls-* flags, only loopback binds are accepted.
    #[arg(long, env = "FHIRCAST_GRPC_INSECURE_ALLOW")]
    pub grpc_insecure_allow: bool,

    /// How often the --grpc-tls-cert and --grpc-tls-key files are checked for a rotation.
    #[arg(long, env = "FHIRCAST_TLS_RELOAD_CHECK_MS", default_value_t = 10_000)]
    pub tls_reload_check_ms: u64,

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
        if self.tls_reload_check_ms == 0 {
            return Err("--tls-reload-check-ms must be greater than 0".into());
        }
        if self.grpc_listen.ip().is_unspecified() && self.advertise_address.is_none() {
            return Err(format!(
                "--grpc-listen {} listens on every interface: pass --advertise-address with \
                 the host:port gateways dial",
                self.grpc_listen
            ));
        }
        self.grpc_tls().map(drop)
    }

    /// The gRPC listener's mutual TLS, `None` for plaintext. Refuses a partial
    /// configuration, a certificate that does not name the host gateways dial, and a
    /// plaintext listener off loopback without --grpc-insecure-allow.
    pub fn grpc_tls(&self) -> Result<Option<GrpcServerTls>, String> {
        let given = all_or_none(&[
            ("--grpc-tls-cert", self.grpc_tls_cert.is_some()),
            ("--grpc-tls-key", self.grpc_tls_key.is_some()),
            ("--grpc-client-ca", self.grpc_client_ca.is_some()),
        ])
        .map_err(|reason| format!("mutual TLS on gRPC: {reason}"))?;
        let (true, Some(cert), Some(key), Some(client_ca)) = (
            given,
            &self.grpc_tls_cert,
            &self.grpc_tls_key,
            &self.grpc_client_ca,
        ) else {
            if !self.grpc_insecure_allow && !self.grpc_listen.ip().is_loopback() {
                return Err(format!(
                    "refusing plaintext gRPC on {}: any process that reaches the port could \
                     run topic commands without a token; pass --grpc-tls-cert, \
                     --grpc-tls-key and --grpc-client-ca (mutual TLS with the gateways), bind \
                     a loopback address, or pass --grpc-insecure-allow where the network \
                     itself protects the port",
                    self.grpc_listen
                ));
            }
            return Ok(None);
        };
        if self.grpc_insecure_allow {
            return Err(
                "--grpc-insecure-allow and the --grpc-tls-* flags exclude each other".into(),
            );
        }
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        };
        let tls = GrpcServerTls::load(files, client_ca)
            .map_err(|err| format!("--grpc-tls-cert, --grpc-tls-key, --grpc-client-ca: {err}"))?;
        let dialed = self
            .advertise_address
            .clone()
            .unwrap_or_else(|| self.grpc_listen.to_string());
        tls.check_names(dialed_host(&dialed))
            .map_err(|reason| format!("--grpc-tls-cert: {reason}"))?;
        Ok(Some(tls))
    }

    /// Returns the drain grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}
