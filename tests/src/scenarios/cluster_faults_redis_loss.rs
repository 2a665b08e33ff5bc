//! FLT-10 / P7: kill -9 Redis (AOF with `appendfsync always`) while a publisher publishes
//! steadily (every 50 ms, through gw-1), then restart it on the same port and data.
//!
//! While Redis is down the hub fails closed: every publish sent after the kill and
//! answered before the restart is refused with 503 and a `Retry-After` header — none is
//! acknowledged, none hangs; how long the first 503 took after the kill is printed (a
//! gateway whose own heartbeats into Redis fail answers at once instead of retrying). The
//! test keeps Redis down until at least one such 503 came back. After the restart publishing
//! resumes (the time from the restart to the first acknowledged publish is printed), and
//! nothing acknowledged was lost: the topic's accepted ids hold every acknowledged publish
//! once and in order (I4), Get Current Context through both gateways shows the last
//! acknowledged open, and two subscribers on gw-0 got every acknowledged event in order,
//! or had their socket closed with 1011 and subscribed again (I1–I3, with
//! [`Gaps::SupersededAfter1011`]: what a 1011 made them miss is superseded by the current
//! context their new subscription starts with). Each of [`cycles`] cycles takes a fresh
//! topic.

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;
use tokio::time::Instant;

use crate::cluster::{Cluster, ClusterBuilder};
use crate::eventually::eventually;
use crate::faults::{
    Follower, Publisher, Route, budget, close_cycle, cycles, run_scenario, wait_first_ack,
    wait_steady,
};
use crate::invariants::{Gaps, History, Outcome, Publish, spread};
use crate::payloads::random_topic;

/// How often the publisher publishes.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// Acknowledged publishes before the kill and after the restart.
const STEADY: usize = 10;
/// How long the test waits for steady publishing, a 503 or a recovery before it gives up.
const DEADLINE: Duration = Duration::from_secs(20);
/// Subscribers per cycle.
const SUBSCRIBERS: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flt10_p7_losing_redis_fails_closed_and_loses_nothing_acknowledged() -> Result<()> {
    let cluster = ClusterBuilder::new().nodes(3).gateways(2).start().await?;
    let budget = budget(Duration::from_secs(30), Duration::from_secs(40));
    run_scenario(cluster, budget, scenario).await
}

async fn scenario(cluster: &mut Cluster) -> Result<()> {
    let cycles = cycles();
    let (mut refused_after, mut resumed) = (Vec::new(), Vec::new());
    for cycle in 1..=cycles {
        let topic = random_topic();
        let history = History::new();
        let route = Route::through(cluster, &topic, &[0, 1], &[0, 1])?;
        let followers =
            Follower::start_many(&history, "s", SUBSCRIBERS, &route, "Patient-open").await?;
        let publisher = Publisher::start(&history, cluster.client(1, &topic)?, PUBLISH_EVERY);
        let outage = lose_redis(cluster, &history, &topic, cycle).await;
        publisher.stop().await?;
        let outage = outage?;
        let report = close_cycle(
            cluster,
            &history,
            &topic,
            Gaps::SupersededAfter1011,
            followers,
        )
        .await?;
        println!(
            "FLT-10 cycle {cycle}/{cycles}: Redis down {} ms; first 503 {} ms after the kill; \
             publishes answered meanwhile: {}, all 503 with Retry-After; first acknowledged \
             publish {} ms after the restart\n{report}",
            outage.down.as_millis(),
            outage.first_refusal.as_millis(),
            outage.refused,
            outage.resumed.as_millis()
        );
        report
            .ensure_ok()
            .with_context(|| format!("cycle {cycle}"))?;
        expect_last_open_in_context(cluster, &history, &topic)
            .await
            .with_context(|| format!("cycle {cycle}"))?;
        refused_after.push(outage.first_refusal);
        resumed.push(outage.resumed);
    }
    println!(
        "FLT-10 over {cycles} cycles: first 503 after the kill {}; first acknowledged publish \
         after the restart {}",
        spread(&refused_after),
        spread(&resumed)
    );
    Ok(())
}

/// What one outage looked like.
struct Outage {
    /// From the kill to the restart (Redis answering again).
    down: Duration,
    /// From the kill to the first 503 answered.
    first_refusal: Duration,
    /// Publishes answered while Redis was down (all 503 with `Retry-After`).
    refused: usize,
    /// From the restart to the first acknowledged publish answered after it.
    resumed: Duration,
}

