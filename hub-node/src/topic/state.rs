//! The pure, synchronous state machine of one topic: subscriptions with their granted
//! events and leases, the clinical context ([`super::context`]), the per-topic gap-free
//! sequence, and idempotency on the event `id`.
//!
//! No I/O and no clock: every method takes `now` (milliseconds since the Unix epoch) and
//! returns the [`Effects`] the actor must commit. A method that refuses leaves the state
//! exactly as it was.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use serde_json::Value;

use fhircast_proto::bundle::parse_update_bundle;
use fhircast_proto::bus::{ControlAction, Delivery, Envelope, EnvelopeKind};
use fhircast_proto::channel::{confirmation, denial};
use fhircast_proto::derive::{derive_opens, should_deliver, suppressors};
use fhircast_proto::event::{EventRequest, Notification, NotificationEvent, timestamp_now};
use fhircast_proto::ids::new_event_id;
use fhircast_proto::sync_error::{SyncFailure, sync_error_context};
use fhircast_proto::validate::anchor_of;
use fhircast_proto::{EndpointId, EventKind, EventName, TopicId, ValidationError};

use super::context::{Contexts, CurrentContext, OpenContext, UpdateRefusal};
use super::settings::TopicSettings;
use crate::error::TopicError;

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

    /// Returns true when the topic holds nothing worth keeping in memory.
    pub fn is_idle(&self) -> bool {
        self.subscriptions.is_empty() && self.contexts.is_empty()
    }

    /// Creates a subscription, or replaces the events and lease of an existing one
    /// (2-4: a re-request for the same endpoint "SHALL replace the earlier state").
    pub fn subscribe(
        &mut self,
        command: SubscribeCommand,
        now: UnixMs,
    ) -> Result<(EndpointId, Effects), TopicError> {
        let mut effects = Effects::default();
        if let Some(endpoint) = command.endpoint {
            let topic = self.topic.clone();
            let subscription = self
                .subscriptions
                .get_mut(&endpoint)
                .filter(|s| s.attach_deadline.is_none_or(|deadline| deadline > now))
                .ok_or(TopicError::UnknownEndpoint)?;
            subscription.events = command.events;
            subscription.lease_seconds = command.lease_seconds;
            subscription.token_expires = command.token_expires;
            if command.subscriber_name.is_some() {
                subscription.subscriber_name = command.subscriber_name;
            }
            if subscription.attach_deadline.is_none() {
                let lease_ends = lease_end(now, command.lease_seconds, command.token_expires);
                subscription.lease_ends = Some(lease_ends);
                let events = subscription.events.clone();
                let frame = confirmation(topic.expose(), &events, seconds_until(lease_ends, now));
                let action = ControlAction::Confirm {
                    events,
                    lease_ends_unix_ms: lease_ends,
                    frame,
                };
                effects.envelopes.push(self.control(&endpoint, action));
            }
            return Ok((endpoint, effects));
        }
        let pending = self
            .subscriptions
            .values()
            .filter(|s| s.attach_deadline.is_some())
            .count();
        if pending >= self.settings.max_pending_attach
            || self.subscriptions.len() >= self.settings.max_subscriptions
        {
            return Err(TopicError::Overloaded);
        }
        let endpoint = EndpointId::generate();
        self.subscriptions.insert(
            endpoint.clone(),
            Subscription {
                events: command.events,
                lease_seconds: command.lease_seconds,
                token_expires: command.token_expires,
                lease_ends: None,
                attach_deadline: Some(now + self.settings.attach_window_ms),
                subscriber_name: command.subscriber_name,
            },
        );
        effects.endpoints_added.push(endpoint.clone());
        Ok((endpoint, effects))
    }

    /// Cancels a subscription; an attached socket gets a denial and is closed (2-4).
    pub fn unsubscribe(&mut self, endpoint: &EndpointId) -> Result<Effects, TopicError> {
        let subscription = self
            .subscriptions
            .remove(endpoint)
            .ok_or(TopicError::UnknownEndpoint)?;
        let mut effects = Effects::default();
        effects.endpoints_removed.push(endpoint.clone());
        if subscription.attach_deadline.is_none() {
            effects
                .envelopes
                .push(self.deny(endpoint, &subscription.events, "unsubscribed"));
        }
        Ok(effects)
    }

    /// Attaches a socket to an endpoint: once, within the attach window.
    pub fn attach(&mut self, endpoint: &EndpointId, now: UnixMs) -> Result<Attachment, TopicError> {
        let subscription = self
            .subscriptions
            .get_mut(endpoint)
            .ok_or(TopicError::UnknownEndpoint)?;
        match subscription.attach_deadline {
            Some(deadline) if deadline > now => {}
            _ => return Err(TopicError::UnknownEndpoint),
        }
        subscription.attach_deadline = None;
        let lease_ends = lease_end(now, subscription.lease_seconds, subscription.token_expires);
        subscription.lease_ends = Some(lease_ends);
        let events = subscription.events.clone();
        let confirmation =
            confirmation(self.topic.expose(), &events, seconds_until(lease_ends, now));
        Ok(Attachment {
            topic: self.topic.clone(),
            replay: self.replay_for(&events),
            events,
            lease_ends,
            confirmation,
            epoch: self.epoch,
            seq: self.seq,
        })
    }

    /// Accepts or refuses an event; see the module docs of [`super::context`] for the
    /// context rules.
    pub fn publish(&mut self, event: EventRequest) -> Result<(Published, Effects), TopicError> {
        let fingerprint = fingerprint(&event);
        match self.accepted_ids.get(&event.id) {
            Some(seen) if seen == fingerprint => {
                return Ok((Published::Duplicate, Effects::default()));
            }
            Some(_) => {
                return Err(ValidationError::conflict(
                    "this event id was already used on this topic for a different event",
                )
                .into());
            }
            None => {}
        }
        let seq = self.seq + 1;
        let deliveries = match event.name.kind() {
            EventKind::Open => self.apply_open(&event, seq),
            EventKind::Close => {
                if let Some(anchor) = anchor_of(&event.name, &event.context) {
                    self.contexts.close(&anchor);
                }
                vec![self.relay(&event, None, None)]
            }
            EventKind::Update => vec![self.apply_update(&event)?],
            EventKind::HomeOpen => {
                self.contexts.leave_current();
                vec![self.relay(&event, None, None)]
            }
            EventKind::Select
            | EventKind::SyncError
            | EventKind::UserLogout
            | EventKind::UserHibernate
            | EventKind::Proprietary => vec![self.relay(&event, None, None)],
        };
        self.seq = seq;
        self.accepted_ids.insert(event.id, fingerprint);
        let envelope = self.batch(deliveries, None);
        Ok((
            Published::Accepted { seq },
            Effects {
                envelopes: vec![envelope],
                ..Effects::default()
            },
        ))
    }

    /// Turns a delivery failure into a SyncError to the other SyncError subscribers
    /// (2-5), and ends the subscription of an unresponsive subscriber.
    pub fn report_failure(&mut self, endpoint: &EndpointId, report: DeliveryFailure) -> Effects {
        let mut effects = Effects::default();
        let name = self.subscriber_label(endpoint);
        effects.envelopes.push(self.sync_error(
            endpoint,
            &report.event_id,
            &report.event_name,
            &name,
            report.failure,
        ));
        let unresponsive = report.failure == SyncFailure::Timeout
            && report.consecutive_timeouts >= self.settings.unresponsive_threshold;
        if unresponsive && let Some(subscription) = self.subscriptions.remove(endpoint) {
            effects.endpoints_removed.push(endpoint.clone());
            effects.envelopes.push(self.deny(
                endpoint,
                &subscription.events,
                "the subscriber did not acknowledge events in time",
            ));
        }
        effects
    }

    /// Forgets the subscription of a socket that went away; an abnormal client close
    /// raises a SyncError (2-5: never for 1000 or 1001, never for closes the hub made).
    pub fn detach(&mut self, endpoint: &EndpointId, reason: DetachReason) -> Effects {
        let mut effects = Effects::default();
        let name = self.subscriber_label(endpoint);
        if self.subscriptions.remove(endpoint).is_some() {
            effects.endpoints_removed.push(endpoint.clone());
        }
        if let DetachReason::ClientClosed { code, last_event } = reason
            && !matches!(code, 1000 | 1001)
        {
            let (event_id, event_name) = last_event.unwrap_or_default();
            effects.envelopes.push(self.sync_error(
                endpoint,
                &event_id,
                &event_name,
                &name,
                SyncFailure::ConnectionLost(code),
            ));
        }
        effects
    }

    /// Drops endpoints never attached within the window, and subscriptions whose lease
    /// ended (their gateway closes the socket itself; this is the backstop).
    pub fn expire(&mut self, now: UnixMs) -> Effects {
        let mut effects = Effects::default();
        let expired: Vec<EndpointId> = self
            .subscriptions
            .iter()
            .filter(|(_, s)| {
                s.attach_deadline.is_some_and(|deadline| deadline <= now)
                    || s.lease_ends
                        .is_some_and(|ends| ends + self.settings.lease_grace_ms <= now)
            })
            .map(|(endpoint, _)| endpoint.clone())
            .collect();
        for endpoint in expired {
            if let Some(subscription) = self.subscriptions.remove(&endpoint) {
                if subscription.attach_deadline.is_none() {
                    effects.envelopes.push(self.deny(
                        &endpoint,
                        &subscription.events,
                        "the lease expired",
                    ));
                }
                effects.endpoints_removed.push(endpoint);
            }
        }
        effects
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

    fn apply_open(&mut self, event: &EventRequest, seq: u64) -> Vec<Delivery> {
        let Some(anchor) = anchor_of(&event.name, &event.context) else {
            return vec![self.relay(event, None, None)];
        };
        let version = self.contexts.open(
            OpenContext {
                anchor,
                name: event.name.clone(),
                event_id: event.id.clone(),
                timestamp: event.timestamp.clone(),
                context: event.context.clone(),
                suppressed_by: Vec::new(),
                opened_seq: seq,
                version_id: String::new(),
                content: Vec::new(),
            },
            true,
        );
        let mut deliveries = vec![self.relay(event, Some(&version), None)];
        if !self.settings.derived_events {
            return deliveries;
        }
        let derived = derive_opens(&event.name, &event.context);
        for (index, derived_event) in derived.iter().enumerate() {
            let Some(anchor) = anchor_of(&derived_event.name, &derived_event.context) else {
                continue;
            };
            let suppressed_by = suppressors((&event.name, &event.context), &derived, index);
            let id = new_event_id();
            let version = self.contexts.open(
                OpenContext {
                    anchor,
                    name: derived_event.name.clone(),
                    event_id: id.clone(),
                    timestamp: event.timestamp.clone(),
                    context: derived_event.context.clone(),
                    suppressed_by: suppressed_by.clone(),
                    opened_seq: seq,
                    version_id: String::new(),
                    content: Vec::new(),
                },
                false,
            );
            let frame = self.encode(
                &event.timestamp,
                &id,
                &derived_event.name,
                &derived_event.context,
                Some(&version),
                None,
            );
            deliveries.push(Delivery {
                event_id: id,
                name: derived_event.name.clone(),
                suppressed_by,
                frame,
            });
        }
        deliveries
    }

    fn apply_update(&mut self, event: &EventRequest) -> Result<Delivery, TopicError> {
        let base_version = event.version_id.as_deref().ok_or_else(|| {
            ValidationError::new(format!("{} requires context.versionId", event.name))
        })?;
        let anchor = anchor_of(&event.name, &event.context)
            .ok_or_else(|| ValidationError::new("the update names no anchor"))?;
        let bundle = event
            .context
            .iter()
            .find(|item| item["key"] == "updates")
            .map(|item| &item["resource"])
            .ok_or_else(|| ValidationError::new("the update has no updates Bundle"))?;
        let changes = parse_update_bundle(bundle)?;
        let new_version = self
            .contexts
            .update(
                &anchor,
                base_version,
                &changes,
                self.settings.non_current_context_updates,
            )
            .map_err(|refusal| {
                ValidationError::conflict(update_refusal_reason(&anchor, &refusal))
            })?;
        Ok(self.relay(event, Some(&new_version), Some(base_version)))
    }

    fn replay_for(&self, granted: &[EventName]) -> Vec<Delivery> {
        let set = self.contexts.replay_set();
        let mut replay = Vec::new();
        for entry in &set {
            // A derived open is skipped only when its source batch is replayed too and the
            // subscriber receives the event that carries the resource.
            let batch_names: Vec<EventName> = set
                .iter()
                .filter(|other| other.opened_seq == entry.opened_seq)
                .map(|other| other.name.clone())
                .collect();
            let suppressed_by: Vec<EventName> = entry
                .suppressed_by
                .iter()
                .filter(|name| batch_names.contains(name))
                .cloned()
                .collect();
            if !should_deliver(granted, &entry.name, &suppressed_by) {
                continue;
            }
            let frame = self.encode(
                &entry.timestamp,
                &entry.event_id,
                &entry.name,
                &entry.context,
                Some(&entry.version_id),
                None,
            );
            replay.push(Delivery {
                event_id: entry.event_id.clone(),
                name: entry.name.clone(),
                suppressed_by,
                frame,
            });
        }
        replay
    }

    fn relay(&self, event: &EventRequest, version: Option<&str>, prior: Option<&str>) -> Delivery {
        Delivery {
            event_id: event.id.clone(),
            name: event.name.clone(),
            suppressed_by: Vec::new(),
            frame: self.encode(
                &event.timestamp,
                &event.id,
                &event.name,
                &event.context,
                version,
                prior,
            ),
        }
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

fn update_refusal_reason(
    anchor: &fhircast_proto::validate::AnchorKey,
    refusal: &UpdateRefusal,
) -> String {
    let anchor = format!("{}/{}", anchor.resource_type, anchor.id);
    match refusal {
        UpdateRefusal::NotOpen => format!("{anchor} is not an open context of this topic"),
        UpdateRefusal::NotCurrent => format!(
            "{anchor} is not the current context (updates outside the current context are not enabled)"
        ),
        UpdateRefusal::StaleVersion => {
            "context.versionId is not the anchor's current version: get the current context and retry".to_owned()
        }
        UpdateRefusal::DeletesOriginal(key) => format!(
            "{}/{} belongs to the context the anchor was opened with and cannot be deleted",
            key.resource_type, key.id
        ),
        UpdateRefusal::DeletesUnknown(key) => {
            format!("{}/{} is not in the anchor's content", key.resource_type, key.id)
        }
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

/// A stable 64-bit FNV-1a fingerprint of what an event says, to tell a retry of the same
/// event from a different event reusing its id.
fn fingerprint(event: &EventRequest) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    };
    feed(event.name.as_str().as_bytes());
    feed(Value::Array(event.context.clone()).to_string().as_bytes());
    feed(event.version_id.as_deref().unwrap_or_default().as_bytes());
    hash
}

/// The ids of recently accepted events, oldest evicted first.
#[derive(Clone, Debug)]
struct IdempotencyLog {
    capacity: usize,
    order: VecDeque<String>,
    fingerprints: HashMap<String, u64>,
}

impl IdempotencyLog {
    fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            fingerprints: HashMap::new(),
        }
    }

    fn get(&self, id: &str) -> Option<u64> {
        self.fingerprints.get(id).copied()
    }

    fn insert(&mut self, id: String, fingerprint: u64) {
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.fingerprints.remove(&oldest);
        }
        self.order.push_back(id.clone());
        self.fingerprints.insert(id, fingerprint);
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
