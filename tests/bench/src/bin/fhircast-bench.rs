//! `fhircast-bench`: the benchmark behind `make bench`. Starts the bare broadcaster, the
//! embedded hub and a two-node cluster (each pinned to core 0), drives each with
//! `fhircast-loadgen` (pinned to core 1) through scenarios S1–S6, and writes
//! `<out>/<date>.json`, `<date>.md`, three SVG plots and `latest.md`. See docs/performance.md.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use fhircast_bench::orchestrate::process::Procs;
use fhircast_bench::orchestrate::run::{Options, run};

#[derive(Parser, Debug)]
#[command(
    about = "Benchmark the FHIRcast hub against this machine's limit (see docs/performance.md)"
)]
struct Args {
    /// Where fhircast-gateway, fhircast-hub-node, fhircast-loadgen and
    /// fhircast-bare-broadcaster are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Where the report goes.
    #[arg(long, default_value = "tests/bench/results")]
    out: PathBuf,
    /// Another hub to drive with the same generator, as NAME=URL (its hub URL); repeatable.
    /// Its pids are unknown, so it gets no CPU or memory figures.
    #[arg(long = "target", value_name = "NAME=URL")]
    targets: Vec<String>,
    /// A generator option for the --target hubs (e.g. --target-arg=--allow-remote);
    /// repeatable.
    #[arg(long = "target-arg", value_name = "ARG", allow_hyphen_values = true)]
    target_args: Vec<String>,
    /// Only these built-in systems (comma-separated: limit,embedded,cluster); `none` for
    /// only the --target hubs.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// A much shorter run, to check the harness (its figures are not measurements).
    #[arg(long)]
    quick: bool,
    /// The whole run's time budget in seconds (0: none); each generator call is cut to
    /// what is left and calls are skipped once it is spent (the report says which).
    #[arg(long, default_value_t = 290)]
    budget_seconds: u64,
}

fn parse_targets(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|t| {
            let (name, url) = t
                .split_once('=')
                .with_context(|| format!("--target {t}: expected NAME=URL"))?;
            if name.is_empty() || url.is_empty() {
                bail!("--target {t}: expected NAME=URL");
            }
            if ["limit", "embedded", "cluster"].contains(&name) {
                bail!("--target {t}: {name} is the name of a built-in system");
            }
            Ok((name.to_owned(), url.to_owned()))
        })
        .collect()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let only_none = args.only.iter().any(|o| o == "none");
    let opts = Options {
        bin_dir: args.bin_dir,
        out: args.out,
        targets: parse_targets(&args.targets)?,
        target_args: args.target_args,
        only: if only_none {
            vec!["none".into()]
        } else {
            args.only
        },
        quick: args.quick,
        budget_seconds: args.budget_seconds,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let procs = Procs::default();
        let result = tokio::select! {
            r = run(&opts, &procs) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        for line in procs.stop_everything().await {
            eprintln!("fhircast-bench: {line}");
        }
        let written = result?;
        println!("report:  {}", written.markdown.display());
        println!("latest:  {}", written.latest.display());
        println!("results: {}", written.json.display());
        for p in &written.plots {
            println!("plot:    {}", p.display());
        }
        Ok(())
    })
}
