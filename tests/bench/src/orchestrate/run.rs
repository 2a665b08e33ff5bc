//! One benchmark run: for each system under test and each scenario, a fresh instance of
//! the system (so no scenario inherits another's subscriptions or memory), one generator
//! call, the system's memory at start and end; then the report.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};

use super::keys::{self, TlsFiles};
use super::machine::{self, LOADGEN_CORE, SUT_CORE};
use super::process::{Procs, TempDir};
use super::procfs;
use super::scenarios::{self, Generator, Plan};
use super::sut::{self, Setup, Sut};
use crate::report::header::{RaisedLimit, RssSample, RunHeader};
use crate::report::{self, Written};
use crate::results::StepResult;

/// A 1-minute load average above this at the start is noted (the run itself adds ~2).
const BUSY_LOAD: f64 = 0.5;
/// Seconds of the run's budget kept for starting and stopping a system.
const STOP_RESERVE_SECONDS: u64 = 8;
/// A call with less than this left is skipped.
const MIN_CALL_SECONDS: u64 = 5;

/// The built-in systems under test, in run order.
pub const BUILT_IN: [&str; 3] = ["limit", "embedded", "cluster"];

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub bin_dir: PathBuf,
    pub out: PathBuf,
    /// Other hubs (name, hub URL).
    pub targets: Vec<(String, String)>,
    /// More generator options for the other hubs (tokens, `--allow-remote`).
    pub target_args: Vec<String>,
    /// Which built-in systems to run.
    pub only: Vec<String>,
    pub quick: bool,
    /// The whole run's time budget in seconds (0: none): each generator call's
    /// `--max-seconds` is cut to what is left, and calls are skipped once it is spent.
    pub budget_seconds: u64,
}

/// A system to start for one generator call.
#[derive(Debug, Clone)]
enum Which {
    Limit,
    Embedded,
    EmbeddedTls,
    Cluster,
    Other(String, String),
}

/// The state of a run in progress.
#[derive(Debug)]
struct Run<'a> {
    opts: &'a Options,
    procs: &'a Procs,
    setup: Setup,
    generator: Generator,
    header: RunHeader,
    steps: Vec<StepResult>,
    calls: usize,
    tls: Option<TlsFiles>,
    began: Instant,
}

fn say(line: &str) {
    eprintln!("fhircast-bench: {line}");
}

/// Runs the benchmark and writes the report; every process it started is stopped by the
/// caller through `procs` (also when this future is dropped on Ctrl-C).
pub async fn run(opts: &Options, procs: &Procs) -> Result<Written> {
    let began = Instant::now();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (date, started_at) = crate::report::header::utc_date_and_stamp(now);
    let tmp = TempDir::new()?;
    let machine = machine::machine();
    let pinning = machine::pinning(&machine.allowed_cpus, machine::on_path("taskset"));
    let open_files = machine.open_files_limit;
    let max_connections = open_files.map_or(100_000, |l| l.saturating_sub(500).clamp(100, 100_000));
    let setup = Setup {
        bin_dir: opts.bin_dir.clone(),
        tmp: tmp.path().to_owned(),
        core: pinning.pinned.then_some(SUT_CORE),
        max_connections,
    };
    let generator = Generator {
        program: opts.bin_dir.join("fhircast-loadgen"),
        core: pinning.pinned.then_some(LOADGEN_CORE),
        tmp: tmp.path().to_owned(),
    };
    scenarios::check_generator(&generator.program)?;
    for name in &opts.only {
        if name != "none" && !BUILT_IN.contains(&name.as_str()) {
            bail!("--only {name}: not one of {}", BUILT_IN.join(","));
        }
    }
    let load_1m_start = procfs::own_load_1m();
    let mut notes = Vec::new();
    if let Some(load) = load_1m_start.filter(|l| *l > BUSY_LOAD) {
        notes.push(format!(
            "The machine was not idle: the 1-minute load average was {load:.2} at the start, so \
             other processes shared the cores the systems and the generator were pinned to."
        ));
    }
    if let Some(note) = &pinning.note {
        notes.push(format!("Unpinned: {note}."));
    }
    let (s2_topics, s2_note) = scenarios::s2_topics(opts.quick, open_files);
    notes.extend(s2_note);
    let selected = |n: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == n);
    let mut header = RunHeader {
        kind: "header".into(),
        date,
        started_at,
        quick: opts.quick,
        machine,
        pinning,
        git_commit: machine::git_commit(),
        load_1m_start,
        notes,
        ..RunHeader::default()
    };
    if selected("embedded") || selected("cluster") {
        header.limits_raised = setup
            .raised_limits()
            .into_iter()
            .map(|l| RaisedLimit {
                applies_to: l.applies_to.to_owned(),
                flag: l.flag.to_owned(),
                default: l.default,
                value: l.value,
            })
            .collect();
    }
    let mut run = Run {
        opts,
        procs,
        setup,
        generator,
        header,
        steps: Vec::new(),
        calls: 0,
        tls: None,
        began,
    };
    let plans = scenarios::plans(opts.quick, s2_topics);
    for (name, which) in [
        ("limit", Which::Limit),
        ("embedded", Which::Embedded),
        ("cluster", Which::Cluster),
    ] {
        if selected(name) {
            run.system(name, &which, &plans).await;
        }
    }
    for (name, url) in &opts.targets {
        run.system(name, &Which::Other(name.clone(), url.clone()), &plans)
            .await;
    }
    if !opts.targets.is_empty() {
        run.header.notes.push(
            "Hubs given with --target run with unknown pids: no CPU or memory figures for them."
                .into(),
        );
    }
    if selected("embedded") {
        run.header.notes.push(
            "S3 `wss`: the gateway refuses --dev-issuer with --tls-cert, so the TLS hub trusts \
             the dev issuer of a plain embedded hub started beside it (--issuer, --jwks-url, \
             --audience) with --topic-binding none, and the generator subscribes with one \
             client-credentials token from that issuer (one client for every subscription)."
                .into(),
        );
    }
    if selected("cluster") {
        run.header.notes.push(
            "The cluster is driven through gw-0 only (the generator takes one hub URL); gw-1 \
             runs but carries no clients."
                .into(),
        );
    }
    run.header.load_1m_end = procfs::own_load_1m();
    run.header.wall_seconds = began.elapsed().as_secs_f64();
    let written = report::write(&opts.out, &run.header, &run.steps)?;
    drop(tmp);
    Ok(written)
}

