//! `storm` (S3): N subscriptions across T topics connect with K in flight; one `connect`
//! step with subscriptions bound per second and the subscribe-to-confirmation latency.

use std::sync::Arc;

use anyhow::Result;

use super::cli::StormArgs;
use super::connect::connect_all;
use super::ledger::Ledger;
use super::subscriber::{Plan, Shared};
use super::{Run, Unusable};

pub async fn run(run: &mut Run, args: StormArgs) -> Result<bool> {
    let topics = args
        .topics
        .unwrap_or(args.subscriptions / 2)
        .clamp(1, args.subscriptions.max(1));
    let per_topic = args.subscriptions.div_ceil(topics);
    let per_token = run.common.subscriptions_per_token;
    let tokens = run
        .tokens
        .topics(&run.http, topics, per_topic, per_token)
        .await
        .map_err(|err| Unusable(format!("getting topics and tokens: {err:#}")))?;
    let plans: Vec<Plan> = (0..args.subscriptions)
        .map(|index| {
            let topic = index % topics;
            Plan {
                index,
                topic_index: topic as u32,
                topic: tokens[topic].name.clone(),
                token: tokens[topic].subscriber(index / topics, per_token),
            }
        })
        .collect();
    let subs: Vec<u32> = plans.iter().map(|plan| plan.topic_index).collect();
    let ledger = Arc::new(Ledger::new(run.epoch, topics, &subs));
    let shared = Arc::new(Shared {
        target: run.target.clone(),
        http: run.http.clone(),
        tls: run.tls.clone(),
        source_addrs: run.common.source_addrs.clone(),
        allow_remote: run.common.allow_remote,
        ack: true,
        ledger,
    });
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
