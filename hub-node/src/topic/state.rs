//! The pure, synchronous state machine of one topic: subscriptions and the life of their
//! endpoints (`state/subscriptions.rs`, `state/expiry.rs`, `state/ended.rs`), accepted
//! events and the replay (`state/publish.rs`), idempotency on the event id
//! (`state/idempotency.rs`), the clinical context ([`super::context`]) and the per-topic
//! gap-free sequence that every envelope (event or control) takes a number from.
//!
//! No I/O and no clock: every method takes `now` (milliseconds since the Unix epoch) and
//! returns the [`Effects`] the actor must commit. A method that refuses leaves the state
//! exactly as it was.

mod durable;
mod ended;
mod expiry;
mod idempotency;
mod publish;
mod subscriptions;

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use serde_json::Value;

use fhircast_proto::bus::{ControlAction, Delivery, Envelope, EnvelopeKind};
use fhircast_proto::channel::denial;
use fhircast_proto::event::{Notification, NotificationEvent, timestamp_now};
use fhircast_proto::ids::new_event_id;
use fhircast_proto::sync_error::{SyncFailure, sync_error_context};
use fhircast_proto::{EndpointId, EventName, TopicId};

pub use self::ended::Ended;
use self::ended::EndedEndpoints;
use self::idempotency::IdempotencyLog;
use super::context::Contexts;
use super::settings::TopicSettings;
use super::tracked::Tracked;
use fhircast_proto::hub::CurrentContext;

use fhircast_proto::hub::{
    AttachOutcome, Attachment, DeliveryFailure, Detach, DetachReason, EndReason, Owner, Position,
    Published, SubscribeCommand, UnixMs,
};

/// Label used in SyncErrors for a subscriber that gave no `subscriber.name`.
const UNNAMED_SUBSCRIBER: &str = "unnamed subscriber";

/// A connection that ended abnormally and may yet come back: its SyncError waits for
/// the reconnect grace.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// While attached: the gateway holding the socket (its membership id).
    #[serde(default)]
    pub gateway: Option<String>,
    /// While attached: the topic's position when the socket attached. If its gateway
    /// vanishes (and cannot say what the subscriber acknowledged), a re-attach resumes from
    /// here: what followed may come twice, never not at all.
    #[serde(default)]
    pub attached_at: Option<Position>,
}

impl Subscription {
    /// Returns true while a socket is attached.
    pub fn is_attached(&self) -> bool {
        matches!(self.link, Link::Attached { .. })
    }
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
    subscriptions: Tracked<EndpointId, Subscription>,
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
            subscriptions: Tracked::default(),
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

    /// Returns the epoch the topic's seqs count in.
    pub fn epoch(&self) -> u64 {
        self.epoch
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
                event_id: id.into(),
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
