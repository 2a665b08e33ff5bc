//! The connection phase shared by `fanout` and `storm`: every planned subscriber is
//! spawned, at most `in_flight` of them between subscribe and confirmation at once, and
//! the phase ends when each is bound or has failed (or the run's time is up).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::latency;
use super::ledger::Ledger;
use super::receive::Acks;
use super::subscriber::{self, Control, Outcome, Plan, Shared};
use super::tokens::TopicTokens;
use super::{Run, Unusable};
use crate::results::Connect;

/// The subscribers of a run and how their connection went.
#[derive(Debug)]
pub struct Connected {
    pub tasks: Vec<JoinHandle<()>>,
    pub controls: Vec<Arc<Control>>,
    pub bound: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    /// A few failure reasons, for the notes.
    pub errors: Vec<String>,
    pub in_flight: u64,
}

impl Connected {
    pub fn connect(&self) -> Connect {
        let attempted = self.tasks.len() as u64;
        let seconds = self.elapsed.as_secs_f64();
        Connect {
            attempted,
            bound: self.bound,
            failed: attempted - self.bound,
            per_s: if seconds > 0.0 {
                self.bound as f64 / seconds
            } else {
                0.0
            },
            in_flight: self.in_flight,
            latency_us: latency::summary(&self.latency),
        }
    }

    /// Stops every subscriber (their sockets close).
    pub fn abort(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Connects every planned subscriber.
pub async fn connect_all(
    shared: &Arc<Shared>,
    plans: Vec<Plan>,
    in_flight: usize,
    time_left: Duration,
    quiet: bool,
) -> Connected {
    let permits = Arc::new(Semaphore::new(in_flight.max(1)));
    let (sender, mut outcomes) = mpsc::unbounded_channel::<Outcome>();
    let started = Instant::now();
    let total = plans.len();
    let mut tasks = Vec::with_capacity(total);
    let mut controls = Vec::with_capacity(total);
    for plan in plans {
        let control = Arc::new(Control::default());
        controls.push(control.clone());
        tasks.push(tokio::spawn(subscriber::run(
            plan,
            shared.clone(),
            control,
            permits.clone(),
            sender.clone(),
        )));
    }
    drop(sender);
    let mut connected = Connected {
        tasks,
        controls,
        bound: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latency: latency::histogram(),
        errors: Vec::new(),
        in_flight: in_flight.min(total) as u64,
    };
    let until = tokio::time::Instant::now() + time_left;
    let mut last_report = Instant::now();
    while connected.bound + connected.failed < total as u64 {
        let Ok(Some(outcome)) = tokio::time::timeout_at(until, outcomes.recv()).await else {
            break;
        };
        match outcome.result {
            Ok(took) => {
                connected.bound += 1;
                latency::record(&mut connected.latency, took.as_micros() as u64);
            }
            Err(why) => {
                connected.failed += 1;
                if connected.errors.len() < 5 {
                    connected.errors.push(why);
                }
            }
        }
        if !quiet && last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            eprintln!(
                "connect: {} bound, {} failed of {total}",
                connected.bound, connected.failed
            );
        }
    }
    connected.elapsed = started.elapsed();
    connected
}

/// The subscriptions a scenario opens, before any is connected.
#[derive(Debug)]
pub struct Planned {
    /// Each topic with its publisher's and subscribers' tokens.
    pub tokens: Vec<TopicTokens>,
    pub plans: Vec<Plan>,
    pub ledger: Arc<Ledger>,
    pub shared: Arc<Shared>,
}

/// Plans `count` subscriptions spread round-robin over `topics` topics (`per_topic` each at
/// most), with tokens from the run's token source, and what their tasks share.
pub async fn plan_subscribers(
    run: &Run,
    topics: usize,
    per_topic: usize,
    count: usize,
    acks: Acks,
) -> anyhow::Result<Planned> {
    let per_token = run.common.subscriptions_per_token;
    let tokens = run
        .tokens
        .topics(&run.http, topics, per_topic, per_token)
        .await
        .map_err(|err| Unusable(format!("getting topics and tokens: {err:#}")))?;
    let plans: Vec<Plan> = (0..count)
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
        acks,
        ledger: Arc::clone(&ledger),
    });
    Ok(Planned {
        tokens,
        plans,
        ledger,
        shared,
    })
}
