//! What a fault scenario saw, and the invariants it must keep.
//!
//! A [`History`] records, while the faults happen:
//!
//! - per topic, every publish: its event id and body, when it was sent and answered, and its
//!   [`Outcome`]: acknowledged (2xx), refused (4xx/5xx, with `Retry-After`) or
//!   indeterminate (no answer: it may or may not have been applied);
//! - per subscriber (one app, across its sockets and subscriptions): every socket it
//!   opened and how ([`Opening`]), every notification it read (event id, event name, the
//!   topic the frame names, arrival order, which socket) and how each socket ended
//!   ([`SocketEnd`]: the hub's close code, a dropped connection, or stopped by the test).
//!
//! [`History::check`] then checks, for every subscriber `S` of topic `T`:
//!
//! - **I1 (delivery)**: every publish to `T` acknowledged after `S` subscribed (and before
//!   the test stopped it) reaches `S`, on its first socket or after a re-attach or a
//!   backfill. The only exception is the one [`Gaps`] allows: with
//!   [`Gaps::SupersededAfter1011`], events `S` missed because the hub closed its socket with
//!   1011 are superseded by the current context its new subscription starts with.
//! - **I2 (order, no silent gap)**: the acknowledged events reach `S` in publish order
//!   (each counted at its first arrival; re-deliveries are allowed); an event may be
//!   missing only under the 1011 rule above: the socket was closed with 1011 and `S`
//!   subscribed again, and the event was published between the last one `S` got before the
//!   close and the first one its new subscription delivered (and before that subscription
//!   was attached).
//! - **I3 (isolation)**: every notification names `T`, and carries an event that was
//!   published to `T` and not refused with a 4xx.
//!
//! Duplicates are counted and reported, not failed: delivery is at least once.
//! [`History::check_state`] adds **I4 (state)**: the event ids the topic's state accepted
//! hold every acknowledged event exactly once, in publish order, and nothing never
//! published or refused with a 4xx (5xx and indeterminate publishes may be there or not).
//!
//! "Publish order" is the order publishes were recorded; a scenario publishes to a topic
//! from one sequential publisher ([`crate::faults::Publisher`]), so it is also the order
//! the hub received them in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::Value;
use tokio::time::Instant;

use crate::eventually::eventually;

