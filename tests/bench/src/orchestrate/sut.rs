//! The systems under test: the bare broadcaster (`limit`), the embedded hub (`embedded`, and
//! a second one over TLS for the `wss` step), and a cluster of Redis, two hub nodes and two
//! gateways (`cluster`), started as `tests/cluster/run-cluster.sh` starts them, plus any
//! other hub named on the command line. Every one binds 127.0.0.1 on a port of its own
//! choosing (port 0) and is read back from its `listening` line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep};

use super::keys;
use super::process::{Launch, Procs, Started};

/// How long a process may take to print its `listening` line or become ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Hub nodes of the cluster (and as many gateways).
pub const CLUSTER_NODES: usize = 2;

/// A running system under test, as the load generator needs it.
#[derive(Debug, Clone)]
pub struct Sut {
    /// `limit`, `embedded`, `cluster` or a `--target` name.
    pub name: String,
    /// `--hub-url` for the generator.
    pub hub_url: String,
    /// The bare broadcaster (`--kind bare`).
    pub bare: bool,
    /// Its processes (name, pid): watched by the generator; empty for a `--target`.
    pub procs: Vec<(String, u32)>,
    /// The CA the generator trusts (`--ca-file`), for TLS.
    pub ca_file: Option<PathBuf>,
    /// More generator options (for a `--target`, or the token source of the TLS hub).
    pub extra_args: Vec<String>,
    /// Processes it needs that are not measured (the TLS hub's token issuer): stopped
    /// with it, not watched.
    pub helpers: Vec<u32>,
}

impl Sut {
    /// The pids of its processes.
    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|(_, pid)| *pid).collect()
    }

    /// Every pid to stop once it has been measured.
    pub fn all_pids(&self) -> Vec<u32> {
        let mut pids = self.pids();
        pids.extend(&self.helpers);
        pids
    }
}

/// One limit raised for the run.
#[derive(Debug, Clone, Serialize)]
pub struct RaisedLimit {
    /// Which processes take it.
    pub applies_to: &'static str,
    pub flag: &'static str,
    pub default: String,
    pub value: String,
}

/// Where the binaries are, where files go, and which core the systems run on.
#[derive(Debug, Clone)]
pub struct Setup {
    pub bin_dir: PathBuf,
    pub tmp: PathBuf,
    pub core: Option<u32>,
    /// `--max-connections` of the gateways (below the open-files limit).
    pub max_connections: u64,
}

impl Setup {
    fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The limits raised on the gateways (`gateway`) and the processes hosting topics
    /// (`topics`: the embedded gateway, the hub nodes).
    pub fn raised_limits(&self) -> Vec<RaisedLimit> {
        let gw = |flag, default: &str, value: String| RaisedLimit {
            applies_to: "gateways",
            flag,
            default: default.to_owned(),
            value,
        };
        let topics = |flag, default: &str, value: &str| RaisedLimit {
            applies_to: "embedded gateway, hub nodes",
            flag,
            default: default.to_owned(),
            value: value.to_owned(),
        };
        vec![
            gw("--rate-limit-per-second", "100", "0 (unlimited)".into()),
            gw("--rate-limit-burst", "200", "100000".into()),
            gw("--topic-refusals-per-minute", "10", "0 (unlimited)".into()),
            gw(
                "--max-connections",
                "10000",
                self.max_connections.to_string(),
            ),
            topics("--max-subscriptions-per-client", "16", "100000"),
            topics("--max-unattached-per-client", "32", "100000"),
        ]
    }

