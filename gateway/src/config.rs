//! The gateway's configuration: every flag also readable from a `FHIRCAST_*` environment
//! variable (the Helm chart sets those). Parsed and checked before anything binds; a bad
//! configuration exits with status 64 (EX_USAGE).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use fhircast_proto::ids::MIN_TOPIC_KEY_LEN;
use hub_node::config::TopicArgs;
use hub_node::telemetry::LogFormat;

use crate::auth::TokenTypePolicy;
use crate::http::{BindingPolicy, WeakTopics};
use crate::tls::TlsFiles;

mod input_limits;

pub use input_limits::InputLimitArgs;

/// Shortest non-zero --stall-timeout-ms: half of it is what a probed subscriber has to
/// answer a ping, which must cover a round trip and a busy client.
pub const MIN_STALL_TIMEOUT_MS: u64 = 200;

/// `fhircast-gateway` configuration.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "fhircast-gateway",
    version,
    about = "FHIRcast STU3 hub gateway"
)]
pub struct Config {
    /// Run the whole hub in this process with in-memory state (the default without
    /// --redis-url; accepted for explicitness).
    #[arg(long, env = "FHIRCAST_EMBEDDED")]
    pub embedded: bool,

    /// Join a cluster: Redis holding the topics and carrying notifications:
    /// `redis://user:password@host:port` (`rediss://` for TLS; credentials optional),
    /// `redis+sentinel://user:password@host:port,host:port/master-name`, or
    /// `redis+cluster://user:password@host:port,host:port`. Topics then live on the hub nodes
    /// registered there.
    #[arg(long, env = "FHIRCAST_REDIS_URL")]
    pub redis_url: Option<String>,

    /// The deployment's topic key, shared by every gateway and hub node of a cluster (at
    /// least 32 characters). Default in the embedded hub: a random key per start.
    #[arg(long, env = "FHIRCAST_TOPIC_KEY", hide_env_values = true)]
    pub topic_key: Option<String>,

    /// This gateway's id in the cluster membership. Default: a random id.
    #[arg(long, env = "FHIRCAST_GATEWAY_ID")]
    pub gateway_id: Option<String>,

    /// In a cluster: PEM CA certificate(s) that sign the hub nodes' gRPC certificates; with
    /// --grpc-client-cert and --grpc-client-key, nodes are reached over mutual TLS only, each
    /// node's certificate checked against the host it advertises.
    #[arg(long, env = "FHIRCAST_GRPC_TLS_CA")]
    pub grpc_tls_ca: Option<PathBuf>,

    /// PEM certificate chain (leaf first) this gateway presents to hub nodes (signed by
    /// their --grpc-client-ca). Watched like --tls-cert and reloaded when rotated.
    #[arg(long, env = "FHIRCAST_GRPC_CLIENT_CERT")]
    pub grpc_client_cert: Option<PathBuf>,

    /// PEM private key of --grpc-client-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "FHIRCAST_GRPC_CLIENT_KEY")]
    pub grpc_client_key: Option<PathBuf>,

    /// How long a membership heartbeat keeps this gateway in the live set.
    #[arg(long, env = "FHIRCAST_MEMBERSHIP_TTL_MS", default_value_t = 1_500)]
    pub membership_ttl_ms: u64,

    /// In a cluster: while this gateway's Redis pub/sub link does not answer its PINGs, how
    /// often it asks the topics' owners which of its sockets were unsubscribed meanwhile,
    /// and closes those (at least 100).
    #[arg(long, env = "FHIRCAST_REVALIDATE_INTERVAL_MS", default_value_t = 2_000)]
    pub revalidate_interval_ms: u64,

    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "FHIRCAST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Public base URL of this hub, as apps reach it (e.g. https://hub.example.org); the
    /// base of `hub.url` and of returned WebSocket endpoints. Default: http://<bound address>.
    #[arg(long, env = "FHIRCAST_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Addresses (or CIDR blocks, comma-separated) of the proxies in front of this gateway
    /// whose `X-Forwarded-For` names the client address logged for a request. From any
    /// other peer the header is ignored. Nothing is authorised by address.
    #[arg(long, env = "FHIRCAST_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<crate::http::IpBlock>,

