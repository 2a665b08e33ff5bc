//! Watching the sentinels for a new primary, so that a process follows a failover as soon
//! as the sentinels announce it rather than when its next write fails.
//!
//! A planned failover (`SENTINEL FAILOVER`) promotes the replica within a fraction of a
//! second, but the sentinels turn the old primary into a replica only about ten seconds
//! later; until then it still accepts writes, and a process that follows the primary only
//! on errors keeps writing there (those writes are discarded when it is demoted) and keeps
//! listening there (publishes on the new primary never reach it). Every connection to a
//! Sentinel-managed primary therefore watches the address the sentinels name and moves
//! when it differs from the server in use. The comparison runs at every poll, not only when
//! the answer changes, and a move goes straight to the announced server once it reports
//! itself a primary: the sentinel leading a failover names the promoted replica a moment
//! before the others agree.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr};
use tokio::sync::watch;
use tracing::debug;

use super::redis::{REDIS_TIMEOUT, RedisTarget, until_primary};

/// How often the sentinels are asked which server is the primary.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Returns `host:port` of the server a client connects to.
pub fn address_of(client: &redis::Client) -> Option<String> {
    match &client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            Some(format!("{host}:{port}"))
        }
        _ => None,
    }
}

/// Starts watching the primary the sentinels name for `target` (`None` unless it is a
/// Sentinel target). The receiver sees `host:port` each time the answer changes; the watch
/// stops when every receiver is dropped.
pub fn watch_primary(target: &RedisTarget) -> Option<watch::Receiver<Option<String>>> {
    let RedisTarget::Sentinel {
        sentinels, master, ..
    } = target
    else {
        return None;
    };
    let (sender, receiver) = watch::channel(None);
    let mut asker = Asker {
        sentinels: sentinels.clone(),
        master: master.clone(),
        next: 0,
        conn: None,
    };
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(POLL_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = sender.closed() => break,
                _ = ticks.tick() => {}
            }
            if let Some(named) = asker.ask().await {
                sender.send_if_modified(|current| {
                    let changed = current.as_ref() != Some(&named);
                    if changed {
                        *current = Some(named);
                    }
                    changed
                });
            }
        }
    });
    Some(receiver)
}

/// Runs while `current` answers `Some` (the server in use, if known): at every poll, calls
/// `follow` with the server the sentinels name if it is another one.
pub async fn follow_announcements(
    mut named: watch::Receiver<Option<String>>,
    current: impl Fn() -> Option<Option<String>>,
    follow: impl Fn(String),
) {
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = named.changed() => if changed.is_err() { return },
            _ = ticks.tick() => {}
        }
        let Some(in_use) = current() else { return };
        let announced = named.borrow_and_update().clone();
        if let Some(announced) = announced
            && Some(&announced) != in_use.as_ref()
        {
            follow(announced);
        }
    }
}

/// Finds the primary and connects to it with `connect`, retrying until it answers as a
/// primary: the server a sentinel `announced`, once it reports itself a primary (the
/// sentinel leading a failover names the promoted replica before the others agree), else
/// the server the sentinels name. Returns `None` when that is the server at `current`
/// (nothing moved: a connection to it reconnects by itself), else the connection and its
/// address.
pub async fn connect_if_moved<T, F, Fut>(
    target: &RedisTarget,
    current: Option<String>,
    announced: Option<String>,
    connect: F,
) -> Option<(T, Option<String>)>
where
    F: Fn(redis::Client) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let (current, announced, connect) = (&current, &announced, &connect);
    until_primary(|| async move {
        let announced = announced
            .as_ref()
            .filter(|address| Some(*address) != current.as_ref());
        let client = match announced {
            Some(address) => match announced_primary(target, address).await {
                Ok(client) => client,
                // Not a primary (yet, or any more): ask the sentinels as a whole.
                Err(_) => target.primary_client().await?,
            },
            None => target.primary_client().await?,
        };
        let address = address_of(&client);
        if address.is_some() && address == *current {
            return Ok(None);
        }
        Ok(Some((connect(client).await?, address)))
    })
    .await
}

/// A client for the server at `address`, if it reports itself a primary.
async fn announced_primary(
    target: &RedisTarget,
    address: &str,
) -> redis::RedisResult<redis::Client> {
    let client = target.client_at(address)?;
    ensure_primary(&client).await?;
    Ok(client)
}

/// Fails unless the server of `client` reports itself a primary (`ROLE`).
async fn ensure_primary(client: &redis::Client) -> redis::RedisResult<()> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let role: redis::Value = redis::cmd("ROLE").query_async(&mut conn).await?;
    let is_primary = matches!(
        &role,
        redis::Value::Array(parts)
            if matches!(parts.first(), Some(redis::Value::BulkString(name)) if name == b"master")
    );
    if is_primary {
        Ok(())
    } else {
        Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "the announced server is not a primary yet",
        )))
    }
}

/// Asks one sentinel at a time, keeping the connection to the last one that answered.
struct Asker {
    sentinels: Vec<String>,
    master: String,
    next: usize,
    conn: Option<MultiplexedConnection>,
}

impl Asker {
    /// Returns the primary's `host:port` as the first sentinel that answers names it.
    async fn ask(&mut self) -> Option<String> {
        for _ in 0..self.sentinels.len() {
            if self.conn.is_none() {
                self.conn = self.connect().await;
            }
            if let Some(conn) = self.conn.as_mut() {
                let answer: redis::RedisResult<Option<(String, u16)>> = redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg(&self.master)
                    .query_async(conn)
                    .await;
                match answer {
                    Ok(Some((host, port))) => return Some(format!("{host}:{port}")),
                    Ok(None) => debug!("a sentinel does not know the master name"),
                    Err(err) => debug!(error = %err, "a sentinel did not answer"),
                }
            }
            self.conn = None;
            self.next = (self.next + 1) % self.sentinels.len().max(1);
        }
        None
    }

    async fn connect(&self) -> Option<MultiplexedConnection> {
        let url = self.sentinels.get(self.next)?;
        let client = redis::Client::open(url.as_str()).ok()?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .ok()
    }
}
