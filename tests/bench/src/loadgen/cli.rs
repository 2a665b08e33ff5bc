//! The command line of `fhircast-loadgen`: the common options (where the hub is, how to get
//! tokens, what to watch, where results go) and one subcommand per scenario. The contract
//! with the `make bench` orchestrator is these names and defaults; keep them stable.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for any FHIRcast hub (STU3 over WebSockets), or the bare broadcaster.
#[derive(Debug, Parser)]
#[command(name = "fhircast-loadgen", version)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// What kind of server the hub URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A FHIRcast hub: form subscribe, endpoint, confirmation, Bearer tokens.
    Fhircast,
    /// The bare broadcaster: `GET {hub}/ws/{topic}`, `POST {hub}/publish/{topic}`.
    Bare,
}

/// Where tokens come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TokenSource {
    /// The hub's dev issuer (`POST {origin}/dev-issuer/token`): one per topic and subject.
    Dev,
    /// One token for everything (`--token` or `--token-file`).
    Static,
    /// An OAuth client-credentials grant at `--token-url`.
    ClientCredentials,
    /// No Authorization header.
    None,
}

/// Options every scenario shares.
#[derive(Debug, Args)]
pub struct Common {
    /// The hub URL; with `--kind bare`, the broadcaster's base URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080/api/hub")]
    pub hub_url: String,
    /// bare: the bare broadcaster.
    #[arg(long, global = true, value_enum, default_value_t = Kind::Fhircast)]
    pub kind: Kind,
    /// Where events are POSTed: `{hub}` is the hub URL, `{topic}` the topic (default
    /// `{hub}/{topic}`; `{hub}/publish/{topic}` with `--kind bare`).
    #[arg(long, global = true)]
    pub publish_path: Option<String>,
    /// Where tokens come from (default dev; none with `--kind bare`).
    #[arg(long, global = true, value_enum)]
    pub token_source: Option<TokenSource>,
    /// A static token.
    #[arg(long, global = true, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding a static token.
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    /// Client-credentials token endpoint.
    #[arg(long, global = true)]
    pub token_url: Option<String>,
    /// Client-credentials client id.
    #[arg(long, global = true)]
    pub client_id: Option<String>,
    /// Client-credentials client secret.
    #[arg(long, global = true)]
    pub client_secret: Option<String>,
    /// Scope asked for (client credentials and dev issuer).
    #[arg(
        long,
        global = true,
        default_value = "fhircast/*.read fhircast/*.write"
    )]
    pub scope: String,
    /// A topic to use (repeatable) when tokens do not come from the dev issuer; without
    /// it, topics are random (a hub must then accept any topic for the token).
    #[arg(long = "topic", id = "topic", global = true)]
    pub topic_names: Vec<String>,
    /// Trust this CA (PEM) for https:// and wss:// (else the system roots).
    #[arg(long, global = true)]
    pub ca_file: Option<PathBuf>,
    /// Local addresses client sockets bind to, round-robin.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1"
    )]
    pub source_addrs: Vec<IpAddr>,
    /// The `target` field of the results.
    #[arg(long, global = true, default_value = "hub")]
    pub label: String,
    /// The `scenario` field (default per subcommand: fanout S1, storm S3, publish S6).
    #[arg(long, global = true)]
    pub scenario: Option<String>,
    /// A process of the system under test, sampled from /proc (repeatable).
    #[arg(long = "watch-pid", global = true)]
    pub watch_pids: Vec<u32>,
    /// Append one StepResult JSON object per line to this file.
    #[arg(long, global = true)]
    pub json_out: Option<PathBuf>,
    /// Hard cap on the whole run, in seconds; then it stops and reports.
    #[arg(long, global = true, default_value_t = 120)]
    pub max_seconds: u64,
    /// Permit a hub that is not on loopback.
    #[arg(long, global = true)]
    pub allow_remote: bool,
    /// No progress line on stderr.
    #[arg(long, global = true)]
    pub quiet: bool,
    /// Runtime worker threads (1: a current-thread runtime).
    #[arg(long, global = true, default_value_t = 1)]
    pub workers: usize,
    /// Subscriptions per dev-issuer token (each token is its own app user, so the hub's
    /// per-client subscription cap, 16 by default, is respected).
    #[arg(long, global = true, default_value_t = 16)]
    pub subscriptions_per_token: usize,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Subscribers on few topics, publishes at stepped open-loop rates (S1, S4, S5).
    Fanout(FanoutArgs),
    /// Many subscriptions connecting at once (S3).
    Storm(StormArgs),
    /// Publishes only, over keep-alive connections (S6).
    Publish(PublishArgs),
}

/// `fanout` options.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    #[arg(long, default_value_t = 1)]
    pub topics: usize,
    #[arg(long, default_value_t = 1000)]
    pub subscribers_per_topic: usize,
    #[arg(long, default_value_t = 1024)]
    pub payload_bytes: usize,
    /// Total publishes per second, open loop, one step each.
    #[arg(long, value_delimiter = ',', default_value = "20,100,300")]
    pub rates: Vec<f64>,
    #[arg(long, default_value_t = 4.0)]
    pub step_seconds: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup_seconds: f64,
    #[arg(long, default_value_t = 100)]
    pub connect_in_flight: usize,
    /// Subscribers do not acknowledge notifications.
    #[arg(long)]
    pub no_ack: bool,
    /// Hold a socket's acks up to this many microseconds and write them together (0: the
    /// acks of each read go out in one write right after it). Latency is still stamped at
    /// the read; the hub sees the acks later and in fewer writes than apps would send.
    #[arg(long, default_value_t = 0)]
    pub ack_hold_us: u64,
    /// This many subscribers stop reading at the start of each step (S5).
    #[arg(long, default_value_t = 0)]
    pub stall: usize,
    /// After connecting, wait this long with no traffic and emit an `idle` step (S4).
    #[arg(long)]
    pub idle_seconds: Option<f64>,
    /// Stop stepping once p99 exceeds this (ms) or anything is lost.
    #[arg(long, default_value_t = 1000.0)]
    pub stop_p99_ms: f64,
    /// Concurrent publish requests (keep-alive connections).
    #[arg(long, default_value_t = 32)]
    pub publish_connections: usize,
}

/// `storm` options.
#[derive(Debug, Args)]
pub struct StormArgs {
    #[arg(long, default_value_t = 2000)]
    pub subscriptions: usize,
    #[arg(long, default_value_t = 100)]
    pub in_flight: usize,
    /// Topics (default half the subscriptions).
    #[arg(long)]
    pub topics: Option<usize>,
}

/// `publish` options.
#[derive(Debug, Args)]
pub struct PublishArgs {
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Publishes per second in total, open loop (0: as fast as each connection goes).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 1024)]
    pub payload_bytes: usize,
    /// Topics the publishes go to, round-robin.
    #[arg(long, default_value_t = 16)]
    pub topics: usize,
}
