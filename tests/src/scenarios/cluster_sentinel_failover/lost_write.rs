//! (b) A write the failover loses: E reaches the primary alone, the primary is killed and
//! the replica promoted; without `WAIT` the hub must notice that E is gone, with `WAIT` it
//! must have refused E.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;
use tokio::time::Instant;

use super::app::{App, Current, Replay, Seen, closes, describe, silent_skips};
use super::evidence::{nodes_logging, verdict};
use super::membership::wait_all_live;
use super::sentinel::{
    other_server, replication_field, role, sentinel_set, server_at, server_at_mut, signed_ms,
};
use super::{
    LOST_WRITE_CYCLE, LOST_WRITE_SETUP, PROMOTION_DEADLINE, PUBLISH_TIMEOUT, RECOVERY_DEADLINE,
    ROLLBACK_WARNING,
};
use crate::client::HubClient;
use crate::cluster::Cluster;
use crate::conformance::assert::id_of;
use crate::eventually::eventually;
use crate::faults::{budget, cycles};
use crate::invariants::spread;
use crate::payloads::{patient_open, random_topic};
use crate::redis::{RedisSentinelSet, RedisServer};

/// When the hub acknowledges a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Acks {
    /// Once the primary holds it (`--redis-wait-replicas 0`).
    PrimaryOnly,
    /// Once a replica holds it too (`WAIT 1`, the default with Sentinel).
    WaitForReplica,
}

pub(super) fn lost_write_budget() -> Duration {
    budget(LOST_WRITE_SETUP, LOST_WRITE_CYCLE)
}

/// What one lost-write cycle measured.
pub(super) struct LostWrite {
    /// From the kill -9 of the primary to the promotion.
    promotion: Duration,
    /// From the promotion until every node and gateway heartbeats into the new primary.
    members: Duration,
    /// From the promotion until F was acknowledged.
    publishing: Duration,
    /// Whether E was acknowledged (and lost), and whether a node logged the loss.
    lost: bool,
    logged: bool,
}

/// Runs [`cycles`] lost-write cycles, each on a fresh topic, and prints their figures.
pub(super) async fn lost_writes(cluster: &mut Cluster, acks: Acks, lease: &str) -> Result<()> {
    let cycles = cycles();
    let mut runs = Vec::new();
    for cycle in 1..=cycles {
        let run = lost_write(cluster, acks, lease)
            .await
            .with_context(|| format!("cycle {cycle}/{cycles}"))?;
        runs.push(run);
    }
    let figures =
        |pick: fn(&LostWrite) -> Duration| spread(&runs.iter().map(pick).collect::<Vec<_>>());
    let lost = runs.iter().filter(|run| run.lost).count();
    let detected = runs.iter().filter(|run| run.lost && run.logged).count();
    println!(
        "FLT-09 lost write ({acks:?}, {lease}) over {cycles} cycles: acknowledged writes lost \
         {lost}, detected {detected}; promotion after kill -9 {}; every member on the new \
         primary {} after the promotion; F acknowledged {} after the promotion",
        figures(|run| run.promotion),
        figures(|run| run.members),
        figures(|run| run.publishing)
    );
    Ok(())
}

