//! FLT-01 / P8 / P3: kill -9 the node owning a topic while a publisher publishes to it
//! steadily (every 50 ms, through a gateway). Another node takes the topic over and
//! publishes succeed again within 2 s of the kill (the gap from the kill to the first
//! successful publish answered after the node is dead, be it the one in flight at the kill
//! or a later one, is measured and printed); every publish that
//! got a 2xx reaches the subscriber (on another gateway) in order, without a gap, although
//! the owner changed under it. Three cycles of kill, recovery, and restart of the killed
//! node with its id.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::MSG;
use crate::client::HubClient;
use crate::cluster::{Cluster, ClusterBuilder};
use crate::conformance::assert::id_of;
use crate::eventually::eventually;
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::Subscriber;

/// How often the publisher publishes.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// How long one publish may take before it counts as indeterminate.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// The most publishes the publisher makes (bounds the test if a cycle stalls).
const MAX_PUBLISHES: usize = 1000;
/// Kill, recover, restart cycles.
const CYCLES: usize = 3;
/// Successful publishes before each kill and after each restart.
const STEADY: usize = 10;
/// P8: publishing recovers within this long after the owner dies.
const RECOVERY: Duration = Duration::from_secs(2);
/// How long the test waits for a recovery before it gives up (to report the gap).
const RECOVERY_DEADLINE: Duration = Duration::from_secs(15);
/// The whole scenario, cluster start and stop included.
const BUDGET: Duration = Duration::from_secs(90);

/// One publish and what came of it.
#[derive(Debug, Clone)]
pub(super) struct Attempt {
    pub(super) id: String,
    pub(super) sent: Instant,
    pub(super) done: Instant,
    /// The HTTP status, or why there was none (timeout, connection error).
    pub(super) outcome: Result<u16, String>,
}

impl Attempt {
    pub(super) fn succeeded(&self) -> bool {
        self.outcome
            .as_ref()
            .is_ok_and(|status| (200..300).contains(status))
    }
}

/// Every publish attempt, in order (the n-th opened patient `p-{n}`).
pub(super) type Log = Arc<Mutex<Vec<Attempt>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flt01_p8_killing_the_owner_keeps_publishes_flowing_without_a_gap() -> Result<()> {
    let mut cluster = ClusterBuilder::new().nodes(3).gateways(2).start().await?;
    let outcome = match tokio::time::timeout(BUDGET, scenario(&mut cluster)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow::anyhow!("the scenario took longer than {BUDGET:?}")),
    };
    if outcome.is_err() {
        eprintln!("{}", cluster.logs_tail());
    }
    outcome?;
    cluster.stop().await
}

