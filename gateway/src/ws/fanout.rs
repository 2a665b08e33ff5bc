//! Fan-out of a topic's bus envelopes to this gateway's sockets (DESIGN §10, the hot
//! path). One task per topic with local sockets holds the topic's bus subscription and
//! hands each envelope (encoded once, shared by `Arc`) to every socket's bounded outbox
//! with `try_send`: it never awaits a socket. A socket whose outbox is full is evicted
//! (closed 1008) instead of buffered; a gap in the topic's sequence that cannot be
//! backfilled closes the topic's sockets with 1011 so their clients resubscribe and get the
//! current context. It never skips silently.
//!
//! Sockets are keyed by a registration id of their own, never by endpoint: a handshake
//! registers before it attaches (so nothing published after the attach snapshot is
//! missed), and a refused handshake on an endpoint that already has a live socket must
//! leave that socket's registration untouched.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use fhircast_proto::bus::{Bus, BusSubscription};
use fhircast_proto::bus::{ControlAction, Delivery};
use fhircast_proto::bus::{Envelope, EnvelopeKind};
use fhircast_proto::{EndpointId, EventName, TopicRef};

/// Close code for a socket that does not keep up with its queue.
pub(crate) const CLOSE_SLOW: u16 = 1008;
/// Close code when delivery order could not be guaranteed (resubscribe).
pub(crate) const CLOSE_GAP: u16 = 1011;
/// Close code when the gateway hands its sockets back (drain, or out of the membership):
/// the client reconnects, through another gateway if there is one.
pub const CLOSE_RECONNECT: u16 = 1012;
/// Close code of a socket whose subscription ended (after its denial), as when the denial
/// arrives over the bus.
pub(crate) const CLOSE_ENDED: u16 = 1000;

/// Why the fan-out could not take a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FanoutError {
    /// The bus could not be subscribed.
    #[error("the bus is unavailable")]
    BusUnavailable,
}

/// A request to cut one socket, with the close code to use (and, for a subscription that
/// ended, the denial to send first).
#[derive(Debug, Default)]
pub(crate) struct Eviction {
    token: CancellationToken,
    code: AtomicU16,
    denial: OnceLock<Bytes>,
}

impl Eviction {
    pub(crate) fn evict(&self, code: u16) {
        let _ = self
            .code
            .compare_exchange(0, code, Ordering::Relaxed, Ordering::Relaxed);
        self.token.cancel();
    }

    /// Cuts the socket of a subscription that ended: `denial`, then [`CLOSE_ENDED`].
    pub(crate) fn end(&self, denial: Bytes) {
        let _ = self.denial.set(denial);
        self.evict(CLOSE_ENDED);
    }

    /// Returns the denial to send before closing, if the subscription ended.
    pub(crate) fn denial(&self) -> Option<&Bytes> {
        self.denial.get()
    }

    pub(crate) async fn evicted(&self) -> u16 {
        self.token.cancelled().await;
        self.code.load(Ordering::Relaxed)
    }
}

/// A socket's membership in its topic's fan-out; dropping it unregisters the socket.
#[derive(Debug)]
pub(crate) struct Registration {
    /// Envelopes for this socket, in topic order.
    pub(crate) outbox: mpsc::Receiver<Arc<Envelope>>,
    /// Set when the fan-out cuts the socket.
    pub(crate) eviction: Arc<Eviction>,
    topic: TopicRef,
    id: u64,
    fanout: Fanout,
}