/// One cycle: E written to the primary alone, the primary killed, the replica promoted, F
/// and G published; the old primary comes back as a replica for the next cycle.
pub(super) async fn lost_write(
    cluster: &mut Cluster,
    acks: Acks,
    lease: &str,
) -> Result<LostWrite> {
    let topic = random_topic();
    let app = App::start(cluster.client(0, &topic)?).await?;
    let publisher = cluster.client(1, &topic)?;
    let mut acked: Vec<(String, String)> = Vec::new();
    for n in 0..3 {
        let patient = format!("before-{n}");
        acked.push((publish_once(&publisher, &patient).await?, patient));
    }
    let before = acked.last().map(|(id, _)| id.clone()).unwrap_or_default();
    app.wait_for(&before).await?;

    // The replica has everything so far, then is frozen and cut off.
    let keys = cluster.keys_of(&topic);
    let (primary_address, replica_address) = {
        let set = sentinel_set(cluster)?;
        let primary = set.primary().await?;
        let replica = server_at(set, other_server(set, primary.address())?)?;
        // A replica that rejoined in the previous cycle may still be (re)connecting: its
        // link must be up, or there is no replication connection to cut below.
        eventually(
            "the replica is linked and holds the topic's seq and epoch",
            RECOVERY_DEADLINE,
            || async {
                let on_primary = seq_and_epoch(primary, &keys.meta).await?;
                let on_replica = seq_and_epoch(replica, &keys.meta).await?;
                let linked = replication_field(replica, "master_link_status").await? == "up"
                    && replication_field(primary, "connected_slaves").await? == "1";
                Ok((linked && on_primary == on_replica).then_some(()))
            },
        )
        .await?;
        replica.sigstop()?;
        let mut kill = ::redis::cmd("CLIENT");
        kill.arg("KILL").arg("TYPE").arg("replica");
        let cut: i64 = primary.query(&kill).await?;
        ensure!(cut >= 1, "CLIENT KILL TYPE replica cut {cut} connections");
        (primary.address(), replica.address())
    };

    // E: the primary has it, no replica ever will. Acknowledged without WAIT, refused with.
    let e_event = patient_open(publisher.topic(), "lost");
    let lost_id = id_of(&e_event).to_owned();
    let e_answer = answer(&publisher, &e_event).await;
    let e_acked = is_2xx(&e_answer);
    match acks {
        Acks::PrimaryOnly => {
            ensure!(e_acked, "E was not acknowledged: {e_answer:?}");
            acked.push((lost_id.clone(), "lost".to_owned()));
            ensure!(
                holds_id(
                    server_at(sentinel_set(cluster)?, primary_address)?,
                    &keys.ids,
                    &lost_id
                )
                .await?,
                "the primary does not hold the acknowledged E"
            );
            app.wait_for(&lost_id).await?;
        }
        Acks::WaitForReplica => ensure!(
            !e_acked,
            "E was acknowledged although no replica holds it: {e_answer:?}"
        ),
    }

    server_at_mut(cluster, primary_address)?.kill_9().await?;
    let killed = Instant::now();
    let set = sentinel_set(cluster)?;
    server_at(set, replica_address)?.sigcont()?;
    let pushed = await_promotion(set, replica_address).await?;
    let promoted = Instant::now();
    let replica = server_at(set, replica_address)?;
    ensure!(
        !holds_id(replica, &keys.ids, &lost_id).await?,
        "the promoted replica holds E: the setup lost nothing"
    );
    if acks == Acks::WaitForReplica {
        // The promoted server has no replica, so nothing can be acknowledged until one
        // comes back.
        rejoin_as_replica(cluster, primary_address, replica_address).await?;
    }

    // The members follow the promotion: each heartbeats into the new primary again.
    wait_all_live(cluster).await?;
    let members = promoted.elapsed();

    // F and G, published until acknowledged.
    let (f_id, f_attempts) = publish_until_acked(&publisher, "after-f").await?;
    let f_acked = Instant::now();
    acked.push((f_id.clone(), "after-f".to_owned()));
    let (g_id, g_attempts) = publish_until_acked(&publisher, "after-g").await?;
    acked.push((g_id.clone(), "after-g".to_owned()));

    // Either G reaches the app's socket or the socket is closed; then the app settles.
    let reached = app.wait_for(&g_id).await;
    let seen = app.stop().await;
    let ids: Vec<String> = acked.iter().map(|(id, _)| id.clone()).collect();
    // E was published whether or not it was acknowledged.
    let published: HashSet<String> = ids.iter().chain([&lost_id]).cloned().collect();
    let skips = silent_skips(&ids, &published, &seen, Replay::StartsAnywhere);
    let closes = closes(&seen);
    let current = Current::read(cluster, &topic).await?;
    let warned = nodes_logging(cluster, ROLLBACK_WARNING, &topic);
    let closed_at = seen.iter().find_map(|seen| match seen {
        Seen::Closed {
            code: Some(1011),
            at,
        } => Some(*at),
        _ => None,
    });

    println!(
        "sentinel failover (lost write, {acks:?}, {lease}): E answered {e_answer:?}, shown \
         to the app: {}; the sentinels promoted {replica_address} {} ms \
         after kill -9 of {primary_address}{}; every node and gateway heartbeats into it \
         {} ms after the promotion; F acknowledged {} ms after the promotion (answers: \
         {f_attempts:?}), G: {g_attempts:?}; rollback logged by {warned:?}; app \
         socket closes: {closes:?}{}; what the app saw: {}",
        seen.iter()
            .any(|seen| matches!(seen, Seen::Event { id, .. } if *id == lost_id)),
        promoted.duration_since(killed).as_millis(),
        if pushed {
            " (pushed with SENTINEL FAILOVER)"
        } else {
            ""
        },
        members.as_millis(),
        f_acked.duration_since(promoted).as_millis(),
        closed_at.map_or_else(String::new, |at| format!(
            " (1011 {} ms after F was acknowledged)",
            signed_ms(at, f_acked)
        )),
        describe(&seen, &acked)
    );

    let mut problems = skips;
    if let Err(error) = reached {
        problems.push(format!("{error:#}"));
    }
    if acks == Acks::PrimaryOnly && warned.is_empty() {
        problems.push(format!(
            "no node logged \"{ROLLBACK_WARNING}\" although the store lost the acknowledged E"
        ));
    }
    // A socket that was shown E (acknowledged or not) must be told that it is gone.
    let shown_e = seen
        .iter()
        .any(|seen| matches!(seen, Seen::Event { id, .. } if *id == lost_id));
    if shown_e && !closes.contains(&Some(1011)) {
        problems.push(
            "the app was shown E, which the store lost, and its socket was never closed \
             with 1011"
                .to_owned(),
        );
    }
    current.expect(&g_id, "after-g", "G", &mut problems);
    verdict(cluster, problems, &seen, "")?;
    if acks == Acks::PrimaryOnly {
        rejoin_as_replica(cluster, primary_address, replica_address).await?;
    }
    Ok(LostWrite {
        promotion: promoted.duration_since(killed),
        members,
        publishing: f_acked.duration_since(promoted),
        lost: e_acked,
        logged: !warned.is_empty(),
    })
}

