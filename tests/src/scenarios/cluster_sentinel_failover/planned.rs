//! (a) A planned failover (`SENTINEL FAILOVER`) under steady publishing.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::time::Instant;

use super::app::{App, Current, Replay, closes, resubscriptions, silent_skips};
use super::evidence::{nodes_logging, verdict};
use super::sentinel::{other_server, role, sentinel_set, server_at, signed_ms};
use super::{RECOVERY_DEADLINE, ROLLBACK_WARNING, STEADY};
use crate::cluster::Cluster;
use crate::eventually::eventually;
use crate::faults::{self, Publisher};
use crate::invariants::{History, Publish};
use crate::payloads::random_topic;
use crate::redis::RedisSentinelSet;

/// How often the publisher publishes.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// What the planned failover scenario holds the hub to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strictness {
    /// What the app sees: no skip on a socket; a resubscription starts wherever the hub says.
    AsTheAppSees,
    /// Also: the store keeps every acknowledged event, and a resubscription starts at the
    /// last acknowledged event, not before.
    NothingLost,
}

pub(super) async fn planned_failover(cluster: &mut Cluster, strictness: Strictness) -> Result<()> {
    let topic = random_topic();
    let app = App::start(cluster.client(0, &topic)?).await?;
    let history = History::new();
    let publisher = Publisher::start(&history, cluster.client(1, &topic)?, PUBLISH_EVERY);
    let failover = async {
        let what = "steady publishing before the failover";
        wait_steady(&history, &topic, Instant::now(), what).await?;
        let set = sentinel_set(cluster)?;
        let old = set.primary_address().await?;
        let new = other_server(set, old)?;
        let commanded = Instant::now();
        let (settled, promoted) = tokio::join!(set.failover(), promoted_at(set, new));
        settled?;
        let promoted = promoted?;
        let settled = Instant::now();
        let what = "steady publishing after the failover";
        wait_steady(&history, &topic, settled, what).await?;
        Ok::<_, anyhow::Error>((commanded, promoted, settled))
    }
    .await;
    publisher.stop().await?;
    let (commanded, promoted, settled) = failover?;

    let attempts = history.publishes(&topic);
    let acked: Vec<String> = attempts
        .iter()
        .filter(|attempt| attempt.acked())
        .map(|attempt| attempt.id.clone())
        .collect();
    let published: HashSet<String> = attempts.iter().map(|attempt| attempt.id.clone()).collect();
    let last = acked.last().context("nothing was acknowledged")?.clone();
    // The publisher's n-th publish opened patient `p-{n}`.
    let last_patient = attempts
        .iter()
        .position(|attempt| attempt.id == last)
        .map(|n| format!("p-{n}"))
        .context("the last acknowledged publish is not in the log")?;

    let reached = app.wait_for(&last).await;
    let seen = app.stop().await;
    let replay = match strictness {
        Strictness::AsTheAppSees => Replay::StartsAnywhere,
        Strictness::NothingLost => Replay::IsTheLatest,
    };
    let skips = silent_skips(&acked, &published, &seen, replay);
    let closes = closes(&seen);
    let current = Current::read(cluster, &topic).await?;
    let lost = lost_by_redis(cluster, &topic, &attempts).await?;
    let warned = nodes_logging(cluster, ROLLBACK_WARNING, &topic);
    let timing = publish_timing(&attempts, commanded, promoted);

    // The hub switched to the new primary after the last acknowledged write it lost; the
    // first 2xx after that is the first one the new primary kept.
    let lost_window = match (lost.first(), lost.last()) {
        (Some(first), Some(last)) => {
            let kept = attempts
                .iter()
                .find(|attempt| attempt.sent > last.sent && attempt.acked());
            format!(
                ", sent {}…{} ms after the promotion (the hub switched then: the first 2xx \
                 the new primary kept came {} after the last lost one)",
                signed_ms(first.sent, promoted),
                signed_ms(last.sent, promoted),
                kept.map_or_else(
                    || "never".to_owned(),
                    |kept| format!("{} ms", kept.done.duration_since(last.done).as_millis())
                )
            )
        }
        _ => String::new(),
    };
    println!(
        "sentinel failover (planned): promoted {} ms after SENTINEL FAILOVER, settled {} ms \
         after; {timing}; {} publishes, {} acknowledged, {} acknowledged but missing from the \
         new primary{lost_window}; rollback logged by {warned:?}; app socket closes: \
         {closes:?}; app resubscriptions: {}; silent skips: {}",
        promoted.duration_since(commanded).as_millis(),
        settled.duration_since(commanded).as_millis(),
        attempts.len(),
        acked.len(),
        lost.len(),
        resubscriptions(&seen),
        skips.len()
    );

    let mut problems = skips;
    if let Err(error) = reached {
        problems.push(format!("{error:#}"));
    }
    current.expect(
        &last,
        &last_patient,
        "the last acknowledged open",
        &mut problems,
    );
    if !lost.is_empty() && !closes.contains(&Some(1011)) {
        problems.push(format!(
            "the new primary misses {} acknowledged events but the app's socket was never \
             closed with 1011",
            lost.len()
        ));
    }
    if !lost.is_empty() && warned.is_empty() {
        problems.push(format!(
            "the new primary misses {} acknowledged events and no node logged \
             \"{ROLLBACK_WARNING}\"",
            lost.len()
        ));
    }
    if strictness == Strictness::NothingLost && !lost.is_empty() {
        problems.push(format!(
            "the new primary misses {} acknowledged events (sent {}…{} ms after the promotion)",
            lost.len(),
            lost.first()
                .map_or(0, |first| signed_ms(first.sent, promoted)),
            lost.last().map_or(0, |last| signed_ms(last.sent, promoted))
        ));
    }
    verdict(cluster, problems, &seen, &history.last_failures(5))
}

