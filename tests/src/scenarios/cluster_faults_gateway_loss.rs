//! FLT-02 / FLT-13: a gateway holding subscribers goes away while a publisher publishes
//! steadily (every 50 ms) through another gateway: killed with SIGKILL (FLT-02: its sockets
//! drop without a close frame) or drained with SIGTERM (FLT-13: its sockets close with
//! 1012).
//!
//! Three gateways: [`SUBSCRIBERS`] subscribers attach through gw-2, the victim; the
//! publisher publishes through gw-0. When gw-2 goes, each subscriber re-attaches its SAME
//! endpoint through gw-1 (then gw-0, in turn), retrying while the hub still counts the old
//! socket as attached (409: after a kill, until the nodes see gw-2 leave the membership,
//! about 1.5–2 s), and misses nothing published meanwhile: every acknowledged publish
//! reaches it in order, the re-attached socket starting with what it had not acknowledged
//! (I1–I3, no gap excused; re-deliveries are counted). The reconnect time of each
//! subscriber (from its socket's end to the re-attached socket's confirmation) is printed
//! and bounded: [`BACK_AFTER_KILL`], [`BACK_AFTER_DRAIN`]. After a kill the hub does not
//! know what the lost socket acknowledged, so the re-attached socket starts over from its
//! attach position (every earlier event comes again: duplicates); after a drain the
//! gateway reported what each socket acknowledged, and at most what was in flight comes
//! twice.
//! After each cycle gw-2 is started again (same id, new port); each of [`cycles`] cycles
//! takes a fresh topic.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use tokio::time::Instant;

use crate::cluster::{Cluster, ClusterBuilder};
use crate::eventually::eventually;
use crate::faults::{
    Follower, Publisher, RECONNECT_DEADLINE, Route, budget, close_cycle, cycles, run_scenario,
    wait_steady,
};
use crate::invariants::{Gaps, History, Opening, SocketEnd, spread};
use crate::payloads::random_topic;

/// How often the publisher publishes.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// Acknowledged publishes before the gateway goes and after every subscriber is back.
const STEADY: usize = 10;
/// How long the test waits for steady publishing before it gives up.
const DEADLINE: Duration = Duration::from_secs(20);
/// Subscribers on the victim per cycle.
const SUBSCRIBERS: usize = 3;
/// The gateway that goes (gw-2); gw-1 and gw-0 take its subscribers back.
const VICTIM: usize = 2;
/// The gateway the publisher publishes through.
const PUBLISHER: usize = 0;

/// The longest a subscriber may take to come back after a kill: the nodes see the
/// gateway leave the membership after its 1.5 s TTL, then the re-attach is accepted.
const BACK_AFTER_KILL: Duration = Duration::from_secs(4);
/// The longest a subscriber may take to come back after a drain: its socket is closed
/// (1012) and detached at once, so the first re-attach is accepted.
const BACK_AFTER_DRAIN: Duration = Duration::from_secs(1);

