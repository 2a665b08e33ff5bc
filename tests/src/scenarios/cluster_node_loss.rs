//! FLT-01 / P8 / P3: kill -9 the node owning a topic while a publisher publishes to it
//! steadily (every 50 ms, through gw-1). Another node takes the topic over and publishes
//! succeed again within 2 s of the kill (the gap from the kill to the first successful
//! publish answered after the node is dead, be it the one in flight at the kill or a later
//! one, is measured and printed). A subscriber on gw-0 gets every acknowledged publish in
//! order without a gap although the owner changed under it, and the topic's state holds
//! each of them once ([`crate::invariants`], no gap excused). Each of [`cycles`] cycles
//! takes a fresh topic: kill, recovery, restart of the killed node with its id, steady
//! publishing again, then the check.

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use tokio::time::Instant;

use crate::cluster::{Cluster, ClusterBuilder};
use crate::faults::{
    Follower, Publisher, Route, budget, close_cycle, cycles, run_scenario, wait_first_ack,
    wait_steady,
};
use crate::invariants::{Gaps, History, spread};
use crate::payloads::random_topic;

/// How often the publisher publishes.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// Successful publishes before each kill and after each restart.
const STEADY: usize = 10;
/// P8: publishing recovers within this long after the owner dies.
const RECOVERY: Duration = Duration::from_secs(2);
/// How long the test waits for a recovery before it gives up (to report the gap).
const RECOVERY_DEADLINE: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flt01_p8_killing_the_owner_keeps_publishes_flowing_without_a_gap() -> Result<()> {
    let cluster = ClusterBuilder::new().nodes(3).gateways(2).start().await?;
    let budget = budget(Duration::from_secs(30), Duration::from_secs(30));
    run_scenario(cluster, budget, scenario).await
}

async fn scenario(cluster: &mut Cluster) -> Result<()> {
    let cycles = cycles();
    let mut gaps = Vec::new();
    for cycle in 1..=cycles {
        let topic = random_topic();
        let history = History::new();
        let route = Route::through(cluster, &topic, &[0], &[0])?;
        let follower = Follower::start(&history, "s", route, "Patient-open").await?;
        let publisher = Publisher::start(&history, cluster.client(1, &topic)?, PUBLISH_EVERY);
        let gap = kill_the_owner(cluster, &history, &topic, cycle).await;
        publisher.stop().await?;
        let gap = gap?;
        let report = close_cycle(cluster, &history, &topic, Gaps::Never, vec![follower]).await?;
        println!(
            "FLT-01 cycle {cycle}/{cycles}: publishing recovered {} ms after kill -9 of the owner\n{report}",
            gap.as_millis()
        );
        report
            .ensure_ok()
            .with_context(|| format!("cycle {cycle}"))?;
        ensure!(
            gap <= RECOVERY,
            "cycle {cycle}: publishes succeeded again {} ms after the kill (P8: ≤ {} ms)",
            gap.as_millis(),
            RECOVERY.as_millis()
        );
        gaps.push(gap);
    }
    println!(
        "FLT-01: recovery after kill -9 of the owner over {cycles} cycles: {}",
        spread(&gaps)
    );
    Ok(())
}

/// Runs one cycle: steady publishing, kill -9 of the owner, recovery (returns the gap from
/// the kill to the first success answered once the node was dead), restart of the killed
/// node, steady again.
async fn kill_the_owner(
    cluster: &mut Cluster,
    history: &History,
    topic: &str,
    cycle: usize,
) -> Result<Duration> {
    let started = Instant::now();
    let what = format!("cycle {cycle}: steady publishing");
    wait_steady(history, topic, started, STEADY, RECOVERY_DEADLINE, &what).await?;
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
    let what = format!("cycle {cycle}: a publish succeeds after the kill of {owner}");
    let recovered = wait_first_ack(history, topic, dead_at, RECOVERY_DEADLINE, &what).await?;
    let gap = recovered.duration_since(killed_at);
    let new_owner = cluster.owner(topic).await?;
    if new_owner.as_deref() == Some(owner.as_str()) {
        bail!("cycle {cycle}: the killed node {owner} still holds the lease after recovery");
    }
    cluster.restart_node(index).await?;
    let restarted = Instant::now();
    let what = format!("cycle {cycle}: steady publishing after {owner} restarted");
    wait_steady(history, topic, restarted, STEADY, RECOVERY_DEADLINE, &what).await?;
    Ok(gap)
}
