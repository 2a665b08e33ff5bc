//! The Redis bus of a gateway in cluster mode (DESIGN §3, §6): one RESP3 connection whose
//! push messages carry every topic channel this gateway holds sockets for. A channel is
//! subscribed when the first local socket of its topic arrives and unsubscribed when the
//! last one leaves; each message is decoded once and handed to the topic's fan-out.
//!
//! Gaps are never silent: when the connection drops (messages may have been missed while
//! it was down), every topic's subscription ends, and the fan-out resubscribes and
//! backfills from the topic's stream, or closes its sockets with 1011 if the stream no
//! longer covers the gap. A subscriber that falls behind (its queue is full) loses its
//! subscription the same way. Undecodable messages are logged and dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use fhircast_proto::TopicRef;
use fhircast_proto::bus::{Bus, BusError, BusSubscription, Envelope};
use fhircast_proto::redis_schema::{TopicKeys, topic_of_channel};

/// Envelopes queued per topic before its subscriber counts as fallen behind.
const ROUTE_CAPACITY: usize = 4096;
/// How often subscriptions nobody reads any more are unsubscribed.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);
/// Most stream entries one backfill reads.
const BACKFILL_LIMIT: usize = 10_000;

/// The Redis bus.
#[derive(Clone, Debug)]
pub struct RedisBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Carries the subscriptions (RESP3 pushes) and reads streams.
    conn: ConnectionManager,
    /// Channel → the topic fan-out's queue.
    routes: Mutex<HashMap<String, mpsc::Sender<Arc<Envelope>>>>,
}

impl Inner {
    fn routes(&self) -> MutexGuard<'_, HashMap<String, mpsc::Sender<Arc<Envelope>>>> {
        self.routes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl RedisBus {
    /// Connects to Redis (`url` must ask for RESP3, which [`resp3_url`] ensures) and starts
    /// routing pushed messages until `shutdown`.
    pub async fn connect(url: &str, shutdown: CancellationToken) -> Result<Self, BusError> {
        let client = redis::Client::open(resp3_url(url)).map_err(|_| BusError::Unavailable)?;
        let (pushes, received) = mpsc::unbounded_channel();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(pushes)
            .set_automatic_resubscription()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|err| {
                warn!(error = %err, "could not connect the bus to Redis");
                BusError::Unavailable
            })?;
        let bus = Self {
            inner: Arc::new(Inner {
                conn,
                routes: Mutex::new(HashMap::new()),
            }),
        };
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
            PushKind::Message => {
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
            }
            _ => {}
        }
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
            let mut conn = self.inner.conn.clone();
            if let Err(err) = conn.unsubscribe(&channel).await {
                debug!(error = %err, "could not unsubscribe a topic channel");
            }
        }
    }
}

/// Returns `url` asking for RESP3 (pushes need it).
pub fn resp3_url(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

#[async_trait::async_trait]
impl Bus for RedisBus {
    async fn subscribe(&self, topic: &TopicRef) -> Result<BusSubscription, BusError> {
        let channel = TopicKeys::of(topic).channel;
        let (sender, receiver) = mpsc::channel(ROUTE_CAPACITY);
        // Routed before SUBSCRIBE is sent, so nothing published after it returns is missed.
        self.inner.routes().insert(channel.clone(), sender);
        let mut conn = self.inner.conn.clone();
        if let Err(err) = conn.subscribe(&channel).await {
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
        let mut conn = self.inner.conn.clone();
        let entries: Vec<(String, Vec<(String, Vec<u8>)>)> = redis::cmd("XRANGE")
            .arg(&stream)
            .arg(format!("({after_seq}-0"))
            .arg("+")
            .arg("COUNT")
            .arg(BACKFILL_LIMIT)
            .query_async(&mut conn)
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
