//! Endpoints whose subscription ended, remembered until their lease would have ended so a
//! client that keeps reconnecting (the Medplum SDK 5.x retries forever, stopped only by a
//! denial) gets a denial and a normal close instead of a 404 it would retry.
//!
//! Bounded: each topic remembers at most `max_remembered` endpoints, oldest forgotten
//! first, and a client's remembered endpoints count against its share of unattached
//! slots (see `subscriptions.rs`). Lookups by endpoint are O(1); expiry and eviction of
//! the oldest are O(log n).

use std::collections::{BTreeMap, BTreeSet};

use fhircast_proto::{EndpointId, EventName};

use super::{EndReason, Owner, UnixMs};
use crate::topic::tracked::Tracked;

/// One remembered endpoint.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ended {
    pub(super) events: Vec<EventName>,
    pub(super) reason: EndReason,
    pub(super) owner: Owner,
    forget_at: UnixMs,
    order: u64,
}

/// The topic's remembered endpoints.
#[derive(Clone, Debug, Default)]
pub(super) struct EndedEndpoints {
    by_endpoint: Tracked<EndpointId, Ended>,
    /// Insertion order, oldest first.
    by_order: BTreeMap<u64, EndpointId>,
    /// (forget_at, order), soonest first.
    by_forget: BTreeSet<(UnixMs, u64)>,
    next_order: u64,
}

impl EndedEndpoints {
    /// Rebuilds the remembered endpoints a store loaded.
    pub(super) fn restore(next_order: u64, entries: BTreeMap<EndpointId, Ended>) -> Self {
        let mut by_order = BTreeMap::new();
        let mut by_forget = BTreeSet::new();
        for (endpoint, ended) in &entries {
            by_order.insert(ended.order, endpoint.clone());
            by_forget.insert((ended.forget_at, ended.order));
        }
        Self {
            by_endpoint: Tracked::loaded(entries),
            by_order,
            by_forget,
            next_order,
        }
    }

    /// Returns the endpoints changed since the last call (`None`: forgotten) and the
    /// order the next one takes.
    pub(super) fn take_changes(&mut self) -> (u64, Vec<(EndpointId, Option<Ended>)>) {
        let changed = self
            .by_endpoint
            .take_touched()
            .into_iter()
            .map(|(endpoint, ended)| (endpoint, ended.cloned()))
            .collect();
        (self.next_order, changed)
    }

    #[cfg(test)]
    pub(super) fn entries(&self) -> BTreeMap<EndpointId, Ended> {
        self.by_endpoint.to_map()
    }

    pub(super) fn len(&self) -> usize {
        self.by_endpoint.len()
    }

    pub(super) fn get(&self, endpoint: &EndpointId) -> Option<&Ended> {
        self.by_endpoint.get(endpoint)
    }

    pub(super) fn reason_of(&self, endpoint: &EndpointId) -> Option<EndReason> {
        self.get(endpoint).map(|ended| ended.reason)
    }

    /// Remembers an endpoint until `forget_at`.
    pub(super) fn insert(
        &mut self,
        endpoint: EndpointId,
        events: Vec<EventName>,
        reason: EndReason,
        owner: Owner,
        forget_at: UnixMs,
    ) {
        self.remove(&endpoint);
        let order = self.next_order;
        self.next_order += 1;
        self.by_order.insert(order, endpoint.clone());
        self.by_forget.insert((forget_at, order));
        self.by_endpoint.insert(
            endpoint,
            Ended {
                events,
                reason,
                owner,
                forget_at,
                order,
            },
        );
    }

    pub(super) fn remove(&mut self, endpoint: &EndpointId) -> Option<Ended> {
        let ended = self.by_endpoint.remove(endpoint)?;
        self.by_order.remove(&ended.order);
        self.by_forget.remove(&(ended.forget_at, ended.order));
        Some(ended)
    }

    /// Returns how many endpoints `owner` has remembered.
    pub(super) fn count_of(&self, owner: &Owner) -> usize {
        self.by_endpoint
            .values()
            .filter(|ended| ended.owner == *owner)
            .count()
    }

    /// Forgets the oldest remembered endpoint (of `owner`, when given).
    pub(super) fn forget_oldest(&mut self, owner: Option<&Owner>) -> Option<(EndpointId, Ended)> {
        let endpoint = self
            .by_order
            .values()
            .find(|endpoint| {
                owner.is_none_or(|owner| {
                    self.by_endpoint
                        .get(*endpoint)
                        .is_some_and(|ended| ended.owner == *owner)
                })
            })?
            .clone();
        let ended = self.remove(&endpoint)?;
        Some((endpoint, ended))
    }

    /// Returns the earliest time an endpoint is due to be forgotten.
    pub(super) fn next_forget(&self) -> Option<UnixMs> {
        self.by_forget.first().map(|(at, _)| *at)
    }

    /// Forgets every endpoint due by `now`; returns them.
    pub(super) fn forget_due(&mut self, now: UnixMs) -> Vec<EndpointId> {
        let mut forgotten = Vec::new();
        while let Some(&(at, order)) = self.by_forget.first() {
            if at > now {
                break;
            }
            let Some(endpoint) = self.by_order.get(&order).cloned() else {
                self.by_forget.remove(&(at, order));
                continue;
            };
            self.remove(&endpoint);
            forgotten.push(endpoint);
        }
        forgotten
    }
}
