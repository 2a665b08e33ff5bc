//! A gateway's membership (DESIGN §6): it heartbeats its id into Redis, so hub nodes can
//! tell when it vanished (and drop its attachments), and reads the live hub nodes with their
//! gRPC addresses, which placement picks owners from.

use std::collections::BTreeMap;
use std::time::Duration;

use hub_node::cluster::redis::RedisConn;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use fhircast_proto::hub::unix_now_ms;
use fhircast_proto::redis_schema::{Role, members_key, node_addresses_key};

/// Live hub nodes: id → gRPC address (host:port).
pub type LiveNodes = BTreeMap<String, String>;

/// Heartbeats as gateway `id` until `shutdown`, then leaves. Returns the live nodes, read
/// on every heartbeat, once the first read succeeded (start-up waits for the cluster).
pub async fn join(
    conn: RedisConn,
    id: String,
    ttl: Duration,
    shutdown: CancellationToken,
) -> redis::RedisResult<watch::Receiver<LiveNodes>> {
    let first = heartbeat(&mut conn.clone(), &id, ttl).await?;
    let (sender, receiver) = watch::channel(first);
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(ttl / 3) => {}
            }
            match heartbeat(&mut conn.clone(), &id, ttl).await {
                Ok(nodes) => {
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
        }
        let _: redis::RedisResult<()> = redis::cmd("ZREM")
            .arg(members_key(Role::Gateway))
            .arg(&id)
            .query_async(&mut conn.clone())
            .await;
    });
    Ok(receiver)
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