    fn gateway_limit_args(&self) -> Vec<String> {
        [
            "--rate-limit-per-second",
            "0",
            "--rate-limit-burst",
            "100000",
            "--topic-refusals-per-minute",
            "0",
            "--max-connections",
            &self.max_connections.to_string(),
            // Not a limit: SIGTERM at the end of a run need not drain for 10 s.
            "--shutdown-grace-ms",
            "1000",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect()
    }

    fn topic_limit_args() -> Vec<String> {
        [
            "--max-subscriptions-per-client",
            "100000",
            "--max-unattached-per-client",
            "100000",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect()
    }

    fn launch(&self, name: &str, bin: &str) -> Launch {
        Launch::new(name, self.bin(bin))
            .pinned(self.core)
            .env("RUST_LOG", "warn")
    }
}

/// Starts the bare broadcaster.
pub async fn start_limit(setup: &Setup, procs: &Procs) -> Result<Sut> {
    let launch = setup
        .launch("broadcaster", "fhircast-bare-broadcaster")
        .args(["--listen", "127.0.0.1:0"]);
    let started = procs.start(&launch, &setup.tmp)?;
    let url = started
        .await_line(procs, "listening ", START_TIMEOUT)
        .await?;
    Ok(Sut {
        name: "limit".into(),
        hub_url: url,
        bare: true,
        procs: vec![(started.name, started.pid)],
        ca_file: None,
        extra_args: Vec::new(),
        helpers: Vec::new(),
    })
}

/// Starts the embedded hub (over TLS with `tls`), named `name`.
pub async fn start_embedded(setup: &Setup, procs: &Procs, name: &str) -> Result<Sut> {
    start_embedded_with(setup, procs, name, &["--dev-issuer".to_owned()], None).await
}

/// Starts an embedded hub over TLS: it cannot serve the dev issuer (the gateway refuses
/// --dev-issuer with --tls-cert), so a plain embedded hub is started beside it as the token
/// issuer, trusted with --issuer/--jwks-url/--audience, and the generator gets one
/// client-credentials token from it; `--topic-binding none` lets that one token use the
/// storm's random topics.
pub async fn start_embedded_tls(setup: &Setup, procs: &Procs, tls: &keys::TlsFiles) -> Result<Sut> {
    let issuer = start_embedded(setup, procs, "token-issuer").await?;
    let origin = issuer
        .hub_url
        .strip_suffix("/api/hub")
        .unwrap_or(&issuer.hub_url)
        .to_owned();
    let args = [
        "--tls-cert".to_owned(),
        path_arg(&tls.cert),
        "--tls-key".to_owned(),
        path_arg(&tls.key),
        "--issuer".to_owned(),
        format!("{origin}/dev-issuer"),
        "--jwks-url".to_owned(),
        format!("{origin}/dev-issuer/jwks.json"),
        "--audience".to_owned(),
        issuer.hub_url.clone(),
        "--topic-binding".to_owned(),
        "none".to_owned(),
    ];
    let started = start_embedded_with(setup, procs, "embedded-tls", &args, Some(&tls.ca)).await;
    let mut sut = match started {
        Ok(sut) => sut,
        Err(e) => {
            procs.stop(&issuer.pids()).await;
            return Err(e);
        }
    };
    sut.extra_args = vec![
        "--token-source".into(),
        "client-credentials".into(),
        "--token-url".into(),
        format!("{origin}/dev-issuer/token"),
        "--client-id".into(),
        "fhircast-bench".into(),
        "--client-secret".into(),
        "unused".into(),
    ];
    sut.helpers = issuer.pids();
    Ok(sut)
}

async fn start_embedded_with(
    setup: &Setup,
    procs: &Procs,
    name: &str,
    args: &[String],
    ca: Option<&Path>,
) -> Result<Sut> {
    let launch = setup
        .launch(name, "fhircast-gateway")
        .args(["--embedded", "--listen", "127.0.0.1:0"])
        .args(args.iter().cloned())
        .args(setup.gateway_limit_args())
        .args(Setup::topic_limit_args());
    let started = procs.start(&launch, &setup.tmp)?;
    let base = started
        .await_line(procs, "listening ", START_TIMEOUT)
        .await?;
    await_ready(procs, &started, &base, ca).await?;
    Ok(Sut {
        name: name.to_owned(),
        hub_url: format!("{base}/api/hub"),
        bare: false,
        procs: vec![(started.name, started.pid)],
        ca_file: ca.map(Path::to_owned),
        extra_args: Vec::new(),
        helpers: Vec::new(),
    })
}

/// Starts Redis, [`CLUSTER_NODES`] hub nodes and as many gateways, with the flags and
/// environment of `tests/cluster/run-cluster.sh`. The generator is pointed at gw-0.
pub async fn start_cluster(setup: &Setup, procs: &Procs) -> Result<Sut> {
    let mut all = Vec::new();
    let (redis, redis_port) = start_redis(setup, procs).await?;
    all.push((redis.name.clone(), redis.pid));

    let topic_key = keys::topic_key()?;
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let issuer_key = setup.tmp.join("dev-issuer-key.pem");
    keys::dev_issuer_key(&issuer_key)?;

    let mut nodes = Vec::new();
    for i in 0..CLUSTER_NODES {
        let name = format!("hub-{i}");
        let launch = setup
            .launch(&name, "fhircast-hub-node")
            .args(["--node-id", &name, "--grpc-listen", "127.0.0.1:0"])
            .args(Setup::topic_limit_args())
            .env("FHIRCAST_TOPIC_KEY", &topic_key)
            .env("FHIRCAST_REDIS_URL", &redis_url);
        nodes.push(procs.start(&launch, &setup.tmp)?);
    }
    for node in &nodes {
        node.await_line(procs, "listening grpc://", START_TIMEOUT)
            .await?;
        all.push((node.name.clone(), node.pid));
    }
    await_members(redis_port, CLUSTER_NODES).await?;

    // gw-0 binds port 0, so its own URL is only known once it listens: it takes the dev
    // issuer's defaults (iss <gw-0>/dev-issuer, aud <gw-0>/api/hub), and gw-1 is given
    // those explicitly, as run-cluster.sh gives both gateways gw-0's.
    let mut gw0_base = String::new();
    for i in 0..CLUSTER_NODES {
        let name = format!("gw-{i}");
        let mut launch = setup
            .launch(&name, "fhircast-gateway")
            .args(["--gateway-id", &name, "--listen", "127.0.0.1:0"])
            .args(["--dev-issuer".to_owned(), "--dev-issuer-key".to_owned()])
            .args([path_arg(&issuer_key)])
            .args(setup.gateway_limit_args())
            .env("FHIRCAST_TOPIC_KEY", &topic_key)
            .env("FHIRCAST_REDIS_URL", &redis_url);
        if i > 0 {
            launch = launch.args([
                "--dev-issuer-url".to_owned(),
                format!("{gw0_base}/dev-issuer"),
                "--audience".to_owned(),
                format!("{gw0_base}/api/hub"),
            ]);
        }
        let started = procs.start(&launch, &setup.tmp)?;
        let base = started
            .await_line(procs, "listening ", START_TIMEOUT)
            .await?;
        await_ready(procs, &started, &base, None).await?;
        if i == 0 {
            gw0_base = base;
        }
        all.push((started.name, started.pid));
    }
    Ok(Sut {
        name: "cluster".into(),
        hub_url: format!("{gw0_base}/api/hub"),
        bare: false,
        procs: all,
        ca_file: None,
        extra_args: Vec::new(),
        helpers: Vec::new(),
    })
}

/// Starts redis-server on a free port (found by binding port 0 and releasing it; retried
/// if another process takes it meanwhile).
async fn start_redis(setup: &Setup, procs: &Procs) -> Result<(Started, u16)> {
    let dir = setup.tmp.join("redis");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut last = None;
    for _ in 0..5 {
        let port = free_port()?;
        let launch = Launch::new("redis", "redis-server")
            .pinned(setup.core)
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--protected-mode",
                "yes",
                "--dir",
                &path_arg(&dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
            ]);
        let started = procs.start(&launch, &setup.tmp)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline && procs.exit_status(started.pid).is_none() {
            if redis_command(port, &["PING"]).await.ok().as_deref() == Some("+PONG") {
                return Ok((started, port));
            }
            sleep(Duration::from_millis(50)).await;
        }
        last = Some(super::process::log_tail(&started.log, 10));
        procs.stop(&[started.pid]).await;
    }
    bail!("redis-server did not start: {}", last.unwrap_or_default())
}

/// Waits until `count` hub nodes are registered in Redis.
async fn await_members(port: u16, count: usize) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let reply = redis_command(port, &["ZCARD", "fhc:v1:{members}:node"]).await;
        if reply.as_deref().ok() == Some(format!(":{count}").as_str()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the hub nodes did not all register in Redis within {START_TIMEOUT:?} (last reply {reply:?})"
            );
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// Sends one command to Redis and returns the first line of its reply.
async fn redis_command(port: u16, args: &[&str]) -> Result<String> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    let io = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(req.as_bytes()).await?;
        let mut buf = vec![0u8; 256];
        let n = stream.read(&mut buf).await?;
        anyhow::Ok(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or("")
                .to_owned(),
        )
    };
    tokio::time::timeout(Duration::from_secs(2), io)
        .await
        .context("Redis did not answer")?
}

/// Waits until `<base>/readyz` answers 200.
async fn await_ready(
    procs: &Procs,
    started: &Started,
    base: &str,
    ca: Option<&Path>,
) -> Result<()> {
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(2));
    if let Some(ca) = ca {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    let client = builder.build()?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let ok = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(());
        }
        if procs.exit_status(started.pid).is_some() || Instant::now() >= deadline {
            bail!(
                "{} is not ready at {base}/readyz; its log ends:\n{}",
                started.name,
                super::process::log_tail(&started.log, 20)
            );
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// A port free right now on 127.0.0.1.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