/// Runs one cycle's fault: steady publishing, kill -9 of Redis, a 503 with `Retry-After`,
/// restart on the same data, recovery, steady again.
async fn lose_redis(
    cluster: &mut Cluster,
    history: &History,
    topic: &str,
    cycle: usize,
) -> Result<Outage> {
    let what = format!("cycle {cycle}: steady publishing");
    wait_steady(history, topic, Instant::now(), STEADY, DEADLINE, &what).await?;
    let killed_at = Instant::now();
    cluster.redis_mut().kill_9().await?;
    let what = format!("cycle {cycle}: a publish is refused while Redis is down");
    let first_refused = eventually(&what, DEADLINE, || async {
        Ok(answered_between(history, topic, killed_at, Instant::now())
            .iter()
            .filter(|publish| matches!(publish.outcome, Outcome::Refused { .. }))
            .map(|publish| publish.done)
            .min())
    })
    .await
    .map_err(|error| error.context(history.last_failures(5)))?;
    let restarting_at = Instant::now();
    cluster.redis_mut().restart().await?;
    let restarted_at = Instant::now();

    // Fail closed: whatever was sent after the kill and answered before Redis came back is
    // a 503 with Retry-After.
    let meanwhile = answered_between(history, topic, killed_at, restarting_at);
    let wrong: Vec<String> = meanwhile
        .iter()
        .filter(|publish| {
            !matches!(
                &publish.outcome,
                Outcome::Refused { status: 503, retry_after: Some(after) } if !after.is_empty()
            )
        })
        .map(|publish| format!("{:?}", publish.outcome))
        .collect();
    ensure!(
        wrong.is_empty(),
        "cycle {cycle}: publishes answered while Redis was down that were not a 503 with \
         Retry-After (P7: fail closed): {wrong:?}"
    );

    let what = format!("cycle {cycle}: a publish is acknowledged after the Redis restart");
    let first = wait_first_ack(history, topic, restarted_at, DEADLINE, &what).await?;
    let what = format!("cycle {cycle}: steady publishing after the Redis restart");
    wait_steady(history, topic, Instant::now(), STEADY, DEADLINE, &what).await?;
    Ok(Outage {
        down: restarted_at.duration_since(killed_at),
        first_refusal: first_refused.duration_since(killed_at),
        refused: meanwhile.len(),
        resumed: first.duration_since(restarted_at),
    })
}

/// Returns the publishes to `topic` sent at or after `from` and answered before `to`.
fn answered_between(history: &History, topic: &str, from: Instant, to: Instant) -> Vec<Publish> {
    history
        .publishes(topic)
        .into_iter()
        .filter(|publish| publish.sent >= from && publish.done < to)
        .collect()
}

/// Asserts Get Current Context through every gateway shows the patient of the last
/// acknowledged publish (the publisher has stopped; a later publish without an
/// acknowledgement may have won instead).
async fn expect_last_open_in_context(
    cluster: &Cluster,
    history: &History,
    topic: &str,
) -> Result<()> {
    let publishes = history.publishes(topic);
    let Some(last_acked) = publishes.iter().rposition(Publish::acked) else {
        bail!("no publish was acknowledged");
    };
    let allowed: Vec<&str> = publishes[last_acked..]
        .iter()
        .filter_map(|publish| patient_of(&publish.event))
        .collect();
    for gateway in 0..cluster.gateways().len() {
        let context = cluster.client(gateway, topic)?.context().await?;
        let shown = patient_of(&context);
        ensure!(
            shown.is_some_and(|patient| allowed.contains(&patient)),
            "the context through gw-{gateway} shows {shown:?}, not the last acknowledged open \
             {:?}: {context}",
            allowed.first()
        );
    }
    Ok(())
}

/// Returns the id of the Patient in a Patient-open request or in a current context.
fn patient_of(message: &Value) -> Option<&str> {
    let items = message
        .pointer("/event/context")
        .or_else(|| message.get("context"))?
        .as_array()?;
    items
        .iter()
        .find(|item| item.get("key").and_then(Value::as_str) == Some("patient"))?
        .pointer("/resource/id")?
        .as_str()
}