/// Returns when the server at `address` first reports itself a primary.
pub(super) async fn promoted_at(set: &RedisSentinelSet, address: SocketAddr) -> Result<Instant> {
    let server = server_at(set, address)?;
    eventually(
        &format!("{address} becomes a primary"),
        RECOVERY_DEADLINE,
        || async { Ok((role(server).await? == "master").then(Instant::now)) },
    )
    .await
}

/// Describes when publishes failed and came back around the failover.
pub(super) fn publish_timing(
    attempts: &[Publish],
    commanded: Instant,
    promoted: Instant,
) -> String {
    let after: Vec<&Publish> = attempts
        .iter()
        .filter(|attempt| attempt.done >= commanded)
        .collect();
    let first_refused = after.iter().find(|attempt| !attempt.acked());
    let refused = after.iter().filter(|attempt| !attempt.acked()).count();
    let mut longest = Duration::ZERO;
    let mut previous = commanded;
    for attempt in after.iter().filter(|attempt| attempt.acked()) {
        longest = longest.max(attempt.done.duration_since(previous));
        previous = attempt.done;
    }
    match first_refused {
        None => format!(
            "no publish refused (longest time between two 2xx: {} ms)",
            longest.as_millis()
        ),
        Some(refused_first) => {
            let back = after
                .iter()
                .find(|attempt| attempt.sent >= refused_first.done && attempt.acked());
            format!(
                "the hub noticed the switch {} ms after the promotion (first refused publish: \
                 {:?}); first 2xx after it {}; {refused} publishes refused or indeterminate; \
                 longest time between two 2xx: {} ms",
                signed_ms(refused_first.done, promoted),
                refused_first.outcome,
                back.map_or_else(
                    || "never".to_owned(),
                    |back| format!(
                        "{} ms later",
                        back.done.duration_since(refused_first.done).as_millis()
                    )
                ),
                longest.as_millis()
            )
        }
    }
}

/// Returns the acknowledged attempts whose event id the current primary does not hold.
pub(super) async fn lost_by_redis(
    cluster: &Cluster,
    topic: &str,
    attempts: &[Publish],
) -> Result<Vec<Publish>> {
    let ids_key = cluster.keys_of(topic).ids;
    let acked: Vec<&Publish> = attempts.iter().filter(|attempt| attempt.acked()).collect();
    let commands: Vec<::redis::Cmd> = acked
        .iter()
        .map(|attempt| {
            let mut command = ::redis::cmd("HEXISTS");
            command.arg(&ids_key).arg(&attempt.id);
            command
        })
        .collect();
    let held: Vec<bool> = cluster.deployment().query_each(&commands).await?;
    Ok(acked
        .into_iter()
        .zip(held)
        .filter(|(_, held)| !held)
        .map(|(attempt, _)| attempt.clone())
        .collect())
}

/// Waits for [`STEADY`] acknowledged publishes sent at or after `since`.
pub(super) async fn wait_steady(
    history: &History,
    topic: &str,
    since: Instant,
    what: &str,
) -> Result<()> {
    faults::wait_steady(history, topic, since, STEADY, RECOVERY_DEADLINE, what).await
}
