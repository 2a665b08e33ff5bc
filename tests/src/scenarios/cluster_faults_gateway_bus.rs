//! FLT-06: one gateway cut from Redis while publishes flow through another. gw-1 reaches
//! Redis through a [`TcpProxy`] (its `--redis-url` names the proxy); the nodes and gw-0 reach
//! it directly. Two subscribers hold sockets on gw-1; a publisher publishes every 50 ms
//! through gw-0, so every event reaches gw-1 only over its Redis bus.
//!
//! Each cycle cuts gw-1 from Redis twice, for [`CUT`] each: first with
//! [`FaultMode::Reset`] (every connection reset, new ones too), then with
//! [`FaultMode::Blackhole`] (a partition: nothing forwarded, held bytes delivered when it
//! heals), each time healed with [`FaultMode::Pass`]. A gap is never silent (I2): each
//! subscriber either gets every acknowledged event once the cut heals (the gateway
//! resubscribes and backfills from the topic's stream) or has its socket closed with 1011
//! and subscribes again, missing only what the current context of its new subscription
//! supersedes ([`Gaps::SupersededAfter1011`]). The time from the heal until every
//! subscriber has everything it is due ("caught up") is printed per cut. Each of
//! [`cycles`] cycles takes a fresh topic.
//!
//! With the default stream (1024 envelopes per topic) the gateway backfills. The same
//! scenario on a stream cut to [`SHORT_STREAM`] envelopes (nodes with `--stream-max-len`,
//! Redis with `stream-node-max-entries 1` so the approximate trim is exact) cannot
//! backfill what a reset cut made gw-1 miss: there every subscriber must see its socket
//! closed with 1011 and subscribe again, and still miss nothing its new subscription does
//! not supersede.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use fhircast_proto::redis_schema::Role;
use tokio::time::Instant;

use super::{MSG, expect_id, publish};
use crate::cluster::{Cluster, ClusterBuilder, RedisTopology};
use crate::conformance::assert::event_name;
use crate::eventually::eventually;
use crate::faults::{
    Follower, Publisher, Route, budget, close_cycle, cycles, run_scenario, wait_steady,
};
use crate::invariants::{Gaps, History, Opening, spread};
use crate::payloads::random_topic;
use crate::proxy::{FaultMode, TcpProxy, with_address};
use crate::redis::RedisOptions;
use crate::subscriber::{ConnectError, Incoming, Subscriber};

/// How often the publisher publishes.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// Acknowledged publishes before each cut.
const STEADY: usize = 10;
/// How long each cut lasts: the fault itself. Shorter than the gateway's membership TTL
/// (1.5 s), so the nodes keep it in the cluster and only its bus is at stake; a longer
/// partition is [`flt06_a_partition_past_the_membership_ttl_leaves_one_socket_per_endpoint`].
const CUT: Duration = Duration::from_secs(1);
/// How long the test waits for steady publishing or a catch-up before it gives up.
const DEADLINE: Duration = Duration::from_secs(20);
/// Subscribers per cycle.
const SUBSCRIBERS: usize = 2;
/// What the subscribers obey: a 1011 lets them miss what their new subscription supersedes.
const GAPS: Gaps = Gaps::SupersededAfter1011;

/// Envelopes per topic stream in the short-stream variant: fewer than a cut misses.
const SHORT_STREAM: usize = 2;

