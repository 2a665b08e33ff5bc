//! The Redis store of the cluster: every topic materialised in a few hashes under its own
//! hash tag, changed only by the fenced scripts of `fhircast_proto::redis_schema`.
//!
//! - [`Store::acquire`] takes the lease and bumps the fence in one step (or answers
//!   `Owned{holder}`); state is loaded only after that.
//! - [`Store::commit`] runs one script per change: fence check, seq continuity, duplicate
//!   ids refused, touched entries written, envelopes appended to the capped stream and
//!   published. The endpoint index (other slots) is written after the script returns,
//!   before the caller acknowledges anything.
//! - Scripts run by SHA; `redis::Script` reloads them on `NOSCRIPT` (a restarted or
//!   failed-over Redis).
//!
//! Works over any async Redis connection: a `ConnectionManager` (single server, Sentinel
//! primary) or a cluster connection.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{RedisError, Script};
use tokio::time::Instant;
use tracing::warn;

use fhircast_proto::hub::TopicRecord;
use fhircast_proto::redis_schema::{self, TopicKeys, endpoint_key, records_key};
use fhircast_proto::validate::AnchorKey;
use fhircast_proto::wire::Trace;
use fhircast_proto::{EndpointId, TopicRef};

use super::{Change, Delta, Fence, Header, Snapshot, Store, StoreError};

/// How long the fence of a forgotten topic is kept (30 days): an owner paused for longer
/// than that could write again, which nothing real does.
const FORGOTTEN_FENCE_TTL_MS: u64 = 30 * 24 * 3600 * 1000;
/// A topic record as the admin API writes it (a 256-bit topic, a user, a mint time), parsed
/// when a topic has none so that both answers cost the same.
const DECOY_RECORD: &str = r#"{"topic":"decoy-decoy-decoy-decoy-decoy-decoy-decoy-d","user":"decoy-user","minted_at":1764790000000,"revoked_at":null}"#;

/// How the store behaves; the defaults are the production ones.
#[derive(Clone, Debug)]
pub struct RedisStoreSettings {
    /// This node's id (the lease holder's name).
    pub node_id: String,
    /// How long a lease runs without renewal.
    pub lease_ms: u64,
    /// Envelopes kept per topic stream for backfill (approximate, trimmed with `~`).
    pub stream_max_len: usize,
    /// Accepted event ids kept per topic.
    pub accepted_capacity: usize,
    /// How long an endpoint keeps resolving if its removal is never written (a safety net;
    /// removals delete it).
    pub endpoint_ttl_ms: u64,
    /// `PUBLISH`, or `SPUBLISH` for Redis Cluster's sharded pub/sub.
    pub sharded_pubsub: bool,
    /// Replicas that must hold a commit before it is acknowledged (`WAIT`); 0 acknowledges
    /// what the primary wrote. With replicas, a failover cannot lose an acknowledged change.
    pub wait_replicas: u32,
    /// How long a commit waits for those replicas before it fails (503, not acknowledged).
    pub wait_timeout_ms: u64,
}

/// When the store's connection last moved to another primary (a Sentinel failover).
pub type FailoverClock = Arc<dyn Fn() -> Option<Instant> + Send + Sync>;

/// How long after a failover a topic loaded without a record of its history counts as
/// possibly rolled back (without `WAIT`).
pub(crate) const FAILOVER_SUSPICION: Duration = Duration::from_secs(30);

/// The Redis store.
pub struct RedisStore<C> {
    conn: C,
    settings: RedisStoreSettings,
    failovers: Option<FailoverClock>,
    acquire: Script,
    renew: Script,
    release: Script,
    forget: Script,
    restart_epoch: Script,
    commit: Script,
    put_record: Script,
}

impl<C> fmt::Debug for RedisStore<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Creates a store over `conn`.
    pub fn new(conn: C, settings: RedisStoreSettings) -> Self {
        Self {
            conn,
            settings,
            failovers: None,
            acquire: Script::new(redis_schema::ACQUIRE),
            renew: Script::new(redis_schema::RENEW),
            release: Script::new(redis_schema::RELEASE),
            forget: Script::new(redis_schema::FORGET),
            restart_epoch: Script::new(redis_schema::RESTART_EPOCH),
            commit: Script::new(redis_schema::COMMIT),
            put_record: Script::new(redis_schema::PUT_RECORD),
        }
    }

    /// Tells the store when its connection moved to another primary (see
    /// [`Store::may_have_lost_writes`]).
    pub fn with_failover_clock(mut self, clock: FailoverClock) -> Self {
        self.failovers = Some(clock);
        self
    }

    fn conn(&self) -> C {
        self.conn.clone()
    }
}

