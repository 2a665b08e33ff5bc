//! The pure, synchronous state machine of one topic: subscriptions and the life of their
//! endpoints (`state/subscriptions.rs`, `state/expiry.rs`, `state/ended.rs`), accepted
//! events and the replay (`state/publish.rs`), idempotency on the event id
//! (`state/idempotency.rs`), the clinical context ([`super::context`]) and the per-topic
//! gap-free sequence that every envelope (event or control) takes a number from.
//!
//! No I/O and no clock: every method takes `now` (milliseconds since the Unix epoch) and
//! returns the [`Effects`] the actor must commit. A method that refuses leaves the state
//! exactly as it was.

mod ended;
mod expiry;
mod idempotency;
mod publish;
mod subscriptions;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use serde_json::Value;

use fhircast_proto::bus::{ControlAction, Delivery, Envelope, EnvelopeKind};
use fhircast_proto::channel::denial;
use fhircast_proto::event::{Notification, NotificationEvent, timestamp_now};
use fhircast_proto::ids::new_event_id;
use fhircast_proto::sync_error::{SyncFailure, sync_error_context};
use fhircast_proto::{EndpointId, EventName, TopicId};

use self::ended::EndedEndpoints;
use self::idempotency::IdempotencyLog;
use super::context::{Contexts, CurrentContext};
use super::settings::TopicSettings;

pub use self::ended::EndReason;

/// Milliseconds since the Unix epoch.
pub type UnixMs = u64;

/// Label used in SyncErrors for a subscriber that gave no `subscriber.name`.
const UNNAMED_SUBSCRIBER: &str = "unnamed subscriber";

/// Who created a subscription, from the verified token that asked for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// The token's `client_id` (or `azp`).
    pub client_id: Option<String>,
    /// The token's `sub`.
    pub subject: Option<String>,
}

impl Owner {
    /// Returns the client id for log lines (`-` when the token had none). Never the
    /// subject: log lines name apps, not people.
    pub fn log_label(&self) -> &str {
        self.client_id.as_deref().unwrap_or("-")
    }
}

/// A point in the topic's sequence: a subscriber that is caught up through it has
/// received (and acknowledged) everything up to and including `seq` of `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The topic's epoch.
    pub epoch: u64,
    /// The last seq covered.
    pub seq: u64,
}

/// A connection that ended abnormally and may yet come back: its SyncError waits for
/// the reconnect grace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostConnection {
    /// When the SyncError is raised if the endpoint has not been attached again.
    pub grace_ends: UnixMs,
    /// The close code (1006 for a connection lost without a close frame).
    pub code: u16,
    /// The notification the SyncError is about: the oldest the subscriber had not
    /// acknowledged, or the last one it received.
    pub event: Option<(String, String)>,
}

/// Whether an endpoint has a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// Never attached; the endpoint expires at `deadline` (the attach window).
    Pending {
        /// When the endpoint expires unattached.
        deadline: UnixMs,
    },
    /// A socket is attached; `generation` numbers the attach, so a report from an
    /// earlier socket of the same endpoint is recognised and ignored.
    Attached {
        /// Which attach of the endpoint this is.
        generation: u64,
    },
    /// The socket went away; the endpoint may be attached again until `deadline` (the
    /// re-attach window, never beyond the lease).
    Detached {
        /// When the subscription ends if nobody attaches.
        deadline: UnixMs,
        /// Where the subscriber was caught up to, if the gateway knew.
        resume: Option<Position>,
        /// An abnormal close whose SyncError waits for the reconnect grace.
        lost: Option<LostConnection>,
    },
}

/// One subscription of the topic.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    /// Granted events.
    pub events: Vec<EventName>,
    /// The lease requested (already capped by the token's lifetime at request time).
    pub lease_seconds: u64,
    /// When the caller's token expires: the lease never outlives it.
    pub token_expires: UnixMs,
    /// When the lease ends: counted from the first confirmation, renewed by a
    /// re-subscribe; `None` until the first attach.
    pub lease_ends: Option<UnixMs>,
    /// `subscriber.name`.
    pub subscriber_name: Option<String>,
    /// Who created it.
    pub owner: Owner,
    /// Whether a socket is attached.
    pub link: Link,
}

