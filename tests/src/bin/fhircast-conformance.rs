//! `fhircast-conformance`: runs the FHIRcast STU3 conformance suite against a hub.
//!
//! Either point it at a running hub (`--hub-url` plus `--token-url` or `--token-cmd`), or let
//! it spawn a gateway with the in-process test issuer (`--embedded`, over HTTPS and WSS with
//! `--tls`), or a whole cluster
//! (`--cluster`: one Redis with AOF `always`, 3 hub nodes, 2 gateways, the clients of every
//! check spread over both gateways; `--grpc-mtls` runs gateways and nodes over mutual TLS).
//! Prints one line per checklist item, then
//! `conformance: N passed, M failed`, then the skipped items; exits 1 on any failure.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use hub_tests::certs::{GrpcMtls, TlsFiles};
use hub_tests::cluster::{ClusterBuilder, RedisTopology};
use hub_tests::conformance::Ctx;
use hub_tests::conformance::runner::{self, Options, Report};
use hub_tests::gateway::GatewayBuilder;
use hub_tests::issuer::TestIssuer;
use hub_tests::token::TokenSource;

/// Timing the embedded gateway is started with, so the suite is fast.
const EMBEDDED_ACK_TIMEOUT: Duration = Duration::from_millis(1000);
const EMBEDDED_ATTACH_WINDOW: Duration = Duration::from_millis(2000);
const EMBEDDED_RECONNECT_GRACE_MS: u64 = 1000;
/// The Redis topologies `--cluster` can run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Topology {
    Single,
    Sentinel,
    Cluster,
}

/// The cluster `--cluster` starts.
const CLUSTER_NODES: usize = 3;
const CLUSTER_GATEWAYS: usize = 2;
/// The gateway's own default reconnect grace: not passed on the command line, so a gateway
/// that predates the option can still be started (`--reconnect-grace-ms 10000`).
const GATEWAY_DEFAULT_RECONNECT_GRACE_MS: u64 = 10_000;

#[derive(Debug, Parser)]
#[command(about = "FHIRcast STU3 hub conformance suite (the checklist in docs/conformance.md)")]
struct Args {
    /// `hub.url` of the hub under test, e.g. http://127.0.0.1:8080/api/hub.
    #[arg(long, required_unless_present_any = ["embedded", "cluster"])]
    hub_url: Option<String>,
    /// Token endpoint: POST form `topic`, `scope`, `expires_in` → JSON `access_token`.
    #[arg(long, conflicts_with_all = ["token_cmd", "embedded", "cluster"])]
    token_url: Option<String>,
    /// Command run as `sh -c "CMD <topic> '<scopes>' <expires_in>"`, printing a token.
    #[arg(long, conflicts_with_all = ["embedded", "cluster"])]
    token_cmd: Option<String>,
    /// Spawn `fhircast-gateway` with a test issuer and run against it.
    #[arg(long, conflicts_with_all = ["hub_url", "cluster"])]
    embedded: bool,
    /// With `--embedded`: the gateway serves HTTPS and WSS with a throwaway certificate
    /// (items 15.05 and 15.07 run only against an https:// hub).
    #[arg(long, requires = "embedded")]
    tls: bool,
    /// Trust the CA certificate(s) in this PEM file for an https:// `--hub-url` (besides the
    /// system's roots).
    #[arg(long, conflicts_with_all = ["embedded", "cluster"])]
    ca_file: Option<std::path::PathBuf>,
    /// Spawn a cluster (one Redis with AOF always, 3 hub nodes, 2 gateways) with a test
    /// issuer and run against it, spreading each check's clients over both gateways.
    #[arg(long, conflicts_with = "hub_url")]
    cluster: bool,
    /// The Redis of `--cluster`: one server (AOF always), a primary and a replica under
    /// three sentinels, or a three-master Redis Cluster with sharded pub/sub.
    #[arg(long, value_enum, default_value_t = Topology::Single, requires = "cluster")]
    redis: Topology,
    /// With `--cluster`: gateways and hub nodes talk gRPC over mutual TLS (a throwaway CA
    /// signing a node and a gateway certificate).
    #[arg(long, requires = "cluster")]
    grpc_mtls: bool,
    /// Gateway binary for `--embedded` and `--cluster` (default: GATEWAY_BIN or
    /// target/debug); `--cluster` takes the hub node binary from HUB_NODE_BIN or
    /// target/debug.
    #[arg(long)]
    gateway_bin: Option<String>,
    /// The hub's ack timeout in milliseconds (external hubs).
    #[arg(long, default_value_t = 10_000, conflicts_with_all = ["embedded", "cluster"])]
    ack_timeout_ms: u64,
    /// The hub's attach window in milliseconds (external hubs).
    #[arg(long, default_value_t = 30_000, conflicts_with_all = ["embedded", "cluster"])]
    attach_window_ms: u64,
    /// The hub's reconnect grace in milliseconds: how long after an abnormal close it waits
    /// for a re-attach before raising a SyncError (default: 10000 for an external hub;
    /// with `--embedded` or `--cluster`, the hub is started with it, 1000 by default).
    #[arg(long)]
    reconnect_grace_ms: Option<u64>,
    /// Run one item only, e.g. `15.22` or `22`.
    #[arg(long, value_parser = parse_item)]
    only: Option<u8>,
    /// How many checks run at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
}

