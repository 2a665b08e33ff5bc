//! What a run writes: the StepResult JSON lines (appended to `--json-out` as each step
//! ends, and printed on stdout), the Markdown summary table at the end, and the progress
//! line on stderr once a second.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::ledger::Ledger;
use super::publisher::PhaseStats;
use crate::results::StepResult;

/// Collects and writes step results.
#[derive(Debug, Default)]
pub struct Output {
    pub json_out: Option<PathBuf>,
    pub steps: Vec<StepResult>,
}

impl Output {
    /// Records a step: appends its JSON line to the file and prints it.
    pub fn step(&mut self, step: StepResult) -> Result<()> {
        let line = serde_json::to_string(&step)?;
        if let Some(path) = &self.json_out {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(file, "{line}").with_context(|| format!("writing {}", path.display()))?;
        }
        println!("{line}");
        self.steps.push(step);
        Ok(())
    }

    /// The Markdown summary of every step.
    pub fn summary(&self) -> String {
        let mut text = String::from(
            "\n| target | scenario | step | offered/s | publishes/s | bound/s | deliveries/s | expected | received | lost | dup | reord | p50 ms | p99 ms | max ms | SUT cores | SUT CPU ms/1k | loadgen cores |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        let ms = |us: u64| format!("{:.1}", us as f64 / 1000.0);
        for step in &self.steps {
            let latency = step
                .latency_us
                .as_ref()
                .or(step.connect.as_ref().map(|connect| &connect.latency_us))
                .or(step
                    .publishes
                    .as_ref()
                    .and_then(|publishes| publishes.http_latency_us.as_ref()));
            let deliveries = step.deliveries.as_ref();
            let d = |f: fn(&crate::results::Deliveries) -> u64| {
                deliveries.map_or("-".to_owned(), |d| f(d).to_string())
            };
            text.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                step.target,
                step.scenario,
                step.step,
                step.offered_publishes_per_s.map_or("-".to_owned(), |r| format!("{r:.0}")),
                step.publishes.as_ref().map_or("-".to_owned(), |p| format!("{:.0}", p.per_s)),
                step.connect.as_ref().map_or("-".to_owned(), |c| format!("{:.0}", c.per_s)),
                deliveries.map_or("-".to_owned(), |d| format!("{:.0}", d.per_s)),
                d(|d| d.expected),
                d(|d| d.received),
                d(|d| d.lost),
                d(|d| d.duplicated),
                d(|d| d.reordered),
                latency.map_or("-".to_owned(), |l| ms(l.p50)),
                latency.map_or("-".to_owned(), |l| ms(l.p99)),
                latency.map_or("-".to_owned(), |l| ms(l.max)),
                step.resources.as_ref().map_or("-".to_owned(), |r| format!("{:.2}", r.sut_cores)),
                step.resources
                    .as_ref()
                    .and_then(|r| r.sut_cpu_ms_per_1k)
                    .map_or("-".to_owned(), |v| format!("{v:.1}")),
                step.resources.as_ref().map_or("-".to_owned(), |r| format!("{:.2}", r.loadgen_cores)),
            ));
        }
        for step in &self.steps {
            for note in &step.notes {
                text.push_str(&format!("\n- {} {}: {note}", step.scenario, step.step));
            }
        }
        text.push('\n');
        text
    }
}

/// Prints `label: offered N sent N delivered N/s p99 X ms` on stderr every second until
/// aborted.
pub fn progress(
    label: String,
    ledger: Arc<Ledger>,
    stats: Arc<PhaseStats>,
    phase: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = ledger.received(phase);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = ledger.received(phase);
            let p99 = ledger.latency.merged(phase).value_at_quantile(0.99);
            eprintln!(
                "{label}: offered {} sent {} accepted {} delivered {}/s p99 {:.1} ms",
                stats.offered.load(Ordering::Relaxed),
                stats.sent.load(Ordering::Relaxed),
                stats.accepted.load(Ordering::Relaxed),
                now - last,
                p99 as f64 / 1000.0
            );
            last = now;
        }
    })
}