/// The killed primary comes back as a replica of the promoted one, as its pod would (a
/// Sentinel-managed Redis asks the sentinels for the primary when it starts), discarding
/// what only it held.
pub(super) async fn rejoin_as_replica(
    cluster: &mut Cluster,
    old_primary: SocketAddr,
    new_primary: SocketAddr,
) -> Result<()> {
    let server = server_at_mut(cluster, old_primary)?;
    server.restart().await?;
    let mut follow = ::redis::cmd("REPLICAOF");
    follow
        .arg(new_primary.ip().to_string())
        .arg(new_primary.port());
    let _: String = server.query(&follow).await?;
    Ok(())
}

/// Publishes one Patient-open for `patient` and returns its id; it must be acknowledged.
pub(super) async fn publish_once(client: &HubClient, patient: &str) -> Result<String> {
    let event = patient_open(client.topic(), patient);
    client
        .publish_ok(&event)
        .await
        .with_context(|| format!("publish {patient}"))?;
    Ok(id_of(&event).to_owned())
}

/// Posts an event once: the status, or why there was none within [`PUBLISH_TIMEOUT`].
pub(super) async fn answer(client: &HubClient, event: &Value) -> Result<u16, String> {
    match tokio::time::timeout(PUBLISH_TIMEOUT, client.publish(event)).await {
        Ok(Ok(reply)) => Ok(reply.status),
        Ok(Err(error)) => Err(format!("{error:#}")),
        Err(_) => Err(format!("no answer within {PUBLISH_TIMEOUT:?}")),
    }
}

pub(super) fn is_2xx(answer: &Result<u16, String>) -> bool {
    matches!(answer, Ok(status) if (200..300).contains(status))
}

/// Publishes one Patient-open for `patient`, re-posting the same event until it is
/// acknowledged; returns its id and every answer (status or error).
pub(super) async fn publish_until_acked(
    client: &HubClient,
    patient: &str,
) -> Result<(String, Vec<String>)> {
    let event = patient_open(client.topic(), patient);
    let answers = Mutex::new(Vec::new());
    eventually(
        &format!("publish {patient} is acknowledged"),
        RECOVERY_DEADLINE,
        || async {
            let answer = answer(client, &event).await;
            let acked = is_2xx(&answer);
            if let Ok(mut answers) = answers.lock() {
                answers.push(answer.map_or_else(|error| error, |status| status.to_string()));
            }
            Ok(acked.then_some(()))
        },
    )
    .await
    .map_err(|error| error.context(format!("answers: {:?}", answers.lock().ok())))?;
    let answers = answers.into_inner().unwrap_or_default();
    Ok((id_of(&event).to_owned(), answers))
}

/// Waits until the sentinels name `replica` as the primary and it is one; pushes them with
/// `SENTINEL FAILOVER` if they have not promoted it on their own within
/// [`PROMOTION_DEADLINE`]. Returns whether they needed the push.
pub(super) async fn await_promotion(set: &RedisSentinelSet, replica: SocketAddr) -> Result<bool> {
    let promoted = || async {
        if set.primary_address().await? != replica {
            return Ok(None);
        }
        Ok((role(server_at(set, replica)?).await? == "master").then_some(()))
    };
    let what = format!("the sentinels promote {replica}");
    if eventually(&what, PROMOTION_DEADLINE, promoted)
        .await
        .is_ok()
    {
        return Ok(false);
    }
    for sentinel in set.sentinels() {
        let mut command = ::redis::cmd("SENTINEL");
        command.arg("FAILOVER").arg(set.master_name());
        // INPROG or NOGOODSLAVE from one sentinel: the others may still take it.
        let _ = sentinel.query::<String>(&command).await;
    }
    eventually(
        &format!("{what} after SENTINEL FAILOVER"),
        PROMOTION_DEADLINE,
        promoted,
    )
    .await?;
    Ok(true)
}

/// Returns `seq` and `epoch` of a topic's meta hash on one server.
pub(super) async fn seq_and_epoch(
    server: &RedisServer,
    meta: &str,
) -> Result<(Option<String>, Option<String>)> {
    let mut command = ::redis::cmd("HMGET");
    command.arg(meta).arg("seq").arg("epoch");
    let values: Vec<Option<String>> = server.query(&command).await?;
    Ok((
        values.first().cloned().flatten(),
        values.get(1).cloned().flatten(),
    ))
}

/// Whether a server holds an accepted event id of a topic.
pub(super) async fn holds_id(server: &RedisServer, ids: &str, id: &str) -> Result<bool> {
    let mut command = ::redis::cmd("HEXISTS");
    command.arg(ids).arg(id);
    server.query(&command).await
}