/// How many examples a violation lists.
const EXAMPLES: usize = 3;

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
    fn refused_for_good(&self) -> bool {
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
    fn label(&self) -> String {
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
struct Records {
    publishes: Vec<Publish>,
    subscribers: Vec<SubscriberLog>,
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

    fn records(&self) -> MutexGuard<'_, Records> {
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

    /// Checks I1–I3 for every subscriber and returns the figures and violations.
    pub fn check(&self, gaps: Gaps) -> Report {
        let records = self.records();
        let mut report = Report::default();
        let topics: Vec<&str> = {
            let mut seen = HashSet::new();
            records
                .publishes
                .iter()
                .map(|publish| publish.topic.as_str())
                .chain(records.subscribers.iter().map(|log| log.topic.as_str()))
                .filter(|topic| seen.insert(*topic))
                .collect()
        };
        for topic in topics {
            let publishes: Vec<&Publish> = records
                .publishes
                .iter()
                .filter(|publish| publish.topic == topic)
                .collect();
            report.topics.push(TopicFigures::of(topic, &publishes));
            for log in records.subscribers.iter().filter(|log| log.topic == topic) {
                let (figures, violations) = check_subscriber(log, &publishes, gaps);
                report.subscribers.push(figures);
                report.violations.extend(violations);
            }
        }
        report
    }

    /// Waits until no subscriber misses an acknowledged event (I1 with `gaps`), or
    /// `deadline` passes, and returns [`History::check`] then: the subscribers keep reading
    /// (and reconnecting) meanwhile.
    pub async fn settle(&self, gaps: Gaps, deadline: Duration) -> Report {
        let _ = eventually("every subscriber got what it is due", deadline, || {
            let missing = self
                .check(gaps)
                .subscribers
                .iter()
                .map(|figures| figures.missing)
                .sum::<usize>();
            async move { Ok((missing == 0).then_some(())) }
        })
        .await;
        self.check(gaps)
    }

    /// Checks I4 against the event ids `topic`'s state accepted, oldest first (read after
    /// the publishes ended; the list must not have reached its cap).
    pub fn check_state(&self, topic: &str, accepted: &[String]) -> StateFigures {
        let publishes = self.publishes(topic);
        let by_id: HashMap<&str, &Publish> = publishes
            .iter()
            .map(|publish| (publish.id.as_str(), publish))
            .collect();
        let mut figures = StateFigures {
            accepted: accepted.len(),
            ..StateFigures::default()
        };
        let mut position = HashMap::new();
        let mut twice = Vec::new();
        let mut strangers = Vec::new();
        let mut refused = Vec::new();
        for (at, id) in accepted.iter().enumerate() {
            if position.insert(id.as_str(), at).is_some() {
                twice.push(id.clone());
            }
            match by_id.get(id.as_str()) {
                None => strangers.push(id.clone()),
                Some(publish) if publish.refused_for_good() => refused.push(id.clone()),
                Some(publish) if !publish.acked() => figures.unacked_applied += 1,
                Some(_) => {}
            }
        }
        let acked: Vec<&Publish> = publishes.iter().filter(|p| p.acked()).collect();
        let lost: Vec<String> = acked
            .iter()
            .filter(|publish| !position.contains_key(publish.id.as_str()))
            .map(|publish| publish.id.clone())
            .collect();
        let placed: Vec<(usize, &str)> = acked
            .iter()
            .filter_map(|publish| {
                position
                    .get(publish.id.as_str())
                    .map(|at| (*at, publish.id.as_str()))
            })
            .collect();
        let disordered: Vec<String> = placed
            .windows(2)
            .filter(|pair| pair[1].0 < pair[0].0)
            .map(|pair| format!("{} before {}", pair[1].1, pair[0].1))
            .collect();
        let mut violate = |what: &str, ids: &[String]| {
            if !ids.is_empty() {
                figures.violations.push(format!(
                    "I4 {topic}: {} {what} (e.g. {})",
                    ids.len(),
                    examples(ids)
                ));
            }
        };
        violate("acknowledged events missing from the state", &lost);
        violate("events accepted twice in the state", &twice);
        violate("events in the state that were never published", &strangers);
        violate("events in the state that were refused with a 4xx", &refused);
        violate(
            "acknowledged events out of publish order in the state",
            &disordered,
        );
        figures
    }
}

fn examples(ids: &[String]) -> String {
    let shown: Vec<&str> = ids.iter().take(EXAMPLES).map(String::as_str).collect();
    shown.join(", ")
}

/// Checks one subscriber against its topic's publishes (in publish order).
fn check_subscriber(
    log: &SubscriberLog,
    publishes: &[&Publish],
    gaps: Gaps,
) -> (SubscriberFigures, Vec<String>) {
    let name = &log.name;
    let mut violations = Vec::new();
    let acked: Vec<&Publish> = publishes.iter().copied().filter(|p| p.acked()).collect();
    let index: HashMap<&str, usize> = acked
        .iter()
        .enumerate()
        .map(|(at, publish)| (publish.id.as_str(), at))
        .collect();
    let published: HashMap<&str, &Publish> = publishes
        .iter()
        .map(|publish| (publish.id.as_str(), *publish))
        .collect();

    // I3, duplicates, and the first arrival of each acknowledged event (I2).
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut sync_errors = 0;
    let mut first_arrivals: Vec<(usize, usize)> = Vec::new();
    let mut foreign = Vec::new();
    let mut strangers = Vec::new();
    let mut disordered = Vec::new();
    for notification in &log.notifications {
        if notification.event.eq_ignore_ascii_case("SyncError") {
            sync_errors += 1;
            continue;
        }
        if notification.topic != log.topic {
            foreign.push(format!("{} names {}", notification.id, notification.topic));
        }
        match published.get(notification.id.as_str()) {
            None => strangers.push(notification.id.clone()),
            Some(publish) if publish.refused_for_good() => strangers.push(format!(
                "{} (refused with {:?})",
                notification.id, publish.outcome
            )),
            Some(_) => {}
        }
        if !seen.insert(notification.id.as_str()) {
            duplicates += 1;
            continue;
        }
        if let Some(&at) = index.get(notification.id.as_str()) {
            if let Some(&(last, _)) = first_arrivals.last()
                && at < last
            {
                disordered.push(format!(
                    "#{at} {} after #{last} {}",
                    notification.id, acked[last].id
                ));
            }
            first_arrivals.push((at, notification.socket));
        }
    }
    if !foreign.is_empty() {
        violations.push(format!(
            "I3 {name}: {} notifications for another topic (e.g. {})",
            foreign.len(),
            examples(&foreign)
        ));
    }
    if !strangers.is_empty() {
        violations.push(format!(
            "I3 {name}: {} notifications of events never published to its topic or refused (e.g. {})",
            strangers.len(),
            examples(&strangers)
        ));
    }
    if !disordered.is_empty() {
        violations.push(format!(
            "I2 {name}: {} acknowledged events arrived out of publish order (e.g. {})",
            disordered.len(),
            examples(&disordered)
        ));
    }

    // I1: what it is due, what it got, what a 1011 excuses.
    let since = log.sockets.first().map(|socket| socket.opened);
    let stopped = log.sockets.last().and_then(|socket| match &socket.ended {
        Some((at, SocketEnd::Stopped)) => Some(*at),
        _ => None,
    });
    let due: Vec<usize> = match since {
        None => Vec::new(),
        Some(since) => (0..acked.len())
            .filter(|&at| {
                acked[at].sent >= since && stopped.is_none_or(|stop| acked[at].done <= stop)
            })
            .collect(),
    };
    let excused = if gaps == Gaps::SupersededAfter1011 {
        superseded(log, &acked, &index, &first_arrivals)
    } else {
        HashSet::new()
    };
    let delivered: HashSet<usize> = first_arrivals.iter().map(|(at, _)| *at).collect();
    let missing: Vec<usize> = due
        .iter()
        .copied()
        .filter(|at| !delivered.contains(at) && !excused.contains(at))
        .collect();
    let gap_closes = log
        .sockets
        .iter()
        .filter(|socket| socket.ended.as_ref().is_some_and(|(_, end)| end.is_gap()))
        .count();
    if !missing.is_empty() {
        let ids: Vec<String> = missing
            .iter()
            .map(|&at| format!("#{at} {}", acked[at].id))
            .collect();
        violations.push(format!(
            "I1/I2 {name}: {} of {} acknowledged events it is due never arrived \
             (e.g. {}); its sockets closed with 1011 {gap_closes} times",
            missing.len(),
            due.len(),
            examples(&ids)
        ));
    }
    if let Some(why) = &log.gave_up {
        violations.push(format!("{name} could not reconnect: {why}"));
    }
    if since.is_none() && log.gave_up.is_none() {
        violations.push(format!("{name} never attached"));
    }
    let figures = SubscriberFigures {
        name: name.clone(),
        due: due.len(),
        delivered: due.iter().filter(|at| delivered.contains(at)).count(),
        duplicates,
        excused: due.iter().filter(|at| excused.contains(at)).count(),
        missing: missing.len(),
        sync_errors,
        other_messages: log.other_messages.len(),
        ends: log
            .sockets
            .iter()
            .filter_map(|socket| socket.ended.as_ref().map(|(_, end)| end.clone()))
            .filter(|end| *end != SocketEnd::Stopped)
            .collect(),
        reconnects: log.reconnects().into_iter().map(|(_, took)| took).collect(),
    };
    (figures, violations)
}

/// The acknowledged events (by publish index) a 1011 excuses: for each socket the hub
/// closed with 1011 that was followed by a new subscription, those published after the
/// last event delivered before the close, before the first event delivered on the new
/// subscription, and before the new subscription's socket was attached.
fn superseded(
    log: &SubscriberLog,
    acked: &[&Publish],
    index: &HashMap<&str, usize>,
    first_arrivals: &[(usize, usize)],
) -> HashSet<usize> {
    let mut excused = HashSet::new();
    for (closed, pair) in log.sockets.windows(2).enumerate() {
        let gap = pair[0].ended.as_ref().is_some_and(|(_, end)| end.is_gap());
        if !gap || pair[1].opening != Opening::Resubscribe {
            continue;
        }
        let last_before = first_arrivals
            .iter()
            .filter(|(_, socket)| *socket <= closed)
            .map(|(at, _)| *at)
            .max();
        let first_after = log
            .notifications
            .iter()
            .filter(|notification| notification.socket > closed)
            .find_map(|notification| index.get(notification.id.as_str()).copied());
        let attached = pair[1].opened;
        excused.extend((0..acked.len()).filter(|&at| {
            last_before.is_none_or(|last| at > last)
                && first_after.is_none_or(|first| at < first)
                && acked[at].sent < attached
        }));
    }
    excused
}

/// A topic's publishes, counted.
#[derive(Debug, Clone, Default)]
pub struct TopicFigures {
    /// The topic.
    pub topic: String,
    /// Every publish.
    pub publishes: usize,
    /// Acknowledged (2xx).
    pub acked: usize,
    /// Refused, by status: (count, how many carried `Retry-After`).
    pub refused: BTreeMap<u16, (usize, usize)>,
    /// No answer.
    pub indeterminate: usize,
}

impl TopicFigures {
    fn of(topic: &str, publishes: &[&Publish]) -> Self {
        let mut figures = Self {
            topic: topic.to_owned(),
            publishes: publishes.len(),
            ..Self::default()
        };
        for publish in publishes {
            match &publish.outcome {
                Outcome::Acked(_) => figures.acked += 1,
                Outcome::Refused {
                    status,
                    retry_after,
                } => {
                    let entry = figures.refused.entry(*status).or_default();
                    entry.0 += 1;
                    entry.1 += usize::from(retry_after.is_some());
                }
                Outcome::Indeterminate(_) => figures.indeterminate += 1,
            }
        }
        figures
    }
}

/// One subscriber's deliveries, counted.
#[derive(Debug, Clone, Default)]
pub struct SubscriberFigures {
    /// Its name.
    pub name: String,
    /// Acknowledged events it is due.
    pub due: usize,
    /// Of those, how many arrived.
    pub delivered: usize,
    /// Notifications of an event it had already got.
    pub duplicates: usize,
    /// Due events a 1011 excused ([`Gaps::SupersededAfter1011`]).
    pub excused: usize,
    /// Due events that did not arrive and were not excused.
    pub missing: usize,
    /// SyncError notifications.
    pub sync_errors: usize,
    /// Messages that were neither a confirmation nor an event.
    pub other_messages: usize,
    /// How its sockets ended, except the test's own close.
    pub ends: Vec<SocketEnd>,
    /// How long each reconnect took.
    pub reconnects: Vec<Duration>,
}

/// What [`History::check_state`] found.
#[derive(Debug, Clone, Default)]
pub struct StateFigures {
    /// How many event ids the state holds.
    pub accepted: usize,
    /// Of those, how many were refused with a 5xx or got no answer (applied anyway).
    pub unacked_applied: usize,
    /// I4 violations.
    pub violations: Vec<String>,
}

/// The figures of a check and its violations.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per topic.
    pub topics: Vec<TopicFigures>,
    /// Per subscriber.
    pub subscribers: Vec<SubscriberFigures>,
    /// Per topic whose state was checked.
    pub states: Vec<StateFigures>,
    /// Every violated invariant, one line each.
    pub violations: Vec<String>,
}

impl Report {
    /// Adds the outcome of [`History::check_state`].
    pub fn push_state(&mut self, state: StateFigures) {
        self.violations.extend(state.violations.iter().cloned());
        self.states.push(state);
    }

    /// Fails with every violation (and the figures) if there is any.
    pub fn ensure_ok(&self) -> Result<()> {
        if self.violations.is_empty() {
            return Ok(());
        }
        bail!("{} invariant violations:\n{self}", self.violations.len())
    }

    /// Every subscriber's reconnect times.
    pub fn reconnects(&self) -> Vec<Duration> {
        self.subscribers
            .iter()
            .flat_map(|figures| figures.reconnects.iter().copied())
            .collect()
    }

    /// Duplicates over every subscriber.
    pub fn duplicates(&self) -> usize {
        self.subscribers
            .iter()
            .map(|figures| figures.duplicates)
            .sum()
    }
}

impl fmt::Display for Report {
    /// One line for the publishes, one for the subscribers (summed), one per state, then
    /// one per violation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for topic in &self.topics {
            let refused: Vec<String> = topic
                .refused
                .iter()
                .map(|(status, (count, retry_after))| {
                    format!("{status}×{count} ({retry_after} with Retry-After)")
                })
                .collect();
            writeln!(
                f,
                "  publishes: {} ({} acknowledged, refused: [{}], {} indeterminate)",
                topic.publishes,
                topic.acked,
                refused.join(", "),
                topic.indeterminate
            )?;
        }
        let sum = |field: fn(&SubscriberFigures) -> usize| {
            self.subscribers.iter().map(field).sum::<usize>()
        };
        let mut ends: BTreeMap<String, usize> = BTreeMap::new();
        for end in self.subscribers.iter().flat_map(|figures| &figures.ends) {
            *ends.entry(end.label()).or_default() += 1;
        }
        let ends: Vec<String> = ends
            .iter()
            .map(|(label, count)| format!("{label}×{count}"))
            .collect();
        writeln!(
            f,
            "  {} subscribers: {}/{} due events delivered, {} duplicates, {} superseded \
             after 1011, {} missing, {} SyncErrors, {} other messages; sockets ended: [{}]; \
             reconnects: {}",
            self.subscribers.len(),
            sum(|figures| figures.delivered),
            sum(|figures| figures.due),
            sum(|figures| figures.duplicates),
            sum(|figures| figures.excused),
            sum(|figures| figures.missing),
            sum(|figures| figures.sync_errors),
            sum(|figures| figures.other_messages),
            ends.join(", "),
            spread(&self.reconnects())
        )?;
        for state in &self.states {
            writeln!(
                f,
                "  state: {} accepted ids ({} of them not acknowledged)",
                state.accepted, state.unacked_applied
            )?;
        }
        for violation in &self.violations {
            writeln!(f, "  VIOLATION {violation}")?;
        }
        Ok(())
    }
}

