//! Runs the conformance checks with bounded concurrency and a per-check timeout, and
//! formats the report (one line per item, the summary line, the skipped list).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Check, Ctx, Skip, plan};

/// Suite options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run only this item.
    pub only: Option<u8>,
    /// How many checks run at once.
    pub concurrency: usize,
    /// Deadline for one check.
    pub per_check_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            only: None,
            concurrency: 4,
            per_check_timeout: Duration::from_secs(30),
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Item number.
    pub item: u8,
    /// Short name.
    pub name: &'static str,
    /// How long it took, or why it failed.
    pub result: Result<Duration, String>,
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Outcomes in item order.
    pub outcomes: Vec<Outcome>,
    /// Items not run.
    pub skips: Vec<Skip>,
}

impl Report {
    /// Returns how many checks passed.
    pub fn passed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|outcome| outcome.result.is_ok())
            .count()
    }

    /// Returns how many checks failed.
    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }

    /// Returns the report text: item lines, the summary line, the skipped list.
    pub fn render(&self) -> String {
        let mut lines: Vec<(u8, String)> = self
            .outcomes
            .iter()
            .map(|outcome| {
                let line = match &outcome.result {
                    Ok(elapsed) => format!(
                        "ok   15.{:02} {} ({} ms)",
                        outcome.item,
                        outcome.name,
                        elapsed.as_millis()
                    ),
                    Err(error) => format!(
                        "FAIL 15.{:02} {}: {}",
                        outcome.item,
                        outcome.name,
                        error.replace('\n', " | ")
                    ),
                };
                (outcome.item, line)
            })
            .collect();
        lines.extend(self.skips.iter().map(|skip| {
            (
                skip.item,
                format!("skip 15.{:02} {}: {}", skip.item, skip.name, skip.reason),
            )
        }));
        lines.sort_by_key(|(item, _)| *item);
        let mut text = String::new();
        for (_, line) in lines {
            let _ = writeln!(text, "{line}");
        }
        let _ = writeln!(
            text,
            "conformance: {} passed, {} failed",
            self.passed(),
            self.failed()
        );
        let skipped: Vec<String> = self
            .skips
            .iter()
            .map(|skip| format!("15.{:02} ({})", skip.item, skip.reason))
            .collect();
        let _ = writeln!(text, "skipped: {}", skipped.join(", "));
        text
    }
}

/// Plans and runs the suite against the hub described by `ctx`.
pub async fn run(ctx: Ctx, options: &Options) -> Result<Report> {
    let (mut checks, mut skips) = plan(&ctx).await?;
    if let Some(only) = options.only {
        checks.retain(|check| check.item == only);
        skips.retain(|skip| skip.item == only);
    }
    let outcomes = run_checks(ctx, checks, options).await;
    Ok(Report { outcomes, skips })
}

async fn run_checks(ctx: Ctx, checks: Vec<Check>, options: &Options) -> Vec<Outcome> {
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for check in &checks {
        // Checks that wait out the attach window, the ack timeout or the reconnect grace
        // need longer than that (a few wait out the grace and then a SyncError after it).
        let deadline = options
            .per_check_timeout
            .max(ctx.attach_window + Duration::from_secs(15))
            .max(ctx.ack_timeout + Duration::from_secs(15))
            .max(ctx.reconnect_grace * 2 + Duration::from_secs(15));
        // Each check rotates over the hub URLs on its own, from a start that differs
        // between checks, so a cluster run spreads every check the same way each time.
        let ctx = ctx.for_check(usize::from(check.item));
        let (permits, check) = (Arc::clone(&permits), *check);
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let started = Instant::now();
            let result = match tokio::time::timeout(deadline, (check.run)(ctx)).await {
                Ok(Ok(())) => Ok(started.elapsed()),
                Ok(Err(error)) => Err(format!("{error:#}")),
                Err(_) => Err(format!("timed out after {deadline:?}")),
            };
            Outcome {
                item: check.item,
                name: check.name,
                result,
            }
        });
    }
    let mut outcomes = Vec::with_capacity(checks.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => outcomes.push(Outcome {
                item: 0,
                name: "panicked",
                result: Err(error.to_string()),
            }),
        }
    }
    // A panicking check loses its identity in the JoinError; name it from what is missing.
    for check in &checks {
        let present = outcomes
            .iter()
            .filter(|outcome| outcome.item == check.item)
            .count();
        if present == 0
            && let Some(orphan) = outcomes.iter_mut().find(|outcome| outcome.item == 0)
        {
            orphan.item = check.item;
            orphan.name = check.name;
        }
    }
    outcomes.sort_by_key(|outcome| outcome.item);
    outcomes
}
