//! The pure, synchronous state machine of one topic: subscriptions with their granted events
//! and leases (`state/subscriptions.rs`), accepted events and the replay
//! (`state/publish.rs`), idempotency on the event id (`state/idempotency.rs`), the clinical
//! context ([`super::context`]) and the per-topic gap-free sequence.
//!
//! No I/O and no clock: every method takes `now` (milliseconds since the Unix epoch) and
//! returns the [`Effects`] the actor must commit. A method that refuses leaves the state
//! exactly as it was.

mod idempotency;
mod publish;
mod subscriptions;

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::Value;

use fhircast_proto::bus::{ControlAction, Delivery, Envelope, EnvelopeKind};
use fhircast_proto::channel::denial;
use fhircast_proto::event::{Notification, NotificationEvent, timestamp_now};
use fhircast_proto::ids::new_event_id;
use fhircast_proto::sync_error::{SyncFailure, sync_error_context};
use fhircast_proto::{EndpointId, EventName, TopicId};

use self::idempotency::IdempotencyLog;
use super::context::{Contexts, CurrentContext};
use super::settings::TopicSettings;

/// Milliseconds since the Unix epoch.
pub type UnixMs = u64;

/// Label used in SyncErrors for a subscriber that gave no `subscriber.name`.
const UNNAMED_SUBSCRIBER: &str = "unnamed subscriber";

/// One subscription of the topic.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    /// Granted events, canonical.
    pub events: Vec<EventName>,
    /// The lease requested (already capped by the token's lifetime at request time).
    pub lease_seconds: u64,
    /// When the caller's token expires: the lease never outlives it.
    pub token_expires: UnixMs,
    /// When the lease ends (counted from the confirmation); set on attach.
    pub lease_ends: Option<UnixMs>,
    /// While unattached: when the endpoint expires.
    pub attach_deadline: Option<UnixMs>,
    /// `subscriber.name`.
    pub subscriber_name: Option<String>,
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
    /// The replay, to send right after the confirmation.
    pub replay: Vec<Delivery>,
    /// The topic's epoch and the seq of the last batch the replay already reflects: later
    /// batches are delivered live, earlier ones dropped.
    pub epoch: u64,
    /// See `epoch`.
    pub seq: u64,
}

/// A delivery failure the gateway reports (409/4xx/5xx ack, or an ack timeout).
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
    /// The subscriber closed (or lost) the connection; `code` 1006 for a lost one.
    ClientClosed {
        /// The close code.
        code: u16,
        /// The notification the subscriber had not acknowledged, or the last one it got.
        last_event: Option<(String, String)>,
    },
    /// The hub closed it (lease end, slow consumer, gap, drain): never a SyncError.
    HubClosed,
}

/// The outcome of an accepted publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Accepted and committed as batch `seq`.
    Accepted {
        /// The batch's seq.
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
}

impl Effects {
    /// Returns true if nothing needs committing.
    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
            && self.endpoints_added.is_empty()
            && self.endpoints_removed.is_empty()
    }
}

/// The state of one topic.
#[derive(Clone, Debug)]
pub struct TopicState {
    topic: TopicId,
    settings: TopicSettings,
    epoch: u64,
    seq: u64,
    subscriptions: BTreeMap<EndpointId, Subscription>,
    contexts: Contexts,
    accepted_ids: IdempotencyLog,
}

impl TopicState {
    /// Creates the state of a topic nobody has used yet.
    pub fn new(topic: TopicId, settings: TopicSettings, epoch: u64) -> Self {
        let accepted_ids = IdempotencyLog::new(settings.idempotency_capacity);
        Self {
            topic,
            settings,
            epoch,
            seq: 0,
            subscriptions: BTreeMap::new(),
            contexts: Contexts::new(),
            accepted_ids,
        }
    }

    /// Returns the topic.
    pub fn topic(&self) -> &TopicId {
        &self.topic
    }

    /// Returns the seq of the last batch.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Returns the subscription of an endpoint.
    pub fn subscription(&self, endpoint: &EndpointId) -> Option<&Subscription> {
        self.subscriptions.get(endpoint)
    }

    /// Returns true when someone is subscribed (attached or not).
    pub fn has_subscriptions(&self) -> bool {
        !self.subscriptions.is_empty()
    }

    /// Returns true when the topic holds nothing worth keeping in memory.
    pub fn is_idle(&self) -> bool {
        self.subscriptions.is_empty() && self.contexts.is_empty()
    }

    /// Returns the current context (2-9).
    pub fn current_context(&self) -> CurrentContext {
        self.contexts.current()
    }

    /// Returns the earliest time `expire` has work to do.
    pub fn next_expiry(&self) -> Option<UnixMs> {
        self.subscriptions
            .values()
            .filter_map(|s| {
                s.attach_deadline
                    .or(s.lease_ends.map(|ends| ends + self.settings.lease_grace_ms))
            })
            .min()
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

    fn sync_error(
        &mut self,
        about: &EndpointId,
        event_id: &str,
        event_name: &str,
        subscriber: &str,
        failure: SyncFailure,
    ) -> Envelope {
        let name = EventName::parse("SyncError").unwrap_or_else(|_| unreachable!("catalog name"));
        let id = new_event_id();
        let context = sync_error_context(event_id, event_name, subscriber, failure);
        let frame = self.encode(&timestamp_now(), &id, &name, &context, None, None);
        self.seq += 1;
        self.batch(
            vec![Delivery {
                event_id: id,
                name,
                suppressed_by: Vec::new(),
                frame,
            }],
            Some(about.clone()),
        )
    }

    fn subscriber_label(&self, endpoint: &EndpointId) -> String {
        self.subscriptions
            .get(endpoint)
            .and_then(|s| s.subscriber_name.clone())
            .unwrap_or_else(|| UNNAMED_SUBSCRIBER.to_owned())
    }

    fn batch(&self, deliveries: Vec<Delivery>, exclude: Option<EndpointId>) -> Envelope {
        Envelope {
            epoch: self.epoch,
            topic: self.topic.topic_ref().clone(),
            kind: EnvelopeKind::Event {
                seq: self.seq,
                deliveries,
                exclude,
            },
        }
    }

    fn control(&self, endpoint: &EndpointId, action: ControlAction) -> Envelope {
        Envelope {
            epoch: self.epoch,
            topic: self.topic.topic_ref().clone(),
            kind: EnvelopeKind::Control {
                endpoint: endpoint.clone(),
                action,
            },
        }
    }

    fn deny(&self, endpoint: &EndpointId, events: &[EventName], reason: &str) -> Envelope {
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