async fn scenario(cluster: &mut Cluster) -> Result<()> {
    let topic = random_topic();
    let mut subscriber = {
        let endpoint = cluster.client(0, &topic)?.subscribe("Patient-open").await?;
        Subscriber::connect_confirmed(&endpoint, MSG).await?
    };
    let log: Log = Arc::default();
    let stop = CancellationToken::new();
    let publisher = tokio::spawn(publish_steadily(
        cluster.client(1, &topic)?,
        Arc::clone(&log),
        stop.clone(),
    ));

    let mut gaps = Vec::new();
    let cycles = async {
        for cycle in 0..CYCLES {
            gaps.push(kill_the_owner(cluster, &topic, &log, cycle).await?);
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    stop.cancel();
    publisher.await.context("the publisher task")?;
    cycles?;

    let attempts = log.lock().map(|log| log.clone()).unwrap_or_default();
    let acked: Vec<&str> = attempts
        .iter()
        .filter(|attempt| attempt.succeeded())
        .map(|attempt| attempt.id.as_str())
        .collect();
    let failed = attempts.len() - acked.len();
    let received = receive_until(&mut subscriber, &acked).await?;
    println!(
        "node loss: recovery after kill -9 of the owner: {}; {} publishes, {} acknowledged, \
         {failed} refused or indeterminate, {} distinct events received",
        gaps.iter()
            .map(|gap: &Duration| format!("{} ms", gap.as_millis()))
            .collect::<Vec<_>>()
            .join(", "),
        attempts.len(),
        acked.len(),
        received.len()
    );
    expect_in_order_without_gap(&acked, &received, &attempts)?;
    for (cycle, gap) in gaps.iter().enumerate() {
        ensure!(
            *gap <= RECOVERY,
            "cycle {cycle}: publishes succeeded again {} ms after the kill (P8: ≤ {} ms)",
            gap.as_millis(),
            RECOVERY.as_millis()
        );
    }
    Ok(())
}

/// Publishes a Patient-open every [`PUBLISH_EVERY`], one at a time, until `stop` or
/// [`MAX_PUBLISHES`], logging each attempt.
pub(super) async fn publish_steadily(client: HubClient, log: Log, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(PUBLISH_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for n in 0..MAX_PUBLISHES {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let event = patient_open(client.topic(), &format!("p-{n}"));
        let sent = Instant::now();
        let outcome = match tokio::time::timeout(PUBLISH_TIMEOUT, client.publish(&event)).await {
            Ok(Ok(reply)) => Ok(reply.status),
            Ok(Err(error)) => Err(format!("{error:#}")),
            Err(_) => Err(format!("no answer within {PUBLISH_TIMEOUT:?}")),
        };
        let attempt = Attempt {
            id: id_of(&event).to_owned(),
            sent,
            done: Instant::now(),
            outcome,
        };
        if let Ok(mut log) = log.lock() {
            log.push(attempt);
        }
    }
}

/// Returns how many publishes sent at or after `since` succeeded.
fn successes_sent_since(log: &Log, since: Instant) -> usize {
    log.lock().map_or(0, |log| {
        log.iter()
            .filter(|attempt| attempt.sent >= since && attempt.succeeded())
            .count()
    })
}

/// Returns when the first publish answered at or after `since` with a success was answered.
fn first_success_answered_since(log: &Log, since: Instant) -> Option<Instant> {
    let log = log.lock().ok()?;
    log.iter()
        .find(|attempt| attempt.done >= since && attempt.succeeded())
        .map(|attempt| attempt.done)
}

/// Waits for [`STEADY`] successes sent at or after `since`.
async fn wait_steady(log: &Log, since: Instant, what: &str) -> Result<()> {
    eventually(what, RECOVERY_DEADLINE, || async {
        Ok((successes_sent_since(log, since) >= STEADY).then_some(()))
    })
    .await
    .map_err(|error| error.context(last_failures(log)))
}

/// Runs one cycle: steady publishing, kill -9 of the owner, recovery (returns the gap from
/// the kill to the first success answered once the node was dead), restart of the killed
/// node, steady again.
async fn kill_the_owner(
    cluster: &mut Cluster,
    topic: &str,
    log: &Log,
    cycle: usize,
) -> Result<Duration> {
    let started = Instant::now();
    wait_steady(log, started, &format!("cycle {cycle}: steady publishing")).await?;
    let owner = cluster
        .owner(topic)
        .await?
        .context("the topic has no owner while it is published to")?;
    let index = cluster
        .node_index(&owner)
        .with_context(|| format!("the owner `{owner}` is not a node"))?;
    let killed_at = Instant::now();
    cluster.nodes_mut()[index].kill_9().await?;
    // kill_9 returns once the process is reaped: what succeeds from now on, another node
    // accepted.
    let dead_at = Instant::now();
    let recovered = eventually(
        &format!("cycle {cycle}: a publish succeeds after the kill of {owner}"),
        RECOVERY_DEADLINE,
        || async { Ok(first_success_answered_since(log, dead_at)) },
    )
    .await
    .map_err(|error| error.context(last_failures(log)))?;
    let gap = recovered.duration_since(killed_at);
    let new_owner = cluster.owner(topic).await?;
    if new_owner.as_deref() == Some(owner.as_str()) {
        bail!("cycle {cycle}: the killed node {owner} still holds the lease after recovery");
    }
    cluster.restart_node(index).await?;
    let restarted = Instant::now();
    wait_steady(
        log,
        restarted,
        &format!("cycle {cycle}: steady publishing after {owner} restarted"),
    )
    .await?;
    Ok(gap)
}

/// Describes the last failed publishes, for failure messages.
pub(super) fn last_failures(log: &Log) -> String {
    let Ok(log) = log.lock() else {
        return String::new();
    };
    let failures: Vec<String> = log
        .iter()
        .filter(|attempt| !attempt.succeeded())
        .rev()
        .take(5)
        .map(|attempt| format!("{:?}", attempt.outcome))
        .collect();
    format!("last failed publishes (newest first): {failures:?}")
}

/// Reads events until every id in `acked` has arrived; returns the distinct ids in arrival
/// order (a re-delivery keeps its first place).
async fn receive_until(subscriber: &mut Subscriber, acked: &[&str]) -> Result<Vec<String>> {
    let mut missing: HashSet<&str> = acked.iter().copied().collect();
    let mut seen = HashSet::new();
    let mut received = Vec::new();
    while !missing.is_empty() {
        let event = subscriber.next_event(MSG).await.with_context(|| {
            format!(
                "{} acknowledged events never arrived (after {} distinct ones)",
                missing.len(),
                received.len()
            )
        })?;
        let id = id_of(&event).to_owned();
        missing.remove(id.as_str());
        if seen.insert(id.clone()) {
            received.push(id);
        }
    }
    Ok(received)
}

/// Asserts the acknowledged ids arrived in publish order and that nothing arrived that was
/// never published; refused or indeterminate publishes may have arrived or not.
fn expect_in_order_without_gap(
    acked: &[&str],
    received: &[String],
    attempts: &[Attempt],
) -> Result<()> {
    let published: HashSet<&str> = attempts.iter().map(|attempt| attempt.id.as_str()).collect();
    if let Some(stranger) = received.iter().find(|id| !published.contains(id.as_str())) {
        bail!("received an event that was never published: {stranger}");
    }
    let acked_set: HashSet<&str> = acked.iter().copied().collect();
    let arrived: Vec<&str> = received
        .iter()
        .map(String::as_str)
        .filter(|id| acked_set.contains(id))
        .collect();
    if let Some(at) = arrived
        .iter()
        .zip(acked)
        .position(|(got, want)| got != want)
    {
        bail!(
            "acknowledged events out of order at position {at}: got {}, expected {}",
            arrived[at],
            acked[at]
        );
    }
    ensure!(
        arrived.len() == acked.len(),
        "{} of {} acknowledged events arrived",
        arrived.len(),
        acked.len()
    );
    Ok(())
}