/// Which stream the topics have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    /// The default: long enough to backfill a cut.
    Default,
    /// [`SHORT_STREAM`] envelopes: a reset cut cannot be backfilled.
    Short,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flt06_a_gateway_cut_from_redis_backfills_or_closes_with_1011() -> Result<()> {
    let cluster = ClusterBuilder::new().nodes(3).gateways(1).start().await?;
    let budget = budget(Duration::from_secs(30), Duration::from_secs(40));
    run_scenario(cluster, budget, async |cluster: &mut Cluster| {
        scenario(cluster, Stream::Default).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flt06_a_gap_the_stream_cannot_backfill_closes_with_1011() -> Result<()> {
    let redis = RedisOptions::new().directive("stream-node-max-entries 1");
    let cluster = ClusterBuilder::new()
        .topology(RedisTopology::Single(redis))
        .nodes(3)
        .gateways(1)
        .configure_nodes(|node| node.arg(format!("--stream-max-len={SHORT_STREAM}")))
        .start()
        .await?;
    let budget = budget(Duration::from_secs(30), Duration::from_secs(40));
    run_scenario(cluster, budget, async |cluster: &mut Cluster| {
        scenario(cluster, Stream::Short).await
    })
    .await
}

async fn scenario(cluster: &mut Cluster, stream: Stream) -> Result<()> {
    let proxy = TcpProxy::start(cluster.redis().address()).await?;
    let cut = cluster
        .add_gateway(&proxy.url_for(&cluster.redis().url()))
        .await?;
    let cycles = cycles();
    let mut catch_ups: Vec<(FaultMode, Duration)> = Vec::new();
    for cycle in 1..=cycles {
        let topic = random_topic();
        let history = History::new();
        let route = Route::through(cluster, &topic, &[cut], &[cut, 0])?;
        let followers =
            Follower::start_many(&history, "s", SUBSCRIBERS, &route, "Patient-open").await?;
        let publisher = Publisher::start(&history, cluster.client(0, &topic)?, PUBLISH_EVERY);
        let mut this_cycle = Vec::new();
        let cuts = async {
            for mode in [FaultMode::Reset, FaultMode::Blackhole] {
                let caught_up = cut_and_heal(&proxy, &history, &topic, mode, cycle).await?;
                this_cycle.push((mode, caught_up));
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        // Healed whatever happened, so the cycle's end can read Redis through gw-1.
        proxy.set_mode(FaultMode::Pass);
        publisher.stop().await?;
        cuts?;
        let report = close_cycle(cluster, &history, &topic, GAPS, followers).await?;
        let figures: Vec<String> = this_cycle
            .iter()
            .map(|(mode, took)| {
                format!("{mode:?} caught up {} ms after the heal", took.as_millis())
            })
            .collect();
        println!(
            "FLT-06 cycle {cycle}/{cycles} ({stream:?} stream): gw-1 cut from Redis for {} ms \
             twice: {}\n{report}",
            CUT.as_millis(),
            figures.join(", ")
        );
        report
            .ensure_ok()
            .with_context(|| format!("cycle {cycle}"))?;
        if stream == Stream::Short {
            expect_resubscribed_after_1011(&history)
                .with_context(|| format!("cycle {cycle}: the stream could not backfill"))?;
        }
        catch_ups.extend(this_cycle);
    }
    for mode in [FaultMode::Reset, FaultMode::Blackhole] {
        let times: Vec<Duration> = catch_ups
            .iter()
            .filter(|(cut, _)| *cut == mode)
            .map(|(_, took)| *took)
            .collect();
        println!(
            "FLT-06 ({stream:?} stream): caught up after a {mode:?} cut over {cycles} cycles: {}",
            spread(&times)
        );
    }
    Ok(())
}

/// Asserts every subscriber had a socket closed with 1011 and subscribed again.
fn expect_resubscribed_after_1011(history: &History) -> Result<()> {
    for log in history.subscribers() {
        let closed = log
            .sockets
            .iter()
            .filter(|socket| socket.ended.as_ref().is_some_and(|(_, end)| end.is_gap()))
            .count();
        let again = log
            .sockets
            .iter()
            .filter(|socket| socket.opening == Opening::Resubscribe)
            .count();
        ensure!(
            closed > 0 && again >= closed,
            "{}: {closed} sockets closed with 1011, {again} new subscriptions",
            log.name
        );
    }
    Ok(())
}

/// Waits for steady publishing, cuts gw-1 from Redis with `mode` for [`CUT`], heals it,
/// and returns how long after the heal every subscriber had everything it is due.
async fn cut_and_heal(
    proxy: &TcpProxy,
    history: &History,
    topic: &str,
    mode: FaultMode,
    cycle: usize,
) -> Result<Duration> {
    let what = format!("cycle {cycle}: steady publishing before the {mode:?} cut");
    wait_steady(history, topic, Instant::now(), STEADY, DEADLINE, &what).await?;
    let cut_at = Instant::now();
    proxy.set_mode(mode);
    // The cut is the fault: it lasts CUT.
    tokio::time::sleep_until(cut_at + CUT).await;
    proxy.set_mode(FaultMode::Pass);
    let healed_at = Instant::now();
    let what = format!("cycle {cycle}: every subscriber caught up after the {mode:?} cut");
    eventually(&what, DEADLINE, || async {
        let report = history.check(GAPS);
        let missing: usize = report
            .subscribers
            .iter()
            .map(|figures| figures.missing)
            .sum();
        Ok((missing == 0).then_some(()))
    })
    .await
    .map_err(|error| error.context(history.check(GAPS).to_string()))?;
    Ok(healed_at.elapsed())
}

/// How long the nodes wait for a lost socket before they raise its SyncError, in the
/// partition scenario.
const RECONNECT_GRACE: Duration = Duration::from_secs(1);

/// FLT-06, a partition longer than the membership TTL: gw-1 is cut from Redis (blackhole)
/// until every node has declared it gone, and for the reconnect grace after that, then the
/// partition heals. gw-1 never stopped: its socket for subscriber `s` stays open and keeps
/// delivering. The hub must not keep two views of that socket: either `s`'s socket is
/// closed (its client then re-attaches), or the hub still counts it as attached, so it
/// raises no SyncError about `s` and refuses a second socket on `s`'s endpoint (409).
///
/// The hub closes it: a gateway out of the membership for a whole TTL closes its sockets
/// with 1012 and refuses attaches until its heartbeats succeed again. (Before that, gw-1
/// kept `s`'s socket open after the nodes had detached it: a false SyncError about `s`,
/// and a second socket accepted on `s`'s endpoint through gw-0.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flt06_a_partition_past_the_membership_ttl_leaves_one_socket_per_endpoint() -> Result<()> {
    let cluster = ClusterBuilder::new()
        .nodes(3)
        .gateways(1)
        .reconnect_grace(RECONNECT_GRACE)
        .start()
        .await?;
    let budget = Duration::from_secs(60);
    run_scenario(cluster, budget, partition).await
}

async fn partition(cluster: &mut Cluster) -> Result<()> {
    let proxy = TcpProxy::start(cluster.redis().address()).await?;
    let cut = cluster
        .add_gateway(&proxy.url_for(&cluster.redis().url()))
        .await?;
    let topic = random_topic();
    let endpoint = cluster
        .client(cut, &topic)?
        .subscribe("Patient-open")
        .await?;
    let mut subscriber = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    let on_gw0 = cluster.client(0, &topic)?;
    let watching = on_gw0.subscribe("Patient-open,SyncError").await?;
    let mut watcher = Subscriber::connect_confirmed(&watching, MSG).await?;
    let a = publish(&on_gw0, "a").await?;
    expect_id(&mut subscriber, &a, "`a` on gw-1").await?;
    expect_id(&mut watcher, &a, "`a` on gw-0").await?;

    let logged: Vec<usize> = (0..cluster.nodes().len())
        .map(|node| cluster.node_log(node).len())
        .collect();
    proxy.set_mode(FaultMode::Blackhole);
    eventually("every node declares gw-1 gone", DEADLINE, || {
        let all = logged.iter().enumerate().all(|(node, from)| {
            cluster
                .node_log(node)
                .get(*from..)
                .is_some_and(|new| new.lines().any(|line| line.contains(GATEWAY_GONE)))
        });
        async move { Ok(all.then_some(())) }
    })
    .await?;
    // The partition is the fault: it lasts the reconnect grace longer.
    tokio::time::sleep(RECONNECT_GRACE).await;
    proxy.set_mode(FaultMode::Pass);
    cluster
        .wait_live(Role::Gateway, &[format!("gw-{cut}")])
        .await?;

    let b = publish(&on_gw0, "b").await?;
    match subscriber.next_incoming(MSG).await? {
        // The hub closed it: the client re-attaches as after any lost connection.
        Incoming::Closed(_) | Incoming::Ended(_) => return Ok(()),
        Incoming::Message(message) => ensure!(
            message["id"] == b.as_str(),
            "`s` got {message} instead of `b`"
        ),
    }
    let mut problems = Vec::new();
    loop {
        let message = watcher.next_event(MSG).await.context("the watcher's `b`")?;
        if message["id"] == b.as_str() {
            break;
        }
        if event_name(&message) == "SyncError" {
            problems.push(format!(
                "the watcher got a SyncError about `s`, whose socket on gw-1 is open and \
                 delivering: {message}"
            ));
        }
    }
    let second = with_address(&endpoint, cluster.gateway_address(0)?);
    match Subscriber::try_connect(&second).await {
        Err(ConnectError::Refused(409)) => {}
        Err(ConnectError::Refused(status)) => problems.push(format!(
            "a second attach of `s`'s endpoint answered {status}, not 409"
        )),
        Err(ConnectError::Other(error)) => return Err(error),
        Ok(_) => problems.push(
            "a second socket on `s`'s endpoint was accepted through gw-0 while its socket \
             on gw-1 is open and delivering"
                .to_owned(),
        ),
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

/// What a node logs when a gateway left the membership.
const GATEWAY_GONE: &str = "gateways left the cluster";