impl Subscription {
    /// Returns true while a socket is attached.
    pub fn is_attached(&self) -> bool {
        matches!(self.link, Link::Attached { .. })
    }
}

/// A subscribe request that passed the gateway's checks (scopes intersected, lease capped).
#[derive(Clone, Debug, PartialEq)]
pub struct SubscribeCommand {
    /// Granted events (requested ∩ readable), non-empty.
    pub events: Vec<EventName>,
    /// The lease to grant, in seconds.
    pub lease_seconds: u64,
    /// When the caller's token expires.
    pub token_expires: UnixMs,
    /// `subscriber.name`.
    pub subscriber_name: Option<String>,
    /// The existing subscription to re-request, if any.
    pub endpoint: Option<EndpointId>,
    /// Who asks.
    pub owner: Owner,
}

/// What an attaching socket needs to start delivering.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// The topic (its raw form goes into frames only).
    pub topic: TopicId,
    /// Granted events.
    pub events: Vec<EventName>,
    /// When the lease ends.
    pub lease_ends: UnixMs,
    /// The encoded confirmation, to send first.
    pub confirmation: Bytes,
    /// The current-context replay (2-4): sent after the confirmation on a first attach,
    /// and on a re-attach when the topic's history no longer covers what was missed.
    pub replay: Vec<Delivery>,
    /// The topic's epoch and the seq of the last envelope the attachment already
    /// reflects: later envelopes are delivered live, earlier ones dropped.
    pub epoch: u64,
    /// See `epoch`.
    pub seq: u64,
    /// Which attach of the endpoint this is; the socket reports it when it detaches.
    pub generation: u64,
    /// On a re-attach: where the subscriber was caught up to when its last socket went
    /// away. The gateway delivers what followed from the topic's history when it can, and
    /// the replay otherwise. `None` on a first attach or when the position is unknown.
    pub resume: Option<Position>,
}

/// The outcome of a handshake on a known endpoint.
#[derive(Clone, Debug)]
pub enum AttachOutcome {
    /// The socket is attached.
    Attached(Attachment),
    /// The endpoint's subscription has ended: send this denial and close, so a client
    /// that keeps reconnecting stops for good.
    Ended {
        /// The encoded denial.
        denial: Bytes,
        /// Why the subscription ended.
        reason: EndReason,
    },
}

/// A delivery failure the gateway reports (a non-2xx ack, or an ack timeout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryFailure {
    /// The failed notification's id.
    pub event_id: String,
    /// The failed notification's event name.
    pub event_name: String,
    /// What happened.
    pub failure: SyncFailure,
    /// How many acks in a row this subscriber let time out (0 unless `failure` is a
    /// timeout).
    pub consecutive_timeouts: u32,
}

/// Why a socket went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetachReason {
    /// The subscriber closed (or lost) the connection; `code` 1006 for a lost one, 1005
    /// for a close frame without a code.
    ClientClosed {
        /// The close code.
        code: u16,
        /// The notification the subscriber had not acknowledged, or the last one it got.
        last_event: Option<(String, String)>,
    },
    /// The hub closed it (lease end, slow consumer, gap, drain): never a SyncError.
    HubClosed,
}

impl DetachReason {
    /// Returns true for a close that may raise a SyncError (2-5: never 1000 or 1001; ours:
    /// never 1005, which is what browsers' `ws.close()` sends; never a close the hub made).
    pub fn is_abnormal(&self) -> bool {
        matches!(self, Self::ClientClosed { code, .. } if !matches!(code, 1000 | 1001 | 1005))
    }
}

/// A socket's report that it went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detach {
    /// The attach generation the socket had.
    pub generation: u64,
    /// Why it went away.
    pub reason: DetachReason,
    /// Where the subscriber was caught up to (`None`: unknown, replay the context).
    pub resume: Option<Position>,
}

/// The outcome of an accepted publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Accepted and committed as envelope `seq`.
    Accepted {
        /// The envelope's seq.
        seq: u64,
    },
    /// The same `(topic, id)` was accepted before: nothing new happened.
    Duplicate,
}

