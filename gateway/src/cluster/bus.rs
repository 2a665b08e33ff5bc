//! The Redis bus of a gateway in cluster mode (DESIGN §3, §6): one RESP3 connection whose
//! push messages carry every topic channel this gateway holds sockets for. A channel is
//! subscribed when the first local socket of its topic arrives and unsubscribed when the
//! last one leaves; each message is decoded once and handed to the topic's fan-out. On a
//! Redis Cluster the channels are sharded (`SSUBSCRIBE`); with Sentinel the subscriber
//! follows the primary after a failover.
//!
//! Gaps are never silent: when the connection drops (messages may have been missed while
//! it was down), every topic's subscription ends, and the fan-out resubscribes and
//! backfills from the topic's stream, or closes its sockets with 1011 if the stream no
//! longer covers the gap. A subscriber that falls behind (its queue is full) loses its
//! subscription the same way. Undecodable messages are logged and dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::ConnectionManager;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, RedisResult, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use fhircast_proto::TopicRef;
use fhircast_proto::bus::{Bus, BusError, BusSubscription, Envelope};
use fhircast_proto::redis_schema::{TopicKeys, topic_of_channel};
use hub_node::cluster::redis::{REDIS_TIMEOUT, RedisConn, RedisTarget, manager_config, resp3};
use hub_node::cluster::sentinel_watch::{
    address_of, connect_if_moved, follow_announcements, watch_primary,
};

/// Envelopes queued per topic before its subscriber counts as fallen behind.
const ROUTE_CAPACITY: usize = 4096;
/// How often subscriptions nobody reads any more are unsubscribed.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Most stream entries one backfill reads.
const BACKFILL_LIMIT: usize = 10_000;

type Pushes = mpsc::UnboundedSender<PushInfo>;

/// The connection carrying the subscriptions.
#[derive(Clone)]
enum Subscriber {
    /// One server or the Sentinel primary (replaced after a failover).
    Primary(Arc<RwLock<Listening>>),
    /// A Redis Cluster: sharded pub/sub.
    Cluster(ClusterConnection),
}

impl Subscriber {
    async fn connect(target: &RedisTarget, pushes: Pushes) -> RedisResult<Self> {
        match target {
            RedisTarget::Cluster { nodes } => {
                let client = ClusterClientBuilder::new(nodes.clone())
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(pushes)
                    .connection_timeout(REDIS_TIMEOUT)
                    .response_timeout(REDIS_TIMEOUT)
                    .build()?;
                Ok(Self::Cluster(client.get_async_connection().await?))
            }
            _ => {
                let listening = listen_on_primary(target, pushes).await?;
                Ok(Self::Primary(Arc::new(RwLock::new(listening))))
            }
        }
    }

    async fn subscribe(&self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Primary(manager) => read(manager).subscribe(channel).await,
            Self::Cluster(conn) => conn.clone().ssubscribe(channel).await,
        }
    }

    /// Round-trips a PING on the subscriber's own connection: its answer arrives after
    /// every message Redis pushed before it.
    async fn ping(&self) -> RedisResult<()> {
        let ping = redis::cmd("PING");
        match self {
            Self::Primary(manager) => ping.query_async::<()>(&mut read(manager)).await,
            Self::Cluster(conn) => ping.query_async::<()>(&mut conn.clone()).await,
        }
    }

    async fn unsubscribe(&self, channel: &str) -> RedisResult<()> {
        match self {
            Self::Primary(manager) => read(manager).unsubscribe(channel).await,
            Self::Cluster(conn) => conn.clone().sunsubscribe(channel).await,
        }
    }
}

/// The subscriber's connection to the primary and the server it reaches.
struct Listening {
    manager: ConnectionManager,
    address: Option<String>,
}

fn read(listening: &RwLock<Listening>) -> ConnectionManager {
    listening
        .read()
        .unwrap_or_else(|poison| poison.into_inner())
        .manager
        .clone()
}

/// A RESP3 connection to the current primary whose pushes go to `pushes`.
async fn listen_on_primary(target: &RedisTarget, pushes: Pushes) -> RedisResult<Listening> {
    let client = target.primary_client().await?;
    let address = address_of(&client);
    let manager = listen_on(client, pushes).await?;
    Ok(Listening { manager, address })
}

