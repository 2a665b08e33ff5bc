//! `storm` (S3): N subscriptions across T topics connect with K in flight; one `connect`
//! step with subscriptions bound per second and the subscribe-to-confirmation latency.

use anyhow::Result;

use super::cli::StormArgs;
use super::connect::{connect_all, plan_subscribers};
use super::receive::Acks;
use super::{Run, Unusable};

pub async fn run(run: &mut Run, args: StormArgs) -> Result<bool> {
    let topics = args
        .topics
        .unwrap_or(args.subscriptions / 2)
        .clamp(1, args.subscriptions.max(1));
    let per_topic = args.subscriptions.div_ceil(topics);
    let planned =
        plan_subscribers(run, topics, per_topic, args.subscriptions, Acks::IMMEDIATE).await?;
    let (plans, shared) = (planned.plans, planned.shared);
    let sample = run.watch.sample();
    let connected = connect_all(&shared, plans, args.in_flight, run.left(), run.common.quiet).await;
    let mut step = run.step("S3", "connect");
    step.duration_s = connected.elapsed.as_secs_f64();
    step.resources = Some(run.watch.resources(&sample, connected.bound));
    step.notes.extend(run.watch.pinned_note(&sample));
    let connect = connected.connect();
    step.latency_us = Some(connect.latency_us.clone());
    let ok = connect.failed == 0 && connect.attempted > 0;
    step.notes.push(format!(
        "{} subscriptions over {topics} topics, {} in flight: {:.0} bound/s",
        args.subscriptions, args.in_flight, connect.per_s
    ));
    for error in &connected.errors {
        step.notes.push(format!("failed: {error}"));
    }
    if connect.bound == 0 {
        connected.abort();
        let why = connected.errors.first().cloned().unwrap_or_default();
        step.connect = Some(connect);
        run.output.step(step)?;
        return Err(Unusable(format!("no subscription could be bound: {why}")).into());
    }
    step.connect = Some(connect);
    run.output.step(step)?;
    connected.abort();
    Ok(ok)
}
