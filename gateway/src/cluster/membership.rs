//! A gateway's membership (DESIGN §6): it heartbeats its id into Redis, so hub nodes can
//! tell when it vanished (and drop its attachments), and reads the live hub nodes with their
//! gRPC addresses, which placement picks owners from.

use std::collections::BTreeMap;
use std::time::Duration;

use hub_node::cluster::redis::RedisConn;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use fhircast_proto::hub::unix_now_ms;
use fhircast_proto::redis_schema::{Role, members_key, node_addresses_key};

/// Live hub nodes: id → gRPC address (host:port).
pub type LiveNodes = BTreeMap<String, String>;

/// What the membership tells the rest of the gateway.
#[derive(Debug)]
pub struct Membership {
    /// Live hub nodes, read on every heartbeat.
    pub nodes: watch::Receiver<LiveNodes>,
    /// False once heartbeats have failed for a whole TTL: the nodes may consider this
    /// gateway gone (and detach its sockets), so it must stop serving sockets until a
    /// heartbeat succeeds again.
    pub in_standing: watch::Receiver<bool>,
    /// Whether the last heartbeat reached Redis.
    pub redis_up: watch::Receiver<bool>,
}

/// Heartbeats as gateway `id` until `shutdown`, then leaves. Returns once the first
/// heartbeat succeeded (start-up waits for the cluster).
pub async fn join(
    conn: RedisConn,
    id: String,
    ttl: Duration,
    shutdown: CancellationToken,
) -> redis::RedisResult<Membership> {
    let first = heartbeat(&mut conn.clone(), &id, ttl).await?;
    let (sender, receiver) = watch::channel(first);
    let (standing, in_standing) = watch::channel(true);
    let (reached, redis_up) = watch::channel(true);
    tokio::spawn(async move {
        let mut failing = false;
        let mut last_success = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(ttl / 3) => {}
            }
            let beat = heartbeat(&mut conn.clone(), &id, ttl).await;
            reached.send_if_modified(|up| std::mem::replace(up, beat.is_ok()) != beat.is_ok());
            match beat {
                Ok(nodes) => {
                    last_success = Instant::now();
                    standing.send_if_modified(|standing| !std::mem::replace(standing, true));
                    if failing {
                        info!(gateway = %id, "membership heartbeat recovered");
                        failing = false;
                    }
                    sender.send_if_modified(|live| {
                        let changed = *live != nodes;
                        *live = nodes;
                        changed
                    });
                }
                Err(err) if !failing => {
                    warn!(gateway = %id, error = %err, "membership heartbeat failed; retrying");
                    failing = true;
                }
                Err(err) => debug!(gateway = %id, error = %err, "membership heartbeat failed"),
            }
            if failing
                && last_success.elapsed() >= ttl
                && standing.send_if_modified(|standing| std::mem::replace(standing, false))
            {
                warn!(
                    gateway = %id,
                    "out of the membership for a whole TTL: hub nodes may have detached this \
                     gateway's sockets; closing them (1012) until heartbeats succeed again"
                );
            }
        }
        let _: redis::RedisResult<()> = redis::cmd("ZREM")
            .arg(members_key(Role::Gateway))
            .arg(&id)
            .query_async(&mut conn.clone())
            .await;
    });
    Ok(Membership {
        nodes: receiver,
        in_standing,
        redis_up,
    })
}

async fn heartbeat(conn: &mut RedisConn, id: &str, ttl: Duration) -> redis::RedisResult<LiveNodes> {
    let now = unix_now_ms();
    let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let (ids, addresses): (Vec<String>, BTreeMap<String, String>) = redis::pipe()
        .zadd(members_key(Role::Gateway), id, now.saturating_add(ttl))
        .ignore()
        .zrangebyscore(members_key(Role::Node), now, "+inf")
        .hgetall(node_addresses_key())
        .query_async(conn)
        .await?;
    Ok(ids
        .into_iter()
        .filter_map(|id| {
            let address = addresses.get(&id)?.clone();
            Some((id, address))
        })
        .collect())
}
