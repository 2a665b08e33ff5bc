//! A hub node's membership (DESIGN §6): it heartbeats its id and gRPC address into Redis
//! with a deadline, and watches which gateways are alive so its topics can drop the
//! attachments of a gateway that vanished (its sockets are gone with it).
//!
//! Liveness is a deadline in a sorted set, not a key TTL: one `ZRANGEBYSCORE now +inf`
//! reads the live set, and members that stopped heartbeating fall out of it by time alone.
//! Long-dead entries are pruned by every heartbeat.

use std::collections::BTreeSet;
use std::time::Duration;

use redis::aio::ConnectionLike;

use super::redis::RedisConn;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use fhircast_proto::hub::unix_now_ms;
use fhircast_proto::redis_schema::{Role, members_key, node_addresses_key};

/// How this node announces itself.
#[derive(Clone, Debug)]
pub struct NodeMember {
    /// The node's id (stable across restarts in Kubernetes: the StatefulSet pod name).
    pub id: String,
    /// Where gateways reach its gRPC service.
    pub grpc_address: String,
    /// How long a heartbeat keeps the node alive.
    pub ttl: Duration,
}

/// Entries dead for this many TTLs are removed.
const PRUNE_AFTER_TTLS: u64 = 10;

/// Successful heartbeats in a row before the live gateways are trusted again after a
/// failure: long enough (a whole TTL and more) for every live gateway to have heartbeated
/// into the same Redis, e.g. a primary the sentinels just promoted, whose copy of the
/// membership stopped at the promotion.
const STEADY_HEARTBEATS: u32 = 4;

/// Heartbeats until `shutdown`, then leaves. Publishes the live gateway ids after each
/// heartbeat, or `None` while they cannot be trusted (since a failed heartbeat, until
/// [`STEADY_HEARTBEATS`] succeeded in a row). A heartbeat that fails is retried at the
/// next tick.
pub fn run(
    conn: RedisConn,
    me: NodeMember,
    shutdown: CancellationToken,
) -> (
    watch::Receiver<Option<BTreeSet<String>>>,
    tokio::task::JoinHandle<()>,
) {
    let (sender, receiver) = watch::channel(None);
    let task = tokio::spawn(async move {
        let interval = me.ttl / 3;
        let mut was_failing = false;
        let mut steady = 0u32;
        let mut moves = conn.moves();
        loop {
            match heartbeat(&mut conn.clone(), &me).await {
                Ok(_) if conn.moves() != moves => {
                    // The connection moved to another primary (a failover) without a
                    // failed heartbeat: what it reads now is another server's copy.
                    moves = conn.moves();
                    steady = 0;
                    sender.send_if_modified(|live| live.take().is_some());
                }
                Ok(gateways) => {
                    if was_failing {
                        info!(node = %me.id, "membership heartbeat recovered");
                        was_failing = false;
                    }
                    steady = steady.saturating_add(1);
                    let trusted = (steady >= STEADY_HEARTBEATS).then_some(gateways);
                    sender.send_if_modified(|live| {
                        let changed = *live != trusted;
                        *live = trusted;
                        changed
                    });
                }
                Err(err) => {
                    steady = 0;
                    sender.send_if_modified(|live| live.take().is_some());
                    if was_failing {
                        debug!(node = %me.id, error = %err, "membership heartbeat failed");
                    } else {
                        warn!(node = %me.id, error = %err, "membership heartbeat failed; retrying");
                        was_failing = true;
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
        if let Err(err) = leave(&mut conn.clone(), &me.id).await {
            debug!(node = %me.id, error = %err, "could not leave the membership");
        }
    });
    (receiver, task)
}

async fn heartbeat<C: ConnectionLike>(
    conn: &mut C,
    me: &NodeMember,
) -> redis::RedisResult<BTreeSet<String>> {
    let now = unix_now_ms();
    let ttl = u64::try_from(me.ttl.as_millis()).unwrap_or(u64::MAX);
    let nodes = members_key(Role::Node);
    let gateways = members_key(Role::Gateway);
    let prune_before = now.saturating_sub(ttl.saturating_mul(PRUNE_AFTER_TTLS));
    let (live,): (Vec<String>,) = redis::pipe()
        .zadd(&nodes, &me.id, now.saturating_add(ttl))
        .ignore()
        .hset(node_addresses_key(), &me.id, &me.grpc_address)
        .ignore()
        .zrembyscore(&nodes, "-inf", prune_before)
        .ignore()
        .zrembyscore(&gateways, "-inf", prune_before)
        .ignore()
        .zrangebyscore(&gateways, now, "+inf")
        .query_async(conn)
        .await?;
    Ok(live.into_iter().collect())
}

async fn leave<C: ConnectionLike>(conn: &mut C, id: &str) -> redis::RedisResult<()> {
    redis::pipe()
        .zrem(members_key(Role::Node), id)
        .ignore()
        .hdel(node_addresses_key(), id)
        .ignore()
        .query_async(conn)
        .await
}