    /// PEM certificate chain (leaf first) for HTTPS and WSS; with --tls-key. The files are
    /// watched and a rotated pair is used for new connections without a restart.
    #[arg(long, env = "FHIRCAST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "FHIRCAST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// How often the --tls-cert and --tls-key (and --grpc-client-cert and --grpc-client-key)
    /// files are checked for a rotation.
    #[arg(long, env = "FHIRCAST_TLS_RELOAD_CHECK_MS", default_value_t = 10_000)]
    pub tls_reload_check_ms: u64,

    /// This gateway sits behind a proxy that terminates TLS: allow its plaintext listener on
    /// a non-loopback address (then --public-url must be the https:// URL apps use).
    /// Without it or --tls-cert, only loopback binds are accepted (FHIRcast requires HTTPS
    /// and WSS).
    #[arg(long, env = "FHIRCAST_BEHIND_TLS_PROXY")]
    pub behind_tls_proxy: bool,

    /// Path(s) of the hub under the public URL, comma-separated; every one serves the same
    /// hub (e.g. /api/hub,/fhircast/STU3). The first is the one `hub.url` names.
    #[arg(
        long,
        env = "FHIRCAST_BASE_PATH",
        value_delimiter = ',',
        default_value = "/api/hub"
    )]
    pub base_path: Vec<String>,

    /// Serve a development token issuer at /dev-issuer and trust it. Refuses non-loopback
    /// binds. Never use in production.
    #[arg(long, env = "FHIRCAST_DEV_ISSUER")]
    pub dev_issuer: bool,

    /// With --dev-issuer: sign with this PEM PKCS#8 EC P-256 private key file instead of a
    /// key generated per start, so every gateway of a dev cluster given the same file
    /// publishes the same key (same `kid`). Dev-only.
    #[arg(long, env = "FHIRCAST_DEV_ISSUER_KEY")]
    pub dev_issuer_key: Option<PathBuf>,

    /// With --dev-issuer: the `iss` of minted tokens and the base of the dev issuer's
    /// advertised URLs, instead of <public url>/dev-issuer. Give every gateway of a dev
    /// cluster the same value (with the same --dev-issuer-key and --audience) so a token
    /// from one is accepted by all. Dev-only.
    #[arg(long, env = "FHIRCAST_DEV_ISSUER_URL")]
    pub dev_issuer_url: Option<String>,

    /// Issuer (`iss`) of accepted access tokens, compared byte for byte. For several
    /// issuers, use --issuers-file instead.
    #[arg(long, env = "FHIRCAST_ISSUER")]
    pub issuer: Option<String>,

    /// URL of the issuer's JWKS (https://; http:// only on loopback). Default: the
    /// `jwks_uri` of the issuer's `.well-known/smart-configuration`, else of its
    /// `.well-known/openid-configuration`, read at start-up.
    #[arg(long, env = "FHIRCAST_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// Audience (`aud`) accepted tokens must carry. Default with --dev-issuer: hub.url. With
    /// --issuers-file: the audience of issuers that name none.
    #[arg(long, env = "FHIRCAST_AUDIENCE")]
    pub audience: Option<String>,

    /// Accepted JWS algorithms of --issuer (RSA: RS*, PS*; EC: ES*; EdDSA), each checked
    /// only against keys of its own kind; HMAC is refused. Default:
    /// RS256,RS384,RS512,ES256,ES384,PS256,PS384,PS512.
    #[arg(long, env = "FHIRCAST_ALGORITHMS", value_delimiter = ',')]
    pub algorithms: Option<Vec<String>>,

    /// Minimum seconds between two fetches of --issuer's JWKS caused by tokens naming a key
    /// id it does not hold (TOK-06); tokens in between are refused at once. Rotated keys are
    /// also picked up by a background refetch every 10 minutes. Default: 60.
    #[arg(long, env = "FHIRCAST_JWKS_REFRESH_MIN_SECONDS")]
    pub jwks_refresh_min_seconds: Option<u64>,

    /// Which JOSE `typ` --issuer's tokens may carry (TOK-13): `lenient` (absent, JWT, JOSE or
    /// at+jwt) or `strict` (at+jwt only, RFC 9068, and no `nonce` claim, the id_token
    /// shape). Default: lenient, since many EHR servers do not emit at+jwt.
    #[arg(long, env = "FHIRCAST_TOKEN_TYPE_POLICY")]
    pub token_type_policy: Option<TokenTypePolicy>,

    /// Token claim that names the topics a token may use. With --issuers-file: the topic
    /// claim of issuers that name none.
    #[arg(long, env = "FHIRCAST_TOPIC_CLAIM", default_value = "hub.topic")]
    pub topic_claim: String,

    /// Trust the issuers listed in this JSON file, each with its own JWKS, audience,
    /// algorithms, topic claim, leeway, JWKS refresh interval, token type policy and
    /// introspection (docs/issuers.md). Excludes --issuer, --jwks-url, --algorithms,
    /// --jwks-refresh-min-seconds, --token-type-policy and the --introspection-* flags.
    #[arg(long, env = "FHIRCAST_ISSUERS_FILE")]
    pub issuers_file: Option<PathBuf>,

    /// Accept opaque (non-JWT) access tokens of --issuer, checked at its RFC 7662
    /// introspection endpoint with this client id (and --introspection-client-secret-file).
    #[arg(long, env = "FHIRCAST_INTROSPECTION_CLIENT_ID")]
    pub introspection_client_id: Option<String>,

    /// File holding the hub's client secret for introspection (trailing line break ignored).
    #[arg(long, env = "FHIRCAST_INTROSPECTION_CLIENT_SECRET_FILE")]
    pub introspection_client_secret_file: Option<PathBuf>,

    /// The introspection endpoint (https://; http:// only on loopback). Default: the
    /// `introspection_endpoint` of the issuer's metadata, read at start-up.
    #[arg(long, env = "FHIRCAST_INTROSPECTION_URL")]
    pub introspection_url: Option<String>,

    /// How long an introspection answer is reused, at most 60 (a revoked token works at
    /// most this long); 0: ask every time. Default: 30.
    #[arg(long, env = "FHIRCAST_INTROSPECTION_CACHE_SECONDS")]
    pub introspection_cache_seconds: Option<u64>,

    /// How tokens are bound to topics: `claim` (the token's topic claim names the topic),
    /// `owner` (the topic was minted through the admin API for the token's `sub`) or `none`
    /// (any valid token may use any topic; start-up warns).
    #[arg(long, env = "FHIRCAST_TOPIC_BINDING", value_enum, default_value_t = BindingPolicy::Claim)]
    pub topic_binding: BindingPolicy,

    /// What to do with a guessable topic supplied from outside (under `claim` or `none`):
    /// `refuse` (400) one estimated below 122 random bits, such as `patient-123` or a
    /// time-based UUID, or `allow` it (start-up warns).
    #[arg(long, env = "FHIRCAST_WEAK_TOPICS", value_enum, default_value_t = WeakTopics::Refuse)]
    pub weak_topics: WeakTopics,

    /// API requests one app and user (the token's `client_id` and `sub`) may make per
    /// second on this gateway, sustained (0: unlimited). Beyond it: 429 with Retry-After.
    #[arg(long, env = "FHIRCAST_RATE_LIMIT_PER_SECOND", default_value_t = 100)]
    pub rate_limit_per_second: u32,

    /// Requests one app and user may make at once beyond the sustained rate.
    #[arg(long, env = "FHIRCAST_RATE_LIMIT_BURST", default_value_t = 200)]
    pub rate_limit_burst: u32,

    /// Refusals for topics a token may not use that one app and user may collect per
    /// minute before all its requests get 429 for the rest of the minute (0: unlimited).
    #[arg(long, env = "FHIRCAST_TOPIC_REFUSALS_PER_MINUTE", default_value_t = 10)]
    pub topic_refusals_per_minute: u32,

    /// Serve the admin API (mint, list and revoke topics) on this address. It is never
    /// served on the public listener. Off when not given.
    #[arg(long, env = "FHIRCAST_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// File holding the admin API's bearer secret (at least 32 characters; surrounding
    /// whitespace is ignored). Required with --admin-listen.
    #[arg(long, env = "FHIRCAST_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// How long a subscriber has to acknowledge a notification.
    #[arg(long, env = "FHIRCAST_ACK_TIMEOUT_MS", default_value_t = 10_000)]
    pub ack_timeout_ms: u64,

    /// Interval of WebSocket pings; a client silent for two intervals is unresponsive.
    #[arg(long, env = "FHIRCAST_PING_INTERVAL_MS", default_value_t = 30_000)]
    pub ping_interval_ms: u64,

    /// How long a subscriber may stay silent (no ack, no pong, no frame at all) after a
    /// notification was written to it before its socket is closed as stalled (1008); it is
    /// pinged once halfway, so a client that reads without acknowledging stays. Below
    /// --ack-timeout-ms to act before the ack timeout does. 0 disables the cut.
    #[arg(long, env = "FHIRCAST_STALL_TIMEOUT_MS", default_value_t = 8_000)]
    pub stall_timeout_ms: u64,

    /// Lease granted when a subscription asks for none.
    #[arg(long, env = "FHIRCAST_DEFAULT_LEASE_SECONDS", default_value_t = 3600)]
    pub default_lease_seconds: u64,

    /// Longest lease granted.
    #[arg(long, env = "FHIRCAST_MAX_LEASE_SECONDS", default_value_t = 86_400)]
    pub max_lease_seconds: u64,

    /// Largest accepted HTTP request body.
    #[arg(long, env = "FHIRCAST_MAX_BODY_BYTES", default_value_t = 262_144)]
    pub max_body_bytes: usize,

    /// Longest a client may take to send a request's headers (the connection is closed).
    #[arg(
        long,
        env = "FHIRCAST_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub header_read_timeout_ms: u64,

    /// Longest a client may take to send a request's body (408).
    #[arg(long, env = "FHIRCAST_BODY_READ_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_read_timeout_ms: u64,

    /// Most connections (HTTP and WebSocket together) open at once; beyond it new
    /// connections get 503. Keep it below the process's open-files limit.
    #[arg(long, env = "FHIRCAST_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Most bytes of notifications a topic keeps as history (for a reconnecting
    /// subscriber and for gap recovery); the count is capped at 1024 as well.
    #[arg(
        long,
        env = "FHIRCAST_TOPIC_HISTORY_BYTES",
        default_value_t = 4_194_304
    )]
    pub topic_history_bytes: usize,

    /// Most bytes of notifications all topics together keep as history (embedded hub);
    /// past it the oldest go first, whichever topic they belong to.
    #[arg(
        long,
        env = "FHIRCAST_HISTORY_TOTAL_BYTES",
        default_value_t = 268_435_456
    )]
    pub history_total_bytes: usize,

    /// Largest accepted WebSocket message from a subscriber.
    #[arg(long, env = "FHIRCAST_MAX_FRAME_BYTES", default_value_t = 65_536)]
    pub max_frame_bytes: usize,

    /// Notifications a socket may have queued before it is closed as too slow.
    #[arg(long, env = "FHIRCAST_OUTBOX_CAPACITY", default_value_t = 256)]
    pub outbox_capacity: usize,

    /// Origins allowed by CORS (`*` for any; tokens, not origins, grant access).
    #[arg(
        long,
        env = "FHIRCAST_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "*"
    )]
    pub cors_origins: Vec<String>,

    /// Grace period for draining on SIGTERM.
    #[arg(long, env = "FHIRCAST_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// How deep, how many and how long a request's parts may be.
    #[command(flatten)]
    pub input_limits: InputLimitArgs,

    /// How topics behave (applies to the embedded hub; in a cluster, hub nodes take these).
    #[command(flatten)]
    pub topics: TopicArgs,

    /// Log format.
    #[arg(long, env = "FHIRCAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Why a configuration is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// The certificate and key files, when the gateway serves TLS itself.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }

    /// Whether apps reach this gateway over TLS (its own, or a proxy's in front of it).
    pub fn serves_tls(&self) -> bool {
        self.tls_cert.is_some() || self.behind_tls_proxy
    }

    /// HTTPS and WSS: a plaintext listener only on loopback, or behind a declared
    /// TLS-terminating proxy whose https:// URL apps use; a TLS pair that loads.
    fn validate_transport(&self) -> Result<(), ConfigError> {
        let https_public_url = self
            .public_url
            .as_ref()
            .is_some_and(|url| url.starts_with("https://"));
        if let Some(files) = self.tls_files() {
            if self.dev_issuer {
                return Err(ConfigError(
                    "--dev-issuer does not combine with --tls-cert: the gateway reads the dev \
                     issuer's keys over plain HTTP on loopback; use a real issuer (or the test \
                     issuer of the conformance suite, `fhircast-conformance --embedded --tls`)"
                        .into(),
                ));
            }
            if self.behind_tls_proxy {
                return Err(ConfigError(
                    "--tls-cert and --behind-tls-proxy exclude each other: the gateway either \
                     terminates TLS itself or sits behind a proxy that does"
                        .into(),
                ));
            }
            if self.public_url.is_some() && !https_public_url {
                return Err(ConfigError(
                    "--public-url must be an https:// URL when the gateway serves TLS".into(),
                ));
            }
            files
                .load()
                .map_err(|err| ConfigError(format!("--tls-cert/--tls-key: {err}")))?;
        } else if self.behind_tls_proxy {
            if !https_public_url {
                return Err(ConfigError(
                    "--behind-tls-proxy needs --public-url with the https:// URL apps reach the \
                     proxy at (their WebSocket endpoints are wss:// under it)"
                        .into(),
                ));
            }
        } else if !crate::dev_issuer::is_loopback_bind(&self.listen) {
            return Err(ConfigError(format!(
                "refusing a plaintext listener on {}: FHIRcast requires HTTPS and WSS; pass \
                 --tls-cert and --tls-key, bind 127.0.0.1, or pass --behind-tls-proxy (with an \
                 https:// --public-url) when a proxy terminates TLS in front of this gateway",
                self.listen
            )));
        }
        Ok(())
    }

    /// The admin API: its own credential, its own address, and plaintext only on loopback
    /// (its answers carry topics).
    fn validate_admin(&self) -> Result<(), ConfigError> {
        let Some(address) = self.admin_listen else {
            if self.admin_token_file.is_some() {
                return Err(ConfigError(
                    "--admin-token-file applies only with --admin-listen".into(),
                ));
            }
            return Ok(());
        };
        let Some(path) = &self.admin_token_file else {
            return Err(ConfigError(
                "--admin-listen needs --admin-token-file: the admin API takes its own secret, \
                 never an app's token"
                    .into(),
            ));
        };
        crate::admin::AdminSecret::from_file(path)
            .map_err(|reason| ConfigError(format!("--admin-token-file: {reason}")))?;
        if address == self.listen && address.port() != 0 {
            return Err(ConfigError(
                "--admin-listen must differ from --listen: the admin API is never served on \
                 the public listener"
                    .into(),
            ));
        }
        if self.tls_cert.is_none() && !crate::dev_issuer::is_loopback_bind(&address) {
            return Err(ConfigError(format!(
                "refusing a plaintext admin listener on {address}: its answers carry topics; \
                 bind 127.0.0.1 or pass --tls-cert and --tls-key"
            )));
        }
        Ok(())
    }

    /// Checks the combination of flags; called before anything binds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dev_issuer && !crate::dev_issuer::is_loopback_bind(&self.listen) {
            return Err(ConfigError(format!(
                "--dev-issuer refuses to listen on {}: the dev issuer is for loopback \
                 (127.0.0.1 or ::1) only",
                self.listen
            )));
        }
        if !self.dev_issuer && (self.dev_issuer_key.is_some() || self.dev_issuer_url.is_some()) {
            return Err(ConfigError(
                "--dev-issuer-key and --dev-issuer-url apply only with --dev-issuer".into(),
            ));
        }
        if let Some(url) = &self.dev_issuer_url {
            crate::dev_issuer::check_issuer_url(url)
                .map_err(|err| ConfigError(format!("--dev-issuer-url: {err}")))?;
        }
        if let Some(path) = &self.dev_issuer_key {
            crate::dev_issuer::SigningKey::from_pem_file(path)
                .map_err(|err| ConfigError(format!("--dev-issuer-key: {err}")))?;
        }
        self.validate_transport()?;
        crate::issuers::check(self)?;
        self.validate_admin()?;
        if self.embedded && self.redis_url.is_some() {
            return Err(ConfigError(
                "--embedded and --redis-url exclude each other: a gateway either hosts the \
                 topics itself or joins a cluster"
                    .into(),
            ));
        }
        if let Some(url) = &self.redis_url {
            hub_node::cluster::redis::RedisTarget::parse(url)
                .map_err(|reason| ConfigError(format!("--redis-url: {reason}")))?;
            if self.topic_key.is_none() {
                return Err(ConfigError(
                    "--topic-key (FHIRCAST_TOPIC_KEY) is required with --redis-url: every \
                     gateway and hub node of a cluster shares it"
                        .into(),
                ));
            }
            if self.membership_ttl_ms < 300 {
                return Err(ConfigError(
                    "--membership-ttl-ms must be at least 300".into(),
                ));
            }
            if self.revalidate_interval_ms < 100 {
                return Err(ConfigError(
                    "--revalidate-interval-ms must be at least 100".into(),
                ));
            }
        }
        crate::cluster::grpc_tls::GrpcClientTls::from_config(self)?;
        if self
            .topic_key
            .as_ref()
            .is_some_and(|key| key.len() < MIN_TOPIC_KEY_LEN)
        {
            return Err(ConfigError(format!(
                "--topic-key must be at least {} characters",
                MIN_TOPIC_KEY_LEN
            )));
        }
        if self.base_path.is_empty() {
            return Err(ConfigError("--base-path needs at least one path".into()));
        }
        for path in &self.base_path {
            let reserved = path.starts_with("/ws/")
                || path == "/ws"
                || path == "/healthz"
                || path == "/readyz"
                || path.starts_with("/dev-issuer");
            if !path.starts_with('/')
                || path.ends_with('/') && path.len() > 1
                || path.contains("//")
                || path.contains('{')
                || path.contains('}')
                || reserved
            {
                return Err(ConfigError(format!(
                    "--base-path {path:?} must start with / and not end with / (e.g. \
                     /api/hub), without braces, and not be /ws, /healthz, /readyz or \
                     /dev-issuer"
                )));
            }
        }
        let mut distinct = self.normalized_base_paths();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != self.base_path.len() {
            return Err(ConfigError("--base-path lists the same path twice".into()));
        }
        let valid_public_url = |url: &String| {
            (url.starts_with("http://") || url.starts_with("https://")) && !url.ends_with('/')
        };
        if !self.public_url.as_ref().is_none_or(valid_public_url) {
            return Err(ConfigError(
                "--public-url must be an http:// or https:// URL without a trailing /".into(),
            ));
        }
        let positive = [
            ("--ack-timeout-ms", self.ack_timeout_ms),
            ("--ping-interval-ms", self.ping_interval_ms),
            ("--default-lease-seconds", self.default_lease_seconds),
            ("--max-lease-seconds", self.max_lease_seconds),
            ("--header-read-timeout-ms", self.header_read_timeout_ms),
            ("--body-read-timeout-ms", self.body_read_timeout_ms),
            ("--max-connections", self.max_connections as u64),
            ("--tls-reload-check-ms", self.tls_reload_check_ms),
            ("--topic-history-bytes", self.topic_history_bytes as u64),
            ("--history-total-bytes", self.history_total_bytes as u64),
        ];
        self.input_limits
            .limits()
            .map_err(|err| ConfigError(format!("--{err}")))?;
        if let Some(flag) = self.topics.zero_flag() {
            return Err(ConfigError(format!("{flag} must be greater than 0")));
        }
        for (flag, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{flag} must be greater than 0")));
            }
        }
        if self.stall_timeout_ms != 0 && self.stall_timeout_ms < MIN_STALL_TIMEOUT_MS {
            return Err(ConfigError(format!(
                "--stall-timeout-ms must be 0 (off) or at least {MIN_STALL_TIMEOUT_MS}: the \
                 subscriber gets half of it to answer a ping"
            )));
        }
        if self.default_lease_seconds > self.max_lease_seconds {
            return Err(ConfigError(
                "--default-lease-seconds must not exceed --max-lease-seconds".into(),
            ));
        }
        Ok(())
    }

    /// Returns the base paths, `""` for the root; the first is the one `hub.url` names.
    pub fn normalized_base_paths(&self) -> Vec<&str> {
        self.base_path
            .iter()
            .map(|path| if path == "/" { "" } else { path.as_str() })
            .collect()
    }

    /// Returns the base path `hub.url` names (the first), `""` for the root.
    pub fn normalized_base_path(&self) -> &str {
        self.normalized_base_paths()
            .first()
            .copied()
            .unwrap_or_default()
    }

    /// Returns the drain grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(args: &[&str]) -> Result<(), ConfigError> {
        let mut line = vec!["fhircast-gateway", "--dev-issuer"];
        line.extend_from_slice(args);
        Config::try_parse_from(line)
            .map_err(|err| ConfigError(err.to_string()))?
            .validate()
    }

    #[test]
    fn the_stall_timeout_is_off_or_long_enough_to_answer_a_ping() {
        assert!(validate(&[]).is_ok(), "the default");
        assert!(validate(&["--stall-timeout-ms", "0"]).is_ok(), "off");
        assert!(validate(&["--stall-timeout-ms", "200"]).is_ok());
        let refused = validate(&["--stall-timeout-ms", "199"]);
        assert!(
            refused
                .as_ref()
                .is_err_and(|err| err.0.contains("--stall-timeout-ms")),
            "{refused:?}"
        );
    }
}