/// Describes durations as `min/median/max ms (n)`, or `none`.
pub fn spread(values: &[Duration]) -> String {
    if values.is_empty() {
        return "none".to_owned();
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let ms = |duration: Duration| duration.as_millis();
    format!(
        "{}/{}/{} ms min/median/max ({})",
        ms(sorted[0]),
        ms(sorted[sorted.len() / 2]),
        ms(sorted[sorted.len() - 1]),
        sorted.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(history: &History, topic: &str, id: &str, outcome: Outcome) {
        let now = Instant::now();
        history.record_publish(Publish {
            topic: topic.to_owned(),
            id: id.to_owned(),
            event: Value::Null,
            sent: now,
            done: now,
            outcome,
        });
    }

    fn notify(history: &History, subscriber: SubscriberId, topic: &str, id: &str) {
        history.received(
            subscriber,
            &serde_json::json!({
                "id": id,
                "event": { "hub.topic": topic, "hub.event": "Patient-open" },
            }),
        );
    }

    /// A subscriber of `t` attached before `a`, `b`, `c` were acknowledged.
    fn three_published() -> (History, SubscriberId) {
        let history = History::new();
        let subscriber = history.add_subscriber("s", "t");
        history.socket_opened(subscriber, Opening::Subscribe, "ws://e");
        for id in ["a", "b", "c"] {
            publish(&history, "t", id, Outcome::Acked(200));
        }
        (history, subscriber)
    }

    #[test]
    fn everything_in_order_with_a_duplicate_passes_and_counts_it() -> Result<()> {
        let (history, s) = three_published();
        for id in ["a", "b", "b", "c"] {
            notify(&history, s, "t", id);
        }
        let report = history.check(Gaps::Never);
        report.ensure_ok()?;
        assert_eq!(report.duplicates(), 1);
        assert_eq!(report.subscribers[0].delivered, 3);
        Ok(())
    }

    #[test]
    fn a_missing_event_out_of_order_and_a_foreign_topic_are_violations() {
        let (history, s) = three_published();
        notify(&history, s, "t", "c");
        notify(&history, s, "t", "a");
        notify(&history, s, "other", "a");
        let report = history.check(Gaps::Never);
        let text = report.violations.join("\n");
        assert!(text.contains("I1/I2 s: 1 of 3"), "{text}");
        assert!(
            text.contains("I2 s: 1 acknowledged events arrived out of"),
            "{text}"
        );
        assert!(
            text.contains("I3 s: 1 notifications for another topic"),
            "{text}"
        );
    }

    #[test]
    fn a_1011_and_a_resubscription_excuse_only_what_the_rule_allows() {
        let (history, s) = three_published();
        notify(&history, s, "t", "a");
        history.socket_ended(s, SocketEnd::Closed(Some(1011)));
        history.socket_opened(s, Opening::Resubscribe, "ws://f");
        // The new subscription starts with the current context, `c`: `b` is superseded.
        notify(&history, s, "t", "c");
        history
            .check(Gaps::SupersededAfter1011)
            .ensure_ok()
            .expect("b is excused");
        let strict = history.check(Gaps::Never);
        assert_eq!(strict.subscribers[0].missing, 1, "{strict}");
    }

    #[test]
    fn the_state_must_hold_each_acknowledged_event_once_in_order() {
        let (history, _) = three_published();
        publish(
            &history,
            "t",
            "r",
            Outcome::Refused {
                status: 503,
                retry_after: Some("1".to_owned()),
            },
        );
        let ids = |ids: &[&str]| ids.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>();
        let fine = history.check_state("t", &ids(&["a", "b", "r", "c"]));
        assert!(fine.violations.is_empty(), "{:?}", fine.violations);
        assert_eq!(fine.unacked_applied, 1);
        let bad = history.check_state("t", &ids(&["b", "a", "a", "x"]));
        let text = bad.violations.join("\n");
        for what in [
            "missing",
            "twice",
            "never published",
            "out of publish order",
        ] {
            assert!(text.contains(what), "{what}: {text}");
        }
    }
}
