//! `fhircast-loadgen`: drives any FHIRcast hub (or the bare broadcaster) with standard
//! FHIRcast traffic and measures it. Scenarios: [`fanout`] (subscribers on few topics,
//! open-loop publish rates stepped up; S1, S4 idle memory, S5 stalled subscribers),
//! [`storm`] (subscriptions connecting at once, S3) and [`publish`] (publish throughput, S6).
//! Each step becomes one [`crate::results::StepResult`] line; the exit code says whether
//! every check held (0), one did not (1), or the run could not start (2).

pub mod cli;
pub mod connect;
pub mod event;
pub mod fanout;
pub mod frames;
pub mod http;
pub mod inbox;
pub mod latency;
pub mod ledger;
pub mod output;
pub mod publish;
pub mod publisher;
pub mod receive;
pub mod resources;
pub mod storm;
pub mod subscriber;
pub mod target;
pub mod tokens;
pub mod wsconnect;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Parser as _;

use cli::{Cli, Scenario};
use http::Http;
use output::Output;
use resources::Watch;
use target::Target;
use tokens::Tokens;

/// Exit codes.
pub const EXIT_OK: u8 = 0;
pub const EXIT_CHECK_FAILED: u8 = 1;
pub const EXIT_UNUSABLE: u8 = 2;
/// How long past `--max-seconds` a run may go (final drain, summary) before it is stopped.
const BACKSTOP_SECONDS: u64 = 15;

/// What a scenario works with.
#[derive(Debug)]
pub struct Run {
    pub common: cli::Common,
    pub target: Target,
    pub http: Http,
    pub tls: Arc<rustls::ClientConfig>,
    pub tokens: Tokens,
    pub epoch: Instant,
    pub deadline: Instant,
    pub watch: Watch,
    pub output: Output,
}

impl Run {
    /// A result skeleton for `step`.
    pub fn step(&self, default_scenario: &str, step: &str) -> crate::results::StepResult {
        crate::results::StepResult {
            target: self.common.label.clone(),
            scenario: self
                .common
                .scenario
                .clone()
                .unwrap_or_else(|| default_scenario.to_owned()),
            step: step.to_owned(),
            ..Default::default()
        }
    }

    /// Time left before `--max-seconds`.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// A failure that means the run could not happen (exit 2), not a failed check.
#[derive(Debug)]
pub struct Unusable(pub String);

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unusable {}

/// Parses the command line, runs the scenario, prints the summary; returns the exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                EXIT_UNUSABLE
            } else {
                EXIT_OK
            };
        }
    };
    raise_nofile();
    let workers = cli.common.workers.max(1);
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("fhircast-loadgen: cannot start the runtime: {err}");
            return EXIT_UNUSABLE;
        }
    };
    // A backstop beyond --max-seconds: the phases bound themselves by it, and a stuck
    // request is bounded by its timeout; this bounds everything else.
    let backstop = Duration::from_secs(cli.common.max_seconds.saturating_add(BACKSTOP_SECONDS));
    let code = runtime.block_on(async move {
        match tokio::time::timeout(backstop, run(cli)).await {
            Ok(Ok(code)) => code,
            Ok(Err(err)) => {
                eprintln!("fhircast-loadgen: {err:#}");
                EXIT_UNUSABLE
            }
            Err(_) => {
                eprintln!("fhircast-loadgen: the run overran --max-seconds; stopped");
                EXIT_CHECK_FAILED
            }
        }
    });
    // Subscriber tasks are still parked on their sockets: do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn run(cli: Cli) -> Result<u8> {
    let common = cli.common;
    if common.source_addrs.is_empty() {
        bail!("--source-addrs names no address");
    }
    let target = Target::new(
        common.kind,
        &common.hub_url,
        common.publish_path.as_deref(),
        common.allow_remote,
    )?;
    let pool = match &cli.scenario {
        Scenario::Fanout(args) => args.publish_connections,
        Scenario::Publish(args) => args.connections,
        Scenario::Storm(args) => args.in_flight,
    };
    let http = Http::new(&common.source_addrs, common.ca_file.as_deref(), pool.max(8))?;
    let tls = wsconnect::tls_config(common.ca_file.as_deref())?;
    let tokens = Tokens::resolve(&common, &target, &http).await?;
    let epoch = Instant::now();
    let deadline = epoch + Duration::from_secs(common.max_seconds);
    let mut run = Run {
        watch: Watch::new(&common.watch_pids),
        output: Output {
            json_out: common.json_out.clone(),
            steps: Vec::new(),
        },
        common,
        target,
        http,
        tls,
        tokens,
        epoch,
        deadline,
    };
    let outcome = match cli.scenario {
        Scenario::Fanout(args) => fanout::run(&mut run, args).await,
        Scenario::Storm(args) => storm::run(&mut run, args).await,
        Scenario::Publish(args) => publish::run(&mut run, args).await,
    };
    println!("{}", run.output.summary());
    match outcome {
        Ok(true) => Ok(EXIT_OK),
        Ok(false) => Ok(EXIT_CHECK_FAILED),
        Err(err) if err.downcast_ref::<Unusable>().is_some() || run.output.steps.is_empty() => {
            Err(err)
        }
        Err(err) => {
            eprintln!("fhircast-loadgen: {err:#}");
            Ok(EXIT_CHECK_FAILED)
        }
    }
}

/// Raises the soft open-files limit to the hard limit (thousands of sockets).
fn raise_nofile() {
    if let Ok((soft, hard)) = rlimit::Resource::NOFILE.get()
        && soft < hard
        && let Err(err) = rlimit::Resource::NOFILE.set(hard, hard)
    {
        eprintln!("fhircast-loadgen: could not raise the open-files limit from {soft}: {err}");
    }
}