fn parse_item(text: &str) -> Result<u8, String> {
    let number = text.strip_prefix("15.").unwrap_or(text);
    number
        .parse::<u8>()
        .map_err(|error| format!("`{text}` is not a checklist item: {error}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(report) => {
            print!("{}", report.render());
            if report.failed() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("fhircast-conformance: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<Report> {
    let options = Options {
        only: args.only,
        concurrency: args.concurrency,
        ..Options::default()
    };
    if args.embedded {
        let grace_ms = args
            .reconnect_grace_ms
            .unwrap_or(EMBEDDED_RECONNECT_GRACE_MS);
        return run_embedded(args.gateway_bin, grace_ms, args.tls, &options).await;
    }
    if args.cluster {
        let grace_ms = args
            .reconnect_grace_ms
            .unwrap_or(EMBEDDED_RECONNECT_GRACE_MS);
        return run_cluster(
            args.gateway_bin,
            args.redis,
            args.grpc_mtls,
            grace_ms,
            &options,
        )
        .await;
    }
    if let Some(ca) = &args.ca_file {
        hub_tests::certs::trust(ca)?;
    }
    let hub_url = args.hub_url.context("--hub-url is required")?;
    let tokens = match (args.token_url, args.token_cmd) {
        (Some(url), None) => TokenSource::TokenUrl(url),
        (None, Some(command)) => TokenSource::Command(command),
        _ => {
            bail!("give exactly one of --token-url or --token-cmd (or use --embedded or --cluster)")
        }
    };
    let grace_ms = args
        .reconnect_grace_ms
        .unwrap_or(GATEWAY_DEFAULT_RECONNECT_GRACE_MS);
    let ctx = Ctx::new(&hub_url, tokens)
        .with_timing(
            Duration::from_millis(args.ack_timeout_ms),
            Duration::from_millis(args.attach_window_ms),
        )
        .with_reconnect_grace(Duration::from_millis(grace_ms));
    runner::run(ctx, &options).await
}

async fn run_embedded(
    gateway_bin: Option<String>,
    grace_ms: u64,
    tls: bool,
    options: &Options,
) -> Result<Report> {
    let issuer = Arc::new(TestIssuer::start().await?);
    let mut builder = GatewayBuilder::new()
        .issuer(&issuer)
        .ack_timeout(EMBEDDED_ACK_TIMEOUT)
        .attach_window(EMBEDDED_ATTACH_WINDOW);
    let certificates = if tls {
        let dir = std::env::temp_dir().join(format!(
            "fhircast-conformance-tls-{}",
            hub_tests::payloads::random_topic()
        ));
        let files = TlsFiles::generate(&dir)?;
        builder = builder.tls(&files);
        Some(dir)
    } else {
        None
    };
    if grace_ms != GATEWAY_DEFAULT_RECONNECT_GRACE_MS {
        builder = builder
            .arg("--reconnect-grace-ms")
            .arg(grace_ms.to_string());
    }
    if let Some(path) = gateway_bin {
        builder = builder.binary(path);
    }
    let gateway = builder.start().await?;
    let ctx = Ctx::new(&gateway.hub_url(), TokenSource::Issuer(issuer))
        .with_timing(EMBEDDED_ACK_TIMEOUT, EMBEDDED_ATTACH_WINDOW)
        .with_reconnect_grace(Duration::from_millis(grace_ms));
    let report = runner::run(ctx, options).await;
    // Stop by pid with SIGTERM whatever the outcome, and report an unclean exit.
    let stopped = gateway.stop().await;
    if let Some(dir) = certificates {
        let _ = std::fs::remove_dir_all(dir);
    }
    let report = report?;
    stopped.context("stopping the embedded gateway")?;
    Ok(report)
}

/// Runs the suite against a fresh cluster with the embedded run's short timing: topic
/// timing on the nodes, the ack timeout on the gateways. The gateways share one public URL
/// (a round-robin balancer, as in production), so endpoints name it and each attach lands on
/// the next gateway; every other request goes straight to a gateway, in turn.
async fn run_cluster(
    gateway_bin: Option<String>,
    topology: Topology,
    grpc_mtls: bool,
    grace_ms: u64,
    options: &Options,
) -> Result<Report> {
    let grace = Duration::from_millis(grace_ms);
    let topology = match topology {
        Topology::Single => RedisTopology::default(),
        Topology::Sentinel => RedisTopology::Sentinel,
        Topology::Cluster => RedisTopology::Cluster,
    };
    let mut builder = ClusterBuilder::new()
        .topology(topology)
        .front_door()
        .nodes(CLUSTER_NODES)
        .gateways(CLUSTER_GATEWAYS)
        .attach_window(EMBEDDED_ATTACH_WINDOW)
        .reconnect_grace(grace)
        .ack_timeout(EMBEDDED_ACK_TIMEOUT);
    if let Some(path) = gateway_bin {
        builder = builder.configure_gateways(|gateway| gateway.binary(path));
    }
    // Kept until the cluster stops: the files are removed when it drops.
    let certificates = if grpc_mtls {
        Some(GrpcMtls::generate()?)
    } else {
        None
    };
    if let Some(certs) = &certificates {
        builder = builder.grpc_mtls(certs);
    }
    let cluster = builder.start().await.context("starting the cluster")?;
    let ctx = Ctx::spread(&cluster.hub_urls(), cluster.tokens())?
        .with_timing(EMBEDDED_ACK_TIMEOUT, EMBEDDED_ATTACH_WINDOW)
        .with_reconnect_grace(grace);
    let report = runner::run(ctx, options).await;
    if report.as_ref().is_ok_and(|report| report.failed() > 0) {
        eprintln!("{}", cluster.logs_tail());
    }
    // Stop every process by pid with SIGTERM whatever the outcome; report an unclean exit.
    let stopped = cluster.stop().await;
    let report = report?;
    stopped.context("stopping the cluster")?;
    Ok(report)
}
