//! The record a fault scenario keeps while the faults happen: publishes and what came of
//! them, subscribers and what their sockets saw.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

/// What came of one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: the hub accepted the event.
    Acked(u16),
    /// A 4xx or 5xx, with the `Retry-After` header if there was one.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The `Retry-After` header.
        retry_after: Option<String>,
    },
    /// No answer (timeout, connection error): it may or may not have been applied.
    Indeterminate(String),
}

/// One publish and what came of it.
#[derive(Debug, Clone)]
pub struct Publish {
    /// The topic published to.
    pub topic: String,
    /// The event id.
    pub id: String,
    /// The request body.
    pub event: Value,
    /// When the request was sent.
    pub sent: Instant,
    /// When the answer (or the failure) came.
    pub done: Instant,
    /// What came of it.
    pub outcome: Outcome,
}

impl Publish {
    /// Whether the hub acknowledged it (2xx).
    pub fn acked(&self) -> bool {
        matches!(self.outcome, Outcome::Acked(_))
    }

    /// Whether the hub refused it with a 4xx: it must never have been applied.
    pub(super) fn refused_for_good(&self) -> bool {
        matches!(self.outcome, Outcome::Refused { status, .. } if (400..500).contains(&status))
    }
}

/// How a subscriber's socket came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// The first attach of its first subscription.
    Subscribe,
    /// The same endpoint attached again after its socket went away.
    Reattach,
    /// A new subscription after the hub closed the socket with 1011.
    Resubscribe,
}

/// How a socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEnd {
    /// The hub sent a close frame with this code.
    Closed(Option<u16>),
    /// The connection went away without a close frame.
    Dropped(String),
    /// The test closed it (1000) at the end of the scenario.
    Stopped,
}

impl SocketEnd {
    /// A short label: the close code, `dropped`, `no code` or `stopped`.
    pub(super) fn label(&self) -> String {
        match self {
            Self::Closed(Some(code)) => code.to_string(),
            Self::Closed(None) => "no code".to_owned(),
            Self::Dropped(_) => "dropped".to_owned(),
            Self::Stopped => "stopped".to_owned(),
        }
    }

    /// Whether the hub closed it because it could not guarantee order (1011).
    pub fn is_gap(&self) -> bool {
        *self == Self::Closed(Some(1011))
    }
}

/// One socket of a subscriber.
#[derive(Debug, Clone)]
pub struct Socket {
    /// How it came to be.
    pub opening: Opening,
    /// The endpoint it attached to.
    pub endpoint: String,
    /// When its confirmation arrived.
    pub opened: Instant,
    /// When and how it ended.
    pub ended: Option<(Instant, SocketEnd)>,
}

/// One event notification a subscriber read.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The index of the socket it came on.
    pub socket: usize,
    /// The event id.
    pub id: String,
    /// `event.hub.event`.
    pub event: String,
    /// `event.hub.topic`.
    pub topic: String,
    /// When it was read.
    pub at: Instant,
}

/// Everything one subscriber saw.
#[derive(Debug, Clone)]
pub struct SubscriberLog {
    /// Its name in reports.
    pub name: String,
    /// The topic it subscribed to.
    pub topic: String,
    /// Its sockets, in order.
    pub sockets: Vec<Socket>,
    /// Its event notifications, in arrival order.
    pub notifications: Vec<Notification>,
    /// Messages that were neither a confirmation nor an event (a denial, …).
    pub other_messages: Vec<Value>,
    /// Why it stopped trying to reconnect, if it did.
    pub gave_up: Option<String>,
}

impl SubscriberLog {
    /// The time each reconnect took: from a socket's end to the next one's confirmation,
    /// with how the socket had ended.
    pub fn reconnects(&self) -> Vec<(SocketEnd, Duration)> {
        self.sockets
            .windows(2)
            .filter_map(|pair| {
                let (at, end) = pair[0].ended.clone()?;
                Some((end, pair[1].opened.saturating_duration_since(at)))
            })
            .collect()
    }
}

/// A subscriber's handle in a [`History`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberId(usize);

/// Which missing events a scenario tolerates (I1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gaps {
    /// None: every acknowledged event reaches every subscriber, whatever happened to its
    /// sockets (the hub backfills re-attached sockets, and backfills a bus gap). A 1011 is
    /// allowed but must not cost an event.
    Never,
    /// A subscriber whose socket the hub closed with 1011 and that subscribed again may
    /// miss the events published between the last one it got and its new subscription:
    /// the current context that subscription starts with supersedes them.
    SupersededAfter1011,
}