/// A RESP3 connection to the server of `client` whose pushes go to `pushes`.
async fn listen_on(client: redis::Client, pushes: Pushes) -> RedisResult<ConnectionManager> {
    let config = manager_config()
        .set_push_sender(pushes)
        .set_automatic_resubscription();
    ConnectionManager::new_with_config(resp3(&client)?, config).await
}

/// The Redis bus.
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisBus({:?})", self.inner.target)
    }
}

struct Inner {
    target: RedisTarget,
    subscriber: Subscriber,
    /// Where pushes of a replacement subscriber go.
    pushes: Pushes,
    /// Reads topic streams for backfill.
    reader: RedisConn,
    /// Channel → the topic fan-out's queue.
    routes: Mutex<HashMap<String, mpsc::Sender<Arc<Envelope>>>>,
    /// A failover is being followed (one at a time).
    following: AtomicBool,
}

impl Inner {
    fn routes(&self) -> MutexGuard<'_, HashMap<String, mpsc::Sender<Arc<Envelope>>>> {
        self.routes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl RedisBus {
    /// Connects to Redis and starts routing pushed messages until `shutdown`.
    pub async fn connect(
        target: &RedisTarget,
        reader: RedisConn,
        shutdown: CancellationToken,
    ) -> Result<Self, BusError> {
        let (pushes, received) = mpsc::unbounded_channel();
        let subscriber = Subscriber::connect(target, pushes.clone())
            .await
            .map_err(|err| {
                warn!(error = %err, "could not connect the bus to Redis");
                BusError::Unavailable
            })?;
        let bus = Self {
            inner: Arc::new(Inner {
                target: target.clone(),
                subscriber,
                pushes,
                reader,
                routes: Mutex::new(HashMap::new()),
                following: AtomicBool::new(false),
            }),
        };
        if let (Some(named), Subscriber::Primary(listening)) =
            (watch_primary(target), &bus.inner.subscriber)
        {
            let (listening, follower, shutdown) =
                (Arc::clone(listening), bus.clone(), shutdown.clone());
            let in_use = move || {
                (!shutdown.is_cancelled()).then(|| {
                    listening
                        .read()
                        .unwrap_or_else(|poison| poison.into_inner())
                        .address
                        .clone()
                })
            };
            tokio::spawn(follow_announcements(named, in_use, move |announced| {
                follower.follow_failover(Some(announced));
            }));
        }
        tokio::spawn(bus.clone().route(received, shutdown));
        Ok(bus)
    }

    /// Routes pushed messages to their topics; sweeps unread subscriptions.
    async fn route(
        self,
        mut received: mpsc::UnboundedReceiver<PushInfo>,
        shutdown: CancellationToken,
    ) {
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                push = received.recv() => match push {
                    Some(push) => self.on_push(push),
                    None => break,
                },
                _ = sweep.tick() => self.sweep().await,
            }
        }
    }

    fn on_push(&self, push: PushInfo) {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {
                let mut data = push.data.into_iter();
                let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                    warn!("dropped a bus message without channel or payload");
                    return;
                };
                self.deliver(&channel, payload);
            }
            PushKind::Disconnection => {
                // Anything may have been missed while the connection was down: every
                // subscriber resubscribes and backfills.
                let dropped = std::mem::take(&mut *self.inner.routes());
                if !dropped.is_empty() {
                    warn!(
                        topics = dropped.len(),
                        "bus connection to Redis lost; topics resubscribe and backfill"
                    );
                }
                self.follow_failover(None);
            }
            _ => {}
        }
    }

    /// With Sentinel, a lost connection may mean the primary moved, and the sentinels may
    /// name another one: move the subscriber to the server they name now, unless it is the
    /// one in use (whose connection resubscribes by itself). One move at a time.
    fn follow_failover(&self, announced: Option<String>) {
        let (RedisTarget::Sentinel { .. }, Subscriber::Primary(listening)) =
            (&self.inner.target, &self.inner.subscriber)
        else {
            return;
        };
        if self.inner.following.swap(true, Ordering::AcqRel) {
            return;
        }
        let listening = Arc::clone(listening);
        let bus = self.clone();
        tokio::spawn(async move {
            let inner = &bus.inner;
            let in_use = listening
                .read()
                .unwrap_or_else(|poison| poison.into_inner())
                .address
                .clone();
            let moved = connect_if_moved(&inner.target, in_use, announced, |client| {
                listen_on(client, inner.pushes.clone())
            })
            .await;
            if let Some((manager, address)) = moved {
                *listening
                    .write()
                    .unwrap_or_else(|poison| poison.into_inner()) = Listening { manager, address };
                // Subscriptions made on the old connection are gone with it: every topic
                // resubscribes (on the new one) and backfills.
                std::mem::take(&mut *inner.routes());
                info!("bus moved to the primary the sentinels name");
            }
            inner.following.store(false, Ordering::Release);
        });
    }

    fn deliver(&self, channel: &Value, payload: Value) {
        let (Value::BulkString(channel), Value::BulkString(payload)) = (channel, payload) else {
            warn!("dropped a bus message that is not a pair of strings");
            return;
        };
        let Ok(channel) = std::str::from_utf8(channel) else {
            warn!("dropped a bus message on a channel that is not UTF-8");
            return;
        };
        let Ok((envelope, _trace)) = Envelope::from_wire(Bytes::from(payload)) else {
            warn!(channel, "dropped an undecodable bus message");
            return;
        };
        if topic_of_channel(channel) != Some(envelope.topic.as_str()) {
            warn!(
                channel,
                "dropped a bus message naming another topic than its channel"
            );
            return;
        }
        let mut routes = self.inner.routes();
        let Some(route) = routes.get(channel) else {
            return;
        };
        if route.try_send(Arc::new(envelope)).is_err() {
            // Fallen behind or gone: ending the subscription makes the fan-out recover.
            debug!(channel, "bus subscriber fell behind; its subscription ends");
            routes.remove(channel);
        }
    }

    /// Round-trips a PING on the connection carrying the subscriptions (see
    /// [`super::bus_health`]).
    pub(crate) async fn ping(&self) -> Result<(), BusError> {
        self.inner
            .subscriber
            .ping()
            .await
            .map_err(|_| BusError::Unavailable)
    }

    /// Unsubscribes channels whose fan-out went away.
    async fn sweep(&self) {
        let unread: Vec<String> = {
            let mut routes = self.inner.routes();
            let unread: Vec<String> = routes
                .iter()
                .filter(|(_, route)| route.is_closed())
                .map(|(channel, _)| channel.clone())
                .collect();
            for channel in &unread {
                routes.remove(channel);
            }
            unread
        };
        for channel in unread {
            if let Err(err) = self.inner.subscriber.unsubscribe(&channel).await {
                debug!(error = %err, "could not unsubscribe a topic channel");
            }
        }
    }
}