/// What a command changed, for the actor to commit.
#[derive(Clone, Debug, Default)]
pub struct Effects {
    /// Envelopes to publish, in order.
    pub envelopes: Vec<Envelope>,
    /// Endpoints that now resolve to this topic.
    pub endpoints_added: Vec<EndpointId>,
    /// Endpoints that no longer resolve.
    pub endpoints_removed: Vec<EndpointId>,
    /// What the hub did on its own, for the operator's log (the actor logs each line).
    pub notes: Vec<Note>,
}

impl Effects {
    /// Returns true if nothing needs committing.
    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
            && self.endpoints_added.is_empty()
            && self.endpoints_removed.is_empty()
    }

    /// Appends another command's effects.
    pub fn extend(&mut self, other: Effects) {
        self.envelopes.extend(other.envelopes);
        self.endpoints_added.extend(other.endpoints_added);
        self.endpoints_removed.extend(other.endpoints_removed);
        self.notes.extend(other.notes);
    }
}

/// Something the topic did on its own that an operator must be able to see in the log:
/// ids, client ids and reasons only, never the raw topic, a token or PHI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// A subscription ended without its subscriber asking.
    Ended {
        /// The endpoint.
        endpoint: EndpointId,
        /// The owner's client id.
        client: String,
        /// Why.
        reason: EndReason,
    },
    /// The hub raised a SyncError.
    SyncError {
        /// The endpoint it is about.
        endpoint: EndpointId,
        /// The owner's client id.
        client: String,
        /// The failed event's name.
        event_name: String,
        /// What failed.
        failure: SyncFailure,
    },
    /// A remembered endpoint was forgotten early to make room.
    Forgotten {
        /// The endpoint.
        endpoint: EndpointId,
        /// The owner's client id.
        client: String,
    },
}

/// The state of one topic.
#[derive(Clone, Debug)]
pub struct TopicState {
    topic: TopicId,
    settings: TopicSettings,
    epoch: u64,
    seq: u64,
    subscriptions: BTreeMap<EndpointId, Subscription>,
    /// One timer per subscription that has timed work: (when, endpoint), soonest first.
    timers: BTreeSet<(UnixMs, EndpointId)>,
    /// The time each subscription's timer is set for, to find it in `timers`.
    scheduled: HashMap<EndpointId, UnixMs>,
    ended: EndedEndpoints,
    contexts: Contexts,
    accepted_ids: IdempotencyLog,
    /// The last event accepted (id and name), for a SyncError about a subscriber that
    /// received nothing before its connection was lost.
    last_event: Option<(String, String)>,
    /// Attach generations are unique within the topic.
    next_generation: u64,
}

impl TopicState {
    /// Creates the state of a topic nobody has used yet.
    pub fn new(topic: TopicId, settings: TopicSettings, epoch: u64) -> Self {
        let accepted_ids = IdempotencyLog::new(settings.idempotency_capacity);
        let contexts = Contexts::new(settings.max_open_contexts);
        Self {
            topic,
            settings,
            epoch,
            seq: 0,
            subscriptions: BTreeMap::new(),
            timers: BTreeSet::new(),
            scheduled: HashMap::new(),
            ended: EndedEndpoints::default(),
            contexts,
            accepted_ids,
            last_event: None,
            next_generation: 1,
        }
    }

    /// Returns the topic.
    pub fn topic(&self) -> &TopicId {
        &self.topic
    }

    /// Returns the seq of the last envelope.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Returns the subscription of an endpoint.
    pub fn subscription(&self, endpoint: &EndpointId) -> Option<&Subscription> {
        self.subscriptions.get(endpoint)
    }

    /// Returns why the subscription of a remembered endpoint ended.
    pub fn ended_reason(&self, endpoint: &EndpointId) -> Option<EndReason> {
        self.ended.reason_of(endpoint)
    }

    /// Returns how many ended endpoints the topic remembers.
    pub fn remembered_endpoints(&self) -> usize {
        self.ended.len()
    }

    /// Returns how many anchors are open.
    pub fn open_contexts(&self) -> usize {
        self.contexts.len()
    }