/// How the victim goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// SIGKILL: the sockets drop; the nodes detach them once the gateway leaves the
    /// membership.
    Kill,
    /// SIGTERM: the gateway drains, closing its sockets with 1012.
    Drain,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flt02_subscribers_of_a_killed_gateway_reattach_elsewhere_and_miss_nothing() -> Result<()> {
    let cluster = ClusterBuilder::new().nodes(3).gateways(3).start().await?;
    let budget = budget(Duration::from_secs(30), Duration::from_secs(30));
    run_scenario(cluster, budget, async |cluster: &mut Cluster| {
        scenario(cluster, Loss::Kill).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flt13_subscribers_of_a_drained_gateway_reattach_elsewhere_and_miss_nothing() -> Result<()>
{
    let cluster = ClusterBuilder::new().nodes(3).gateways(3).start().await?;
    let budget = budget(Duration::from_secs(30), Duration::from_secs(30));
    run_scenario(cluster, budget, async |cluster: &mut Cluster| {
        scenario(cluster, Loss::Drain).await
    })
    .await
}

async fn scenario(cluster: &mut Cluster, loss: Loss) -> Result<()> {
    let (name, expected_end, bound) = match loss {
        Loss::Kill => ("FLT-02", "dropped", BACK_AFTER_KILL),
        Loss::Drain => ("FLT-13", "1012", BACK_AFTER_DRAIN),
    };
    let cycles = cycles();
    let mut reconnects = Vec::new();
    for cycle in 1..=cycles {
        let topic = random_topic();
        let history = History::new();
        let route = Route::through(cluster, &topic, &[VICTIM, 1, 0], &[VICTIM])?;
        let followers =
            Follower::start_many(&history, "s", SUBSCRIBERS, &route, "Patient-open").await?;
        let publisher =
            Publisher::start(&history, cluster.client(PUBLISHER, &topic)?, PUBLISH_EVERY);
        let lost = lose_the_gateway(cluster, &history, &topic, loss, cycle).await;
        publisher.stop().await?;
        lost?;
        let report = close_cycle(cluster, &history, &topic, Gaps::Never, followers).await?;
        println!(
            "{name} cycle {cycle}/{cycles}: gw-{VICTIM} {} with {SUBSCRIBERS} subscribers; \
             each re-attached through another gateway\n{report}",
            match loss {
                Loss::Kill => "killed (SIGKILL)",
                Loss::Drain => "drained (SIGTERM)",
            }
        );
        report
            .ensure_ok()
            .with_context(|| format!("cycle {cycle}"))?;
        expect_ends(&history, loss)
            .with_context(|| format!("cycle {cycle}: sockets should end {expected_end}"))?;
        let slowest = report.reconnects().into_iter().max().unwrap_or_default();
        ensure!(
            slowest <= bound,
            "cycle {cycle}: a subscriber took {} ms to come back (≤ {} ms expected)",
            slowest.as_millis(),
            bound.as_millis()
        );
        reconnects.extend(report.reconnects());
        cluster.restart_gateway(VICTIM).await?;
    }
    println!(
        "{name}: reconnect time (socket end to re-attached confirmation) over {cycles} cycles: {}",
        spread(&reconnects)
    );
    Ok(())
}

/// Runs one cycle's fault: steady publishing, the loss of gw-2, every subscriber back
/// through another gateway, steady again.
async fn lose_the_gateway(
    cluster: &mut Cluster,
    history: &History,
    topic: &str,
    loss: Loss,
    cycle: usize,
) -> Result<()> {
    let what = format!("cycle {cycle}: steady publishing");
    wait_steady(history, topic, Instant::now(), STEADY, DEADLINE, &what).await?;
    match loss {
        Loss::Kill => cluster.kill_gateway(VICTIM).await?,
        Loss::Drain => cluster.drain_gateway(VICTIM).await?,
    }
    let what = format!("cycle {cycle}: every subscriber re-attached");
    eventually(&what, RECONNECT_DEADLINE, || async {
        let back = history.subscribers().iter().all(|log| {
            log.gave_up.is_none()
                && log
                    .sockets
                    .last()
                    .is_some_and(|socket| socket.opening == Opening::Reattach)
        });
        Ok(back.then_some(()))
    })
    .await?;
    let what = format!("cycle {cycle}: steady publishing after the re-attaches");
    wait_steady(history, topic, Instant::now(), STEADY, DEADLINE, &what).await
}

/// Asserts every subscriber's first socket ended the way `loss` ends it (dropped, or 1012),
/// and the re-attached one went through another gateway.
fn expect_ends(history: &History, loss: Loss) -> Result<()> {
    for log in history.subscribers() {
        let first = log.sockets.first().context("no socket")?;
        let end = first.ended.as_ref().map(|(_, end)| end);
        let fitting = match loss {
            Loss::Kill => matches!(end, Some(SocketEnd::Dropped(_))),
            Loss::Drain => end == Some(&SocketEnd::Closed(Some(1012))),
        };
        ensure!(fitting, "{}'s socket on the victim ended {end:?}", log.name);
        ensure!(
            log.sockets.len() == 2,
            "{} has {} sockets, expected its first and one re-attached",
            log.name,
            log.sockets.len()
        );
    }
    Ok(())
}