#[async_trait::async_trait]
impl Bus for RedisBus {
    async fn subscribe(&self, topic: &TopicRef) -> Result<BusSubscription, BusError> {
        let channel = TopicKeys::of(topic).channel;
        let (sender, receiver) = mpsc::channel(ROUTE_CAPACITY);
        // Routed before SUBSCRIBE is sent, so nothing published after it returns is missed.
        self.inner.routes().insert(channel.clone(), sender);
        if let Err(err) = self.inner.subscriber.subscribe(&channel).await {
            debug!(error = %err, "could not subscribe a topic channel");
            self.inner.routes().remove(&channel);
            return Err(BusError::Unavailable);
        }
        Ok(BusSubscription { receiver })
    }

    async fn backfill(
        &self,
        topic: &TopicRef,
        epoch: u64,
        after_seq: u64,
    ) -> Result<Option<Vec<Arc<Envelope>>>, BusError> {
        let stream = TopicKeys::of(topic).stream;
        let entries: Vec<(String, Vec<(String, Vec<u8>)>)> = redis::cmd("XRANGE")
            .arg(&stream)
            .arg(format!("({after_seq}-0"))
            .arg("+")
            .arg("COUNT")
            .arg(BACKFILL_LIMIT)
            .query_async(&mut self.inner.reader.clone())
            .await
            .map_err(|_| BusError::Unavailable)?;
        let mut envelopes = Vec::with_capacity(entries.len());
        for (expected, (_, fields)) in (after_seq + 1..).zip(entries) {
            let Some((_, payload)) = fields.into_iter().find(|(name, _)| name == "e") else {
                return Ok(None);
            };
            let Ok((envelope, _)) = Envelope::from_wire(Bytes::from(payload)) else {
                warn!(topic = %topic, "an undecodable entry in the topic stream; cannot backfill");
                return Ok(None);
            };
            if envelope.epoch != epoch || envelope.seq != expected {
                // Trimmed, restarted, or rolled back: the gap cannot be filled.
                return Ok(None);
            }
            envelopes.push(Arc::new(envelope));
        }
        Ok(Some(envelopes))
    }
}