/// Maps a script or connection failure to what the actor acts on.
fn store_error(err: &RedisError) -> StoreError {
    let detail = err.detail().unwrap_or_default();
    match err.code() {
        Some("FENCED") => StoreError::Fenced,
        Some("SEQ") => StoreError::RolledBack {
            stored_seq: detail.trim().parse().unwrap_or_default(),
        },
        Some("DUPLICATE") => StoreError::Diverged,
        _ => StoreError::Unavailable,
    }
}

fn anchor_field(anchor: &AnchorKey) -> String {
    format!("{}/{}", anchor.resource_type, anchor.id)
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|_| StoreError::Diverged)
}

/// Parses the entries of a hash, skipping (and reporting) any that do not parse: a
/// corrupt entry loses one subscription or anchor, never the topic.
fn entries<K: Ord, V: serde::de::DeserializeOwned>(
    raw: Vec<(String, String)>,
    key: impl Fn(&str) -> Option<K>,
    what: &str,
    topic: &TopicRef,
) -> BTreeMap<K, V> {
    let mut parsed = BTreeMap::new();
    for (field, value) in raw {
        match (key(&field), serde_json::from_str(&value)) {
            (Some(k), Ok(v)) => {
                parsed.insert(k, v);
            }
            _ => warn!(topic = %topic, what, "skipped an unreadable stored entry"),
        }
    }
    parsed
}