#[derive(Debug, Default)]
pub(super) struct Records {
    pub(super) publishes: Vec<Publish>,
    pub(super) subscribers: Vec<SubscriberLog>,
}

/// The shared record of a scenario: publishers and subscribers write to it from their
/// tasks; the scenario checks it. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct History(Arc<Mutex<Records>>);

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn records(&self) -> MutexGuard<'_, Records> {
        // A panic while holding the lock leaves consistent data (every write is one push).
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a publish.
    pub fn record_publish(&self, publish: Publish) {
        self.records().publishes.push(publish);
    }

    /// Adds a subscriber of `topic` (its first socket is recorded with
    /// [`History::socket_opened`]).
    pub fn add_subscriber(&self, name: &str, topic: &str) -> SubscriberId {
        let mut records = self.records();
        records.subscribers.push(SubscriberLog {
            name: name.to_owned(),
            topic: topic.to_owned(),
            sockets: Vec::new(),
            notifications: Vec::new(),
            other_messages: Vec::new(),
            gave_up: None,
        });
        SubscriberId(records.subscribers.len() - 1)
    }

    fn with_subscriber(&self, id: SubscriberId, change: impl FnOnce(&mut SubscriberLog)) {
        if let Some(log) = self.records().subscribers.get_mut(id.0) {
            change(log);
        }
    }

    /// Records that a socket of `id` got its confirmation.
    pub fn socket_opened(&self, id: SubscriberId, opening: Opening, endpoint: &str) {
        self.with_subscriber(id, |log| {
            log.sockets.push(Socket {
                opening,
                endpoint: endpoint.to_owned(),
                opened: Instant::now(),
                ended: None,
            });
        });
    }

    /// Records a message read on the current socket of `id`: an event notification, or
    /// anything else (kept aside).
    pub fn received(&self, id: SubscriberId, message: &Value) {
        let text = |pointer: &str| {
            message
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let at = Instant::now();
        self.with_subscriber(id, |log| {
            if message.get("event").is_none() {
                log.other_messages.push(message.clone());
                return;
            }
            log.notifications.push(Notification {
                socket: log.sockets.len().saturating_sub(1),
                id: text("/id"),
                event: text("/event/hub.event"),
                topic: text("/event/hub.topic"),
                at,
            });
        });
    }

    /// Records how the current socket of `id` ended.
    pub fn socket_ended(&self, id: SubscriberId, end: SocketEnd) {
        let at = Instant::now();
        self.with_subscriber(id, |log| {
            if let Some(socket) = log.sockets.last_mut()
                && socket.ended.is_none()
            {
                socket.ended = Some((at, end));
            }
        });
    }

    /// Records that `id` stopped trying to reconnect, and why.
    pub fn gave_up(&self, id: SubscriberId, why: String) {
        self.with_subscriber(id, |log| log.gave_up = Some(why));
    }

    /// Returns the publishes to `topic`, in publish order.
    pub fn publishes(&self, topic: &str) -> Vec<Publish> {
        self.records()
            .publishes
            .iter()
            .filter(|publish| publish.topic == topic)
            .cloned()
            .collect()
    }

    /// Returns the subscribers' logs.
    pub fn subscribers(&self) -> Vec<SubscriberLog> {
        self.records().subscribers.clone()
    }

    /// Returns how many publishes to `topic` sent at or after `since` were acknowledged.
    pub fn acks_sent_since(&self, topic: &str, since: Instant) -> usize {
        self.records()
            .publishes
            .iter()
            .filter(|publish| publish.topic == topic && publish.sent >= since && publish.acked())
            .count()
    }

    /// Returns when the first publish to `topic` sent at or after `since` and acknowledged
    /// was answered. One sent before `since` does not count even if answered after it: the
    /// fault may have come while its answer was on the way back (answered by a node frozen
    /// a moment later, say).
    pub fn first_ack_sent_since(&self, topic: &str, since: Instant) -> Option<Instant> {
        self.records()
            .publishes
            .iter()
            .filter(|publish| publish.topic == topic && publish.sent >= since && publish.acked())
            .map(|publish| publish.done)
            .min()
    }

    /// Describes the last `count` publishes that were not acknowledged, for failure
    /// messages.
    pub fn last_failures(&self, count: usize) -> String {
        let failures: Vec<String> = self
            .records()
            .publishes
            .iter()
            .rev()
            .filter(|publish| !publish.acked())
            .take(count)
            .map(|publish| format!("{:?}", publish.outcome))
            .collect();
        format!("last publishes not acknowledged (newest first): {failures:?}")
    }
}
