//! `publish` (S6): no subscribers; C keep-alive connections POST events across many
//! topics, as fast as each connection goes (or open loop at `--rate`); one `publish` step
//! with publishes per second and their HTTP latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::cli::PublishArgs;
use super::ledger::Ledger;
use super::publisher::{PhaseStats, Publisher, Schedule};
use super::{Run, Unusable, output};

pub async fn run(run: &mut Run, args: PublishArgs) -> Result<bool> {
    let topics = args.topics.max(1);
    let tokens = run
        .tokens
        .topics(&run.http, topics, 0, run.common.subscriptions_per_token)
        .await
        .map_err(|err| Unusable(format!("getting topics and tokens: {err:#}")))?;
    let ledger = Arc::new(Ledger::new(run.epoch, topics, &[]));
    let publisher = Arc::new(Publisher::new(
        &run.target,
        tokens.into_iter().map(|t| (t.name, t.publisher)).collect(),
        args.payload_bytes,
        run.http.clone(),
        ledger.clone(),
    ));
    let stats = Arc::new(PhaseStats::default());
    let progress = (!run.common.quiet)
        .then(|| output::progress("publish".to_owned(), ledger.clone(), stats.clone(), 1));
    let seconds = Duration::from_secs_f64(args.seconds.max(0.1)).min(run.left());
    let sample = run.watch.sample();
    let started = Instant::now();
    if args.rate > 0.0 {
        let schedule = Schedule {
            rate: args.rate,
            warmup: Duration::ZERO,
            measured: seconds,
            phase: 1,
            connections: args.connections,
        };
        publisher
            .open_loop(schedule, run.deadline, stats.clone(), started)
            .await;
    } else {
        publisher
            .closed_loop(args.connections, 1, started + seconds, stats.clone())
            .await;
    }
    if let Some(progress) = progress {
        progress.abort();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut step = run.step("S6", "publish");
    step.duration_s = elapsed;
    let publishes = stats.publishes(elapsed);
    step.offered_publishes_per_s = Some(if args.rate > 0.0 {
        args.rate
    } else {
        publishes.per_s
    });
    step.resources = Some(run.watch.resources(&sample, publishes.accepted));
    step.notes.extend(run.watch.pinned_note(&sample));
    step.notes.push(format!(
        "{} connections, {topics} topics, {} rate",
        args.connections,
        if args.rate > 0.0 {
            format!("{} /s open-loop", args.rate)
        } else {
            "closed-loop".to_owned()
        }
    ));
    if let Some(note) = stats.refusal_note() {
        step.notes.push(format!("refused or failed: {note}"));
    }
    let ok = publishes.failed == 0 && publishes.accepted > 0;
    if publishes.accepted == 0 && publishes.sent > 0 {
        step.publishes = Some(publishes);
        run.output.step(step)?;
        return Err(Unusable("no publish was accepted".to_owned()).into());
    }
    step.publishes = Some(publishes);
    run.output.step(step)?;
    Ok(ok)
}