#[async_trait::async_trait]
impl<C> Store for RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    async fn acquire(&self, topic: &TopicRef) -> Result<Fence, StoreError> {
        let keys = TopicKeys::of(topic);
        let (acquired, value): (u8, String) = self
            .acquire
            .key(&keys.lease)
            .key(&keys.meta)
            .arg(&self.settings.node_id)
            .arg(self.settings.lease_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|err| store_error(&err))?;
        if acquired != 1 {
            return Err(StoreError::Owned { holder: value });
        }
        let fence = value.parse().map(Fence).map_err(|_| StoreError::Diverged)?;
        // Everything the primary held when the fence was bumped is what `load` reads next:
        // it is trusted only once the replicas hold it too. Otherwise a change whose commit
        // was refused for want of replicas, but which the primary kept, would come back as
        // acknowledged when its publish is retried (a duplicate of a stored event is
        // answered as accepted) and still be lost if the primary failed over.
        self.wait_for_replicas(topic).await?;
        Ok(fence)
    }

    async fn renew(&self, topic: &TopicRef, fence: Fence) -> Result<bool, StoreError> {
        let keys = TopicKeys::of(topic);
        let renewed: u8 = self
            .renew
            .key(&keys.lease)
            .key(&keys.meta)
            .arg(&self.settings.node_id)
            .arg(fence.0)
            .arg(self.settings.lease_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|err| store_error(&err))?;
        Ok(renewed == 1)
    }

    fn lease_ms(&self) -> Option<u64> {
        Some(self.settings.lease_ms)
    }

    fn may_have_lost_writes(&self) -> bool {
        self.settings.wait_replicas == 0
            && self
                .failovers
                .as_ref()
                .and_then(|clock| clock())
                .is_some_and(|moved| moved.elapsed() < FAILOVER_SUSPICION)
    }

    async fn load(&self, topic: &TopicRef) -> Result<Snapshot, StoreError> {
        let keys = TopicKeys::of(topic);
        let mut pipe = redis::pipe();
        pipe.hget(&keys.meta, "header")
            .hget(&keys.meta, "epoch")
            .hgetall(&keys.subs)
            .hgetall(&keys.ended)
            .hgetall(&keys.ctx)
            .lrange(&keys.idorder, 0, -1)
            .hgetall(&keys.ids);
        #[allow(clippy::type_complexity)]
        let (header, epoch, subs, ended, ctx, order, ids): (
            Option<String>,
            Option<u64>,
            Vec<(String, String)>,
            Vec<(String, String)>,
            Vec<(String, String)>,
            Vec<String>,
            Vec<(String, String)>,
        ) = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(|err| store_error(&err))?;
        let Some(header) = header else {
            return Ok(Snapshot::default());
        };
        let mut header: Header = serde_json::from_str(&header).map_err(|_| {
            warn!(topic = %topic, "the stored topic header is unreadable");
            StoreError::Diverged
        })?;
        // A restarted epoch is written beside the header.
        header.epoch = epoch.unwrap_or(header.epoch);
        let fingerprints: BTreeMap<String, String> = ids.into_iter().collect();
        let accepted: VecDeque<(String, u64)> = order
            .into_iter()
            .filter_map(|id| {
                let fingerprint = fingerprints.get(&id)?.parse().ok()?;
                Some((id, fingerprint))
            })
            .collect();
        Ok(Snapshot {
            header: Some(header),
            subscriptions: entries(subs, EndpointId::parse, "subscription", topic),
            ended: entries(ended, EndpointId::parse, "ended endpoint", topic),
            contexts: entries(ctx, AnchorKey::parse_field, "open anchor", topic),
            accepted,
        })
    }

    async fn commit(
        &self,
        topic: &TopicRef,
        fence: Fence,
        change: Change,
    ) -> Result<(), StoreError> {
        let keys = TopicKeys::of(topic);
        let mut invocation = self.commit.prepare_invoke();
        for key in keys.for_commit() {
            invocation.key(key);
        }
        invocation
            .arg(fence.0)
            .arg(json(&change.header)?)
            .arg(change.header.seq)
            .arg(change.header.epoch)
            .arg(self.settings.accepted_capacity)
            .arg(self.settings.stream_max_len)
            .arg(&keys.channel)
            .arg(if self.settings.sharded_pubsub {
                "SPUBLISH"
            } else {
                "PUBLISH"
            })
            .arg(change.deltas.len());
        for delta in &change.deltas {
            let (kind, field, value) = match delta {
                Delta::Subscription { endpoint, record } => (
                    "s",
                    endpoint.expose().to_owned(),
                    record.as_ref().map(json).transpose()?,
                ),
                Delta::Ended { endpoint, record } => (
                    "e",
                    endpoint.expose().to_owned(),
                    record.as_ref().map(json).transpose()?,
                ),
                Delta::Context { anchor, record } => (
                    "c",
                    anchor_field(anchor),
                    record.as_ref().map(json).transpose()?,
                ),
                Delta::Accepted { id, fingerprint } => {
                    ("a", id.clone(), Some(fingerprint.to_string()))
                }
            };
            invocation
                .arg(kind)
                .arg(field)
                .arg(value.unwrap_or_default());
        }
        for envelope in &change.envelopes {
            invocation
                .arg(envelope.seq)
                .arg(envelope.to_wire(Trace::default()));
        }
        let _: u8 = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(|err| store_error(&err))?;
        self.wait_for_replicas(topic).await?;
        self.index_endpoints(topic, &change).await
    }

    async fn forget(&self, topic: &TopicRef, fence: Fence) -> Result<(), StoreError> {
        let keys = TopicKeys::of(topic);
        let _: u8 = self
            .forget
            .key(&keys.meta)
            .key(&keys.lease)
            .key(&keys.subs)
            .key(&keys.ended)
            .key(&keys.ctx)
            .key(&keys.ids)
            .key(&keys.idorder)
            .key(&keys.stream)
            .arg(fence.0)
            .arg(FORGOTTEN_FENCE_TTL_MS)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|err| store_error(&err))?;
        Ok(())
    }

    async fn restart_epoch(
        &self,
        topic: &TopicRef,
        fence: Fence,
        epoch: u64,
    ) -> Result<(), StoreError> {
        let keys = TopicKeys::of(topic);
        let _: u8 = self
            .restart_epoch
            .key(&keys.meta)
            .arg(fence.0)
            .arg(epoch)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|err| store_error(&err))?;
        Ok(())
    }

    async fn release(&self, topic: &TopicRef, fence: Fence) -> Result<(), StoreError> {
        let keys = TopicKeys::of(topic);
        let _: u8 = self
            .release
            .key(&keys.lease)
            .key(&keys.meta)
            .arg(&self.settings.node_id)
            .arg(fence.0)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|err| store_error(&err))?;
        Ok(())
    }

    async fn resolve_endpoint(
        &self,
        endpoint: &EndpointId,
    ) -> Result<Option<TopicRef>, StoreError> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(endpoint_key(endpoint))
            .query_async(&mut self.conn())
            .await
            .map_err(|err| store_error(&err))?;
        Ok(raw.as_deref().and_then(TopicRef::parse))
    }

    async fn record(&self, topic: &TopicRef) -> Result<Option<TopicRecord>, StoreError> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(TopicKeys::of(topic).record)
            .query_async(&mut self.conn())
            .await
            .map_err(|err| store_error(&err))?;
        let Some(raw) = raw else {
            // An unknown topic does the work of a known one (TOP-03): a record of the same
            // shape is parsed and dropped, so a forbidden topic is not measurably slower.
            let _ = std::hint::black_box(serde_json::from_str::<TopicRecord>(DECOY_RECORD));
            return Ok(None);
        };
        serde_json::from_str(&raw).map(Some).map_err(|_| {
            warn!(topic = %topic, "the stored topic record is unreadable");
            StoreError::Diverged
        })
    }

    async fn put_record(
        &self,
        topic: &TopicRef,
        fence: Fence,
        record: &TopicRecord,
    ) -> Result<(), StoreError> {
        let keys = TopicKeys::of(topic);
        let stored: u8 = self
            .put_record
            .key(&keys.meta)
            .key(&keys.record)
            .arg(fence.0)
            .arg(json(record)?)
            .invoke_async(&mut self.conn())
            .await
            .map_err(|err| store_error(&err))?;
        if stored == 0 {
            return Err(StoreError::Fenced);
        }
        let listed_at = record.minted_at.or(record.revoked_at).unwrap_or_default();
        let _: u8 = redis::cmd("ZADD")
            .arg(records_key())
            .arg("NX")
            .arg(listed_at)
            .arg(topic.as_str())
            .query_async(&mut self.conn())
            .await
            .map_err(|err| store_error(&err))?;
        self.wait_for_replicas(topic).await
    }

    async fn list_records(
        &self,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicRecord>, StoreError> {
        // Newest first, a page at a time, until `limit` records matched.
        const PAGE: usize = 500;
        let mut listed = Vec::new();
        let mut start = 0;
        while listed.len() < limit {
            let refs: Vec<String> = redis::cmd("ZREVRANGE")
                .arg(records_key())
                .arg(start)
                .arg(start + PAGE - 1)
                .query_async(&mut self.conn())
                .await
                .map_err(|err| store_error(&err))?;
            if refs.is_empty() {
                break;
            }
            start += refs.len();
            for topic in refs.iter().filter_map(|raw| TopicRef::parse(raw)) {
                let Some(record) = self.record(&topic).await? else {
                    continue;
                };
                if record.listed_for(user) {
                    listed.push(record);
                    if listed.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok(listed)
    }
}

impl<C> RedisStore<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Waits until the configured replicas hold what this connection wrote (and so all the
    /// primary held before it); a commit they do not confirm in time is not acknowledged
    /// (it may survive on the primary, and is confirmed, or not, when the topic is next
    /// acquired).
    async fn wait_for_replicas(&self, topic: &TopicRef) -> Result<(), StoreError> {
        let wanted = self.settings.wait_replicas;
        if wanted == 0 {
            return Ok(());
        }
        let acked: u32 = redis::cmd("WAIT")
            .arg(wanted)
            .arg(self.settings.wait_timeout_ms)
            .query_async(&mut self.conn())
            .await
            .map_err(|err| store_error(&err))?;
        if acked < wanted {
            warn!(
                topic = %topic,
                acked,
                wanted,
                "a commit did not reach enough replicas in time; not acknowledged"
            );
            return Err(StoreError::Unavailable);
        }
        Ok(())
    }

    /// Writes the endpoint index: new endpoints resolve to the topic, removed ones stop.
    async fn index_endpoints(&self, topic: &TopicRef, change: &Change) -> Result<(), StoreError> {
        if change.endpoints_added.is_empty() && change.endpoints_removed.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        for endpoint in &change.endpoints_added {
            let _: () = redis::cmd("SET")
                .arg(endpoint_key(endpoint))
                .arg(topic.as_str())
                .arg("PX")
                .arg(self.settings.endpoint_ttl_ms)
                .query_async(&mut conn)
                .await
                .map_err(|err| store_error(&err))?;
        }
        for endpoint in &change.endpoints_removed {
            let _: () = redis::cmd("DEL")
                .arg(endpoint_key(endpoint))
                .query_async(&mut conn)
                .await
                .map_err(|err| store_error(&err))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decoy_record_parses_as_a_minted_record_does() {
        let decoy: TopicRecord = serde_json::from_str(DECOY_RECORD).expect("parses");
        assert_eq!(decoy.topic.len(), fhircast_proto::ids::random_token().len());
        assert!(decoy.user.is_some() && decoy.minted_at.is_some());
    }
}
