//! What a commit writes: a [`Change`] is the delta one command made to a topic (the
//! subscriptions, remembered endpoints and anchors it touched, the event ids it accepted,
//! and the small [`Header`] of counters), plus the envelopes to publish. A [`Snapshot`] is
//! a topic as a store holds it; applying every committed change to it in order gives what
//! [`crate::topic::TopicState::restore`] rebuilds the live state from.

use std::collections::{BTreeMap, VecDeque};

use fhircast_proto::EndpointId;
use fhircast_proto::bus::Envelope;
use fhircast_proto::validate::AnchorKey;

use crate::topic::{ContextPointer, Ended, OpenContext, Subscription};

/// The counters of a topic, written with every change (a few dozen bytes).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// The raw topic (a node reaching the topic by its ref alone reads it from here).
    pub topic: String,
    /// The topic's epoch.
    pub epoch: u64,
    /// The seq of the last envelope.
    pub seq: u64,
    /// The attach generation the next attach takes.
    pub next_generation: u64,
    /// The last event accepted (id, name).
    pub last_event: Option<(String, String)>,
    /// The current anchor and the contexts' counters.
    pub contexts: ContextPointer,
    /// The order the next remembered endpoint takes.
    pub next_ended_order: u64,
}

/// One entry a command touched; `None` means it is gone.
#[derive(Clone, Debug, PartialEq)]
pub enum Delta {
    /// A subscription was added, re-requested, attached, detached, or removed (`None`).
    Subscription {
        /// Its endpoint.
        endpoint: EndpointId,
        /// The subscription now.
        record: Option<Subscription>,
    },
    /// An ended endpoint is remembered, or forgotten (`None`).
    Ended {
        /// The endpoint.
        endpoint: EndpointId,
        /// What is remembered.
        record: Option<Ended>,
    },
    /// An anchor was opened, re-opened or updated, or closed or forgotten (`None`).
    Context {
        /// The anchor.
        anchor: AnchorKey,
        /// The open context now.
        record: Option<OpenContext>,
    },
    /// An event id was accepted (idempotency); the store keeps the most recent ones.
    Accepted {
        /// The event id.
        id: String,
        /// What the event said.
        fingerprint: u64,
    },
}

/// One committed change of a topic.
#[derive(Clone, Debug)]
pub struct Change {
    /// The counters after the change.
    pub header: Header,
    /// The entries touched, in no particular order (each key at most once).
    pub deltas: Vec<Delta>,
    /// Envelopes to publish, in seq order.
    pub envelopes: Vec<Envelope>,
    /// Endpoints that now resolve to this topic.
    pub endpoints_added: Vec<EndpointId>,
    /// Endpoints that no longer resolve.
    pub endpoints_removed: Vec<EndpointId>,
}

/// A topic as a store holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The counters; `None` for a topic never committed.
    pub header: Option<Header>,
    /// Subscriptions by endpoint.
    pub subscriptions: BTreeMap<EndpointId, Subscription>,
    /// Remembered endpoints.
    pub ended: BTreeMap<EndpointId, Ended>,
    /// Open anchors.
    pub contexts: BTreeMap<AnchorKey, OpenContext>,
    /// Accepted event ids, oldest first, at most `capacity` of them.
    pub accepted: VecDeque<(String, u64)>,
}

impl Change {
    /// Returns true if the change writes and publishes nothing.
    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
            && self.envelopes.is_empty()
            && self.endpoints_added.is_empty()
            && self.endpoints_removed.is_empty()
    }
}

impl Snapshot {
    /// Applies a committed change, keeping at most `accepted_capacity` event ids.
    pub fn apply(&mut self, change: &Change, accepted_capacity: usize) {
        self.header = Some(change.header.clone());
        for delta in &change.deltas {
            match delta {
                Delta::Subscription { endpoint, record } => {
                    put(&mut self.subscriptions, endpoint, record.as_ref());
                }
                Delta::Ended { endpoint, record } => {
                    put(&mut self.ended, endpoint, record.as_ref());
                }
                Delta::Context { anchor, record } => {
                    put(&mut self.contexts, anchor, record.as_ref());
                }
                Delta::Accepted { id, fingerprint } => {
                    self.accepted.push_back((id.clone(), *fingerprint));
                    while self.accepted.len() > accepted_capacity.max(1) {
                        self.accepted.pop_front();
                    }
                }
            }
        }
    }
}

fn put<K: Ord + Clone, V: Clone>(map: &mut BTreeMap<K, V>, key: &K, value: Option<&V>) {
    match value {
        Some(value) => {
            map.insert(key.clone(), value.clone());
        }
        None => {
            map.remove(key);
        }
    }
}