impl Run<'_> {
    /// Every scenario against one system (S3 also over TLS for the embedded hub).
    async fn system(&mut self, name: &str, which: &Which, plans: &[Plan]) {
        for plan in plans {
            self.call(name, which, plan).await;
            if plan.scenario == "S3" && matches!(which, Which::Embedded) {
                self.call(name, &Which::EmbeddedTls, plan).await;
            }
        }
    }

    async fn start(&mut self, which: &Which) -> Result<Sut> {
        match which {
            Which::Limit => sut::start_limit(&self.setup, self.procs).await,
            Which::Embedded => sut::start_embedded(&self.setup, self.procs, "embedded").await,
            Which::EmbeddedTls => {
                if self.tls.is_none() {
                    let dir = self.setup.tmp.join("tls");
                    std::fs::create_dir_all(&dir)?;
                    self.tls = Some(keys::tls_files(&dir)?);
                }
                let Some(tls) = self.tls.clone() else {
                    bail!("no TLS files");
                };
                sut::start_embedded_tls(&self.setup, self.procs, &tls).await
            }
            Which::Cluster => sut::start_cluster(&self.setup, self.procs).await,
            Which::Other(name, url) => Ok(Sut {
                name: name.clone(),
                hub_url: url.clone(),
                bare: false,
                procs: Vec::new(),
                ca_file: None,
                extra_args: self.opts.target_args.clone(),
                helpers: Vec::new(),
            }),
        }
    }

    /// A fresh instance of the system, one generator call, then the system is stopped.
    async fn call(&mut self, name: &str, which: &Which, plan: &Plan) {
        self.calls += 1;
        let what = if matches!(which, Which::EmbeddedTls) {
            format!("{name} {} (wss)", plan.scenario)
        } else {
            format!("{name} {}", plan.scenario)
        };
        let mut plan = plan.clone();
        if self.opts.budget_seconds > 0 {
            // What is left of the run's budget, less time to start and stop the system.
            let left = self
                .opts
                .budget_seconds
                .saturating_sub(self.began.elapsed().as_secs())
                .saturating_sub(STOP_RESERVE_SECONDS);
            if left < MIN_CALL_SECONDS {
                say(&format!("{what}: skipped, the run's time budget is spent"));
                self.header.notes.push(format!(
                    "{what}: skipped, the run's {} s budget was spent",
                    self.opts.budget_seconds
                ));
                return;
            }
            if left < plan.max_seconds {
                self.header.notes.push(format!(
                    "{what}: --max-seconds cut from {} to {left} (the run's {} s budget)",
                    plan.max_seconds, self.opts.budget_seconds
                ));
                plan.max_seconds = left;
            }
        }
        let plan = &plan;
        let sut = match self.start(which).await {
            Ok(sut) => sut,
            Err(e) => {
                say(&format!("{what}: could not start the system: {e:#}"));
                self.header
                    .notes
                    .push(format!("{what}: the system did not start: {e:#}"));
                let lines = self.procs.stop_everything().await;
                for l in lines {
                    say(&format!("  {l}"));
                }
                return;
            }
        };
        let start_rss: Vec<Option<u64>> =
            sut.procs.iter().map(|(_, p)| procfs::rss_of(*p)).collect();
        say(&format!("{what}: {} … ", sut.hub_url));
        let (steps, outcome) =
            scenarios::run_plan(&self.generator, self.procs, &sut, name, plan, self.calls).await;
        say(&format!(
            "{what}: {} in {:.1} s, {} step(s){}",
            outcome.outcome,
            outcome.seconds,
            outcome.steps,
            outcome
                .detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ));
        for ((process, pid), start) in sut.procs.iter().zip(start_rss) {
            let alive = procfs::alive(*pid);
            if !alive {
                self.header.notes.push(format!(
                    "{what}: {process} (pid {pid}) had exited by the end of the call"
                ));
            }
            self.header.rss.push(RssSample {
                target: what.clone(),
                process: process.clone(),
                pid: *pid,
                start_bytes: start,
                end_bytes: procfs::rss_of(*pid),
            });
        }
        self.steps.extend(steps);
        self.header.runs.push(outcome);
        let pids = sut.all_pids();
        if !pids.is_empty() {
            self.procs.stop(&pids).await;
        }
    }
}