impl Registration {
    /// Tells the fan-out where the socket's attachment stands (the topic's epoch and seq
    /// it reflects), so a bus subscription lost before the topic's next envelope is still
    /// recovered from there, and which events the attachment grants, so events the socket
    /// would only discard are not queued to it.
    pub(crate) fn note_attached(&self, epoch: u64, seq: u64, events: &[EventName]) {
        if let Some(sender) = self.fanout.lock().get(&self.topic) {
            let _ = sender.send(Box::new(Command::Position { epoch, seq }));
            let _ = sender.send(Box::new(Command::Granted {
                id: self.id,
                seq,
                events: events.into(),
            }));
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.fanout.unregister(&self.topic, self.id);
    }
}

/// Sent boxed: the channel allocates a block of 32 slots up front, for every topic.
enum Command {
    Register {
        id: u64,
        endpoint: EndpointId,
        outbox: mpsc::Sender<Arc<Envelope>>,
        eviction: Arc<Eviction>,
        ready: oneshot::Sender<()>,
    },
    Unregister {
        id: u64,
    },
    /// An attached socket's position: the fan-out's starting point until it has seen an
    /// envelope of its own.
    Position {
        epoch: u64,
        seq: u64,
    },
    /// The events socket `id`'s attachment (reflecting `seq`) grants.
    Granted {
        id: u64,
        seq: u64,
        events: Arc<[EventName]>,
    },
    /// Close every socket of the topic with this code.
    EvictAll {
        code: u16,
    },
    /// Reply with the endpoints of the topic's sockets (revalidation).
    Endpoints {
        reply: oneshot::Sender<Vec<EndpointId>>,
    },
    /// The endpoint's subscription ended: send its sockets this denial and close them.
    End {
        endpoint: EndpointId,
        denial: Bytes,
    },
}

/// The per-topic fan-out tasks of this gateway.
#[derive(Clone, Debug)]
pub struct Fanout {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bus: Arc<dyn Bus>,
    topics: Mutex<HashMap<TopicRef, mpsc::UnboundedSender<Box<Command>>>>,
    next_id: AtomicU64,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Fanout {
    /// Creates the fan-out over `bus`.
    pub fn new(bus: Arc<dyn Bus>, tracker: TaskTracker, shutdown: CancellationToken) -> Self {
        Self {
            inner: Arc::new(Inner {
                bus,
                topics: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                tracker,
                shutdown,
            }),
        }
    }

    /// Registers a socket of `topic`; returns once the topic's bus subscription is live,
    /// so everything published afterwards reaches the socket's outbox.
    pub(crate) async fn register(
        &self,
        topic: &TopicRef,
        endpoint: &EndpointId,
        capacity: usize,
    ) -> Result<Registration, FanoutError> {
        let (outbox_tx, outbox) = mpsc::channel(capacity.max(1));
        let eviction = Arc::new(Eviction::default());
        let (ready_tx, ready) = oneshot::channel();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let command = Box::new(Command::Register {
            id,
            endpoint: endpoint.clone(),
            outbox: outbox_tx,
            eviction: Arc::clone(&eviction),
            ready: ready_tx,
        });
        {
            let mut topics = self.lock();
            // A topic task that is exiting hands the command back; start a fresh one.
            let unsent = match topics.get(topic) {
                Some(sender) => sender.send(command).err().map(|returned| returned.0),
                None => Some(command),
            };
            if let Some(command) = unsent {
                let (sender, receiver) = mpsc::unbounded_channel();
                let _ = sender.send(command);
                topics.insert(topic.clone(), sender);
                let task = TopicFanout {
                    topic: topic.clone(),
                    fanout: self.clone(),
                    commands: receiver,
                    sockets: HashMap::new(),
                    by_endpoint: HashMap::new(),
                    last: None,
                    recent: VecDeque::new(),
                    attached_through: 0,
                };
                self.inner.tracker.spawn(task.run());
            }
        }
        ready.await.map_err(|_| FanoutError::BusUnavailable)?;
        Ok(Registration {
            outbox,
            eviction,
            topic: topic.clone(),
            id,
            fanout: self.clone(),
        })
    }

    /// Closes every socket of every topic with `code` (the gateway can no longer vouch for
    /// their delivery, e.g. it fell out of the cluster's membership).
    pub fn evict_everything(&self, code: u16) {
        for sender in self.lock().values() {
            let _ = sender.send(Box::new(Command::EvictAll { code }));
        }
    }

    /// Returns the topics with local sockets.
    pub(crate) fn topics(&self) -> Vec<TopicRef> {
        self.lock().keys().cloned().collect()
    }

    /// Returns the endpoints of `topic`'s local sockets (empty if it has none, or its
    /// fan-out is ending).
    pub(crate) async fn endpoints(&self, topic: &TopicRef) -> Vec<EndpointId> {
        let (reply, answer) = oneshot::channel();
        let Some(sender) = self.lock().get(topic).cloned() else {
            return Vec::new();
        };
        if sender.send(Box::new(Command::Endpoints { reply })).is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Sends `denial` to the local sockets of `endpoint` of `topic` and closes them, as a
    /// denial arriving over the bus would.
    pub(crate) fn end(&self, topic: &TopicRef, endpoint: EndpointId, denial: Bytes) {
        if let Some(sender) = self.lock().get(topic) {
            let _ = sender.send(Box::new(Command::End { endpoint, denial }));
        }
    }

    /// Returns the bus the fan-out reads (sockets backfill what they missed from it).
    pub(crate) fn bus(&self) -> &Arc<dyn Bus> {
        &self.inner.bus
    }

    fn unregister(&self, topic: &TopicRef, id: u64) {
        if let Some(sender) = self.lock().get(topic) {
            let _ = sender.send(Box::new(Command::Unregister { id }));
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<TopicRef, mpsc::UnboundedSender<Box<Command>>>> {
        self.inner
            .topics
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

struct SocketEntry {
    endpoint: EndpointId,
    outbox: mpsc::Sender<Arc<Envelope>>,
    eviction: Arc<Eviction>,
    /// The events the socket is granted and the seq that grant dates from; until the
    /// attachment reports it, every event is offered (the socket filters as well).
    granted: Option<(u64, Arc<[EventName]>)>,
}

impl SocketEntry {
    /// Whether the socket would send any of `deliveries` (a pre-filter: the socket's own
    /// check stays authoritative, this only spares it the wake-up).
    fn wants(&self, deliveries: &[Delivery]) -> bool {
        self.granted
            .as_ref()
            .is_none_or(|(_, events)| deliveries.iter().any(|delivery| delivery.is_for(events)))
    }

    /// Records a grant unless a later one is already known.
    fn grant(&mut self, seq: u64, events: &Arc<[EventName]>) {
        if self.granted.as_ref().is_none_or(|(known, _)| *known <= seq) {
            self.granted = Some((seq, Arc::clone(events)));
        }
    }
}

struct TopicFanout {
    topic: TopicRef,
    fanout: Fanout,
    commands: mpsc::UnboundedReceiver<Box<Command>>,
    /// Registered sockets by registration id.
    sockets: HashMap<u64, SocketEntry>,
    /// Registration ids by endpoint (a live socket, and briefly a handshake in progress).
    by_endpoint: HashMap<EndpointId, Vec<u64>>,
    /// The epoch and seq of the last envelope handed out.
    last: Option<(u64, u64)>,
    /// What the last envelopes handed out carried (seq, first event id or endpoint), to
    /// tell a repeat (dropped) from a seq the topic reused with other content (a store
    /// that lost acknowledged writes: the topic's sockets are closed with 1011).
    recent: VecDeque<(u64, Arc<str>)>,
    /// The seq an attachment reflected when the fan-out started from its position:
    /// envelopes up to it may still arrive (published before the attach) and are repeats.
    attached_through: u64,
}

impl TopicFanout {
    async fn run(mut self) {
        let bus = Arc::clone(&self.fanout.inner.bus);
        let shutdown = self.fanout.inner.shutdown.clone();
        let Ok(mut subscription) = bus.subscribe(&self.topic).await else {
            warn!(topic = %self.topic, "could not subscribe to the topic's bus channel");
            self.fanout.lock().remove(&self.topic);
            return;
        };
        loop {
            tokio::select! {
                // On a drain each socket closes itself with 1012; nothing to cut here.
                () = shutdown.cancelled() => return,
                command = self.commands.recv() => {
                    let Some(command) = command else { break };
                    self.apply(*command);
                    if self.sockets.is_empty() && self.retire() {
                        return;
                    }
                }
                // Boxed: an idle topic keeps only its waits, not a dispatch's state.
                envelope = subscription.receiver.recv() => match envelope {
                    Some(envelope) => Box::pin(self.dispatch(envelope, bus.as_ref())).await,
                    None => match Box::pin(self.recover(bus.as_ref())).await {
                        Some(renewed) => subscription = renewed,
                        None => break,
                    },
                },
            }
        }
        // The bus is gone: delivery order can no longer be guaranteed.
        self.evict_all(CLOSE_GAP);
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::Register {
                id,
                endpoint,
                outbox,
                eviction,
                ready,
            } => {
                self.by_endpoint
                    .entry(endpoint.clone())
                    .or_default()
                    .push(id);
                self.sockets.insert(
                    id,
                    SocketEntry {
                        endpoint,
                        outbox,
                        eviction,
                        granted: None,
                    },
                );
                let _ = ready.send(());
            }
            Command::Unregister { id } => self.remove(id),
            Command::EvictAll { code } => self.evict_all(code),
            Command::Endpoints { reply } => {
                let _ = reply.send(self.by_endpoint.keys().cloned().collect());
            }
            Command::End { endpoint, denial } => self.end(&endpoint, &denial),
            Command::Position { epoch, seq } => {
                if self.last.is_none() {
                    self.last = Some((epoch, seq));
                    self.attached_through = seq;
                }
            }
            Command::Granted { id, seq, events } => {
                if let Some(socket) = self.sockets.get_mut(&id) {
                    socket.grant(seq, &events);
                }
            }
        }
    }

    fn remove(&mut self, id: u64) {
        let Some(socket) = self.sockets.remove(&id) else {
            return;
        };
        if let Some(ids) = self.by_endpoint.get_mut(&socket.endpoint) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                self.by_endpoint.remove(&socket.endpoint);
            }
        }
    }

    /// Leaves the topic map when no socket is left, unless a registration is already
    /// queued (registrations are queued under the same lock, so none is lost).
    fn retire(&mut self) -> bool {
        let fanout = self.fanout.clone();
        let mut topics = fanout.lock();
        while let Ok(command) = self.commands.try_recv() {
            self.apply(*command);
        }
        if self.sockets.is_empty() {
            topics.remove(&self.topic);
            return true;
        }
        false
    }

    async fn dispatch(&mut self, envelope: Arc<Envelope>, bus: &dyn Bus) {
        let seq = envelope.seq;
        let last_seen = self.last;
        match last_seen {
            Some((epoch, last)) if epoch == envelope.epoch && seq <= last => {
                let repeat = self
                    .recent
                    .iter()
                    .any(|(seen, mark)| *seen == seq && *mark == content_mark(&envelope));
                if repeat || seq <= self.attached_through || seq + RECENT_ENVELOPES as u64 <= last {
                    return;
                }
                warn!(
                    topic = %self.topic,
                    seq,
                    last,
                    "the topic reused a seq with other content (its store lost acknowledged \
                     changes); closing its sockets (1011)"
                );
                self.evict_all(CLOSE_GAP);
                self.recent.clear();
                self.attached_through = 0;
            }
            Some((epoch, last))
                if epoch == envelope.epoch
                    && seq > last + 1
                    && !self.backfill(bus, epoch, last).await =>
            {
                return;
            }
            Some((epoch, _)) if epoch != envelope.epoch => {
                // The topic's sequence restarted: order can no longer be proven.
                self.evict_all(CLOSE_GAP);
                self.recent.clear();
                self.attached_through = 0;
            }
            _ => {}
        }
        self.last = Some((envelope.epoch, seq));
        self.remember(&envelope);
        self.offer(&envelope);
    }

    fn remember(&mut self, envelope: &Envelope) {
        if self.recent.len() >= RECENT_ENVELOPES {
            self.recent.pop_front();
        }
        self.recent
            .push_back((envelope.seq, content_mark(envelope)));
    }

    /// Hands an envelope to the sockets it concerns: an event to every socket granted one
    /// of its notifications that it does not exclude, a control envelope to the sockets of
    /// its endpoint (a new confirmation updating what the socket is granted).
    fn offer(&mut self, envelope: &Arc<Envelope>) {
        match &envelope.kind {
            EnvelopeKind::Event {
                exclude,
                deliveries,
            } => {
                let mut evicted = Vec::new();
                for (id, socket) in &self.sockets {
                    if socket.wants(deliveries)
                        && !exclude.contains(&socket.endpoint)
                        && !offer(socket, envelope)
                    {
                        evicted.push(*id);
                    }
                }
                for id in evicted {
                    self.remove(id);
                }
            }
            EnvelopeKind::Control { endpoint, action } => {
                let ids = self.by_endpoint.get(endpoint).cloned().unwrap_or_default();
                if let ControlAction::Confirm { events, .. } = action {
                    let events: Arc<[EventName]> = events.as_slice().into();
                    for id in &ids {
                        if let Some(socket) = self.sockets.get_mut(id) {
                            socket.grant(envelope.seq, &events);
                        }
                    }
                }
                for id in ids {
                    let keep = self
                        .sockets
                        .get(&id)
                        .is_none_or(|socket| offer(socket, envelope));
                    if !keep {
                        self.remove(id);
                    }
                }
            }
        }
    }

    /// Delivers the envelopes missed after `last`; false (and every socket cut) if they
    /// are not all available.
    async fn backfill(&mut self, bus: &dyn Bus, epoch: u64, last: u64) -> bool {
        match bus.backfill(&self.topic, epoch, last).await {
            Ok(Some(missing)) => {
                for envelope in missing {
                    self.last = Some((epoch, envelope.seq));
                    self.remember(&envelope);
                    self.offer(&envelope);
                }
                true
            }
            _ => {
                warn!(topic = %self.topic, "gap in the topic's sequence could not be backfilled; closing its sockets (1011)");
                self.evict_all(CLOSE_GAP);
                self.last = None;
                self.recent.clear();
                self.attached_through = 0;
                false
            }
        }
    }

    /// Re-subscribes after the bus dropped this subscription, then backfills what was
    /// missed meanwhile.
    async fn recover(&mut self, bus: &dyn Bus) -> Option<BusSubscription> {
        debug!(topic = %self.topic, "bus subscription lost, resubscribing");
        let renewed = bus.subscribe(&self.topic).await.ok()?;
        if let Some((epoch, last)) = self.last {
            self.backfill(bus, epoch, last).await;
        }
        Some(renewed)
    }

    fn end(&mut self, endpoint: &EndpointId, denial: &Bytes) {
        for id in self.by_endpoint.remove(endpoint).unwrap_or_default() {
            if let Some(socket) = self.sockets.remove(&id) {
                socket.eviction.end(denial.clone());
            }
        }
    }

    fn evict_all(&mut self, code: u16) {
        for (_, socket) in self.sockets.drain() {
            socket.eviction.evict(code);
        }
        self.by_endpoint.clear();
    }
}

/// How many recent envelopes a topic's fan-out remembers to recognise repeats.
const RECENT_ENVELOPES: usize = 256;

/// What distinguishes one envelope's content from another's at the same seq.
fn content_mark(envelope: &Envelope) -> Arc<str> {
    match &envelope.kind {
        EnvelopeKind::Event { deliveries, .. } => deliveries
            .first()
            .map_or_else(|| Arc::from(""), |delivery| Arc::clone(&delivery.event_id)),
        EnvelopeKind::Control { endpoint, .. } => {
            Arc::from(format!("control:{}", endpoint.expose()))
        }
    }
}

/// Hands an envelope to a socket without waiting; a full outbox evicts the socket.
fn offer(socket: &SocketEntry, envelope: &Arc<Envelope>) -> bool {
    match socket.outbox.try_send(Arc::clone(envelope)) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            info!(
                topic = %envelope.topic,
                endpoint = %socket.endpoint,
                "closing a socket that does not keep up with its notifications (1008)"
            );
            socket.eviction.evict(CLOSE_SLOW);
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

#[cfg(test)]
#[path = "fanout_tests.rs"]
mod tests;