    /// Returns true while the topic has subscriptions or remembers ended endpoints: either
    /// must keep resolving, so the topic stays in memory.
    pub fn holds_endpoints(&self) -> bool {
        !self.subscriptions.is_empty() || self.ended.len() > 0
    }

    /// Returns true when the topic holds nothing worth keeping in memory.
    pub fn is_idle(&self) -> bool {
        !self.holds_endpoints() && self.contexts.is_empty()
    }

    /// Returns the current context (2-9).
    pub fn current_context(&self) -> CurrentContext {
        self.contexts.current()
    }

    fn encode(
        &self,
        timestamp: &str,
        id: &str,
        name: &EventName,
        context: &[Value],
        version_id: Option<&str>,
        prior_version_id: Option<&str>,
    ) -> Bytes {
        Notification {
            timestamp,
            id,
            event: NotificationEvent {
                topic: self.topic.expose(),
                name: name.as_str(),
                context,
                version_id,
                prior_version_id,
            },
        }
        .encode()
    }

    /// Raises a hub-generated SyncError about `endpoint` to the topic's other SyncError
    /// subscribers (2-5), as the next envelope.
    fn raise_sync_error(
        &mut self,
        effects: &mut Effects,
        about: &EndpointId,
        event: (&str, &str),
        failure: SyncFailure,
    ) {
        let (event_id, event_name) = event;
        let subscriber = self.subscriber_label(about);
        let name = EventName::parse("SyncError").unwrap_or_else(|_| unreachable!("catalog name"));
        let id = new_event_id();
        let context = sync_error_context(event_id, event_name, &subscriber, failure);
        let frame = self.encode(&timestamp_now(), &id, &name, &context, None, None);
        let client = self.owner_label(about);
        let envelope = self.batch(
            vec![Delivery {
                event_id: id,
                name,
                suppressed_by: Vec::new(),
                frame,
            }],
            vec![about.clone()],
        );
        effects.envelopes.push(envelope);
        effects.notes.push(Note::SyncError {
            endpoint: about.clone(),
            client,
            event_name: event_name.to_owned(),
            failure,
        });
    }

    fn subscriber_label(&self, endpoint: &EndpointId) -> String {
        self.subscriptions
            .get(endpoint)
            .and_then(|s| s.subscriber_name.clone())
            .unwrap_or_else(|| UNNAMED_SUBSCRIBER.to_owned())
    }

    fn owner_label(&self, endpoint: &EndpointId) -> String {
        self.subscriptions
            .get(endpoint)
            .map_or("-", |s| s.owner.log_label())
            .to_owned()
    }

    /// Takes the next seq for an event batch.
    fn batch(&mut self, deliveries: Vec<Delivery>, exclude: Vec<EndpointId>) -> Envelope {
        self.seq += 1;
        Envelope {
            epoch: self.epoch,
            seq: self.seq,
            topic: self.topic.topic_ref().clone(),
            kind: EnvelopeKind::Event {
                deliveries,
                exclude,
            },
        }
    }

    /// Takes the next seq for a control envelope.
    fn control(&mut self, endpoint: &EndpointId, action: ControlAction) -> Envelope {
        self.seq += 1;
        Envelope {
            epoch: self.epoch,
            seq: self.seq,
            topic: self.topic.topic_ref().clone(),
            kind: EnvelopeKind::Control {
                endpoint: endpoint.clone(),
                action,
            },
        }
    }

    fn deny(&mut self, endpoint: &EndpointId, events: &[EventName], reason: &str) -> Envelope {
        let frame = denial(self.topic.expose(), events, reason);
        self.control(endpoint, ControlAction::Deny { frame })
    }
}

/// Returns when a lease granted at `now` ends: never after the token expires.
fn lease_end(now: UnixMs, lease_seconds: u64, token_expires: UnixMs) -> UnixMs {
    now.saturating_add(lease_seconds.saturating_mul(1000))
        .min(token_expires)
}

fn seconds_until(at: UnixMs, now: UnixMs) -> u64 {
    at.saturating_sub(now) / 1000
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
