//! The durable side of a topic's state: what a command changed, as deltas for the store
//! ([`TopicState::take_change`]), and the state rebuilt from what the store holds
//! ([`TopicState::restore`]). Timers are derived from the subscriptions and never stored.

use fhircast_proto::TopicId;

use super::ended::EndedEndpoints;
use super::idempotency::IdempotencyLog;
use super::{Effects, TopicState};
use crate::store::{Change, Delta, Header, Snapshot};
use crate::topic::context::Contexts;
use crate::topic::settings::TopicSettings;
use crate::topic::tracked::Tracked;

impl TopicState {
    /// Returns the change a command made: its effects plus every entry it touched.
    pub fn take_change(&mut self, effects: Effects) -> Change {
        let (pointer, contexts) = self.contexts.take_changes();
        let (next_ended_order, ended) = self.ended.take_changes();
        let mut deltas: Vec<Delta> = self
            .subscriptions
            .take_touched()
            .into_iter()
            .map(|(endpoint, record)| Delta::Subscription {
                endpoint,
                record: record.cloned(),
            })
            .collect();
        deltas.extend(
            ended
                .into_iter()
                .map(|(endpoint, record)| Delta::Ended { endpoint, record }),
        );
        deltas.extend(
            contexts
                .into_iter()
                .map(|(anchor, record)| Delta::Context { anchor, record }),
        );
        deltas.extend(
            self.accepted_ids
                .take_added()
                .into_iter()
                .map(|(id, fingerprint)| Delta::Accepted { id, fingerprint }),
        );
        Change {
            header: Header {
                topic: self.topic.expose().to_owned(),
                epoch: self.epoch,
                seq: self.seq,
                next_generation: self.next_generation,
                last_event: self.last_event.clone(),
                contexts: pointer,
                next_ended_order,
            },
            deltas,
            envelopes: effects.envelopes,
            endpoints_added: effects.endpoints_added,
            endpoints_removed: effects.endpoints_removed,
        }
    }

    /// Rebuilds a topic from what the store holds; `None` for a topic never committed.
    pub fn restore(topic: TopicId, settings: TopicSettings, snapshot: Snapshot) -> Option<Self> {
        let header = snapshot.header?;
        let mut state = Self {
            contexts: Contexts::restore(
                settings.max_open_contexts,
                header.contexts,
                snapshot.contexts.into_values(),
            ),
            ended: EndedEndpoints::restore(header.next_ended_order, snapshot.ended),
            accepted_ids: IdempotencyLog::restore(
                settings.idempotency_capacity,
                snapshot.accepted.into_iter().collect(),
            ),
            subscriptions: Tracked::loaded(snapshot.subscriptions),
            epoch: header.epoch,
            seq: header.seq,
            next_generation: header.next_generation,
            last_event: header.last_event,
            ..Self::new(topic, settings, header.epoch)
        };
        let endpoints: Vec<_> = state.subscriptions.iter().map(|(e, _)| e.clone()).collect();
        for endpoint in &endpoints {
            state.retime(endpoint);
        }
        Some(state)
    }
}

#[cfg(test)]
impl TopicState {
    /// Returns every durable part of the state, as a store holding all of it would.
    pub(crate) fn to_snapshot(&self) -> Snapshot {
        let mut copy = self.clone();
        let mut snapshot = Snapshot::default();
        // Everything loaded counts as touched: write it all once.
        copy.subscriptions = Tracked::default();
        for (endpoint, subscription) in self.subscriptions.iter() {
            copy.subscriptions
                .insert(endpoint.clone(), subscription.clone());
        }
        let (pointer, _) = copy.contexts.take_changes();
        let change = copy.take_change(Effects::default());
        snapshot.apply(&change, usize::MAX);
        snapshot.ended = self.ended.entries();
        snapshot.contexts = self.contexts.entries();
        snapshot.accepted = self.accepted_ids.entries();
        if let Some(header) = &mut snapshot.header {
            header.contexts = pointer;
        }
        snapshot
    }
}
