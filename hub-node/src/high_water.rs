//! What this node last committed for each topic it owned, kept after the topic's actor
//! stops, so that a store which comes back behind it is noticed (P9).
//!
//! A Redis failover may roll back acknowledged changes: the promoted replica never got
//! them. An owner that outlives the failover notices on its next commit (the store's seq is
//! behind). But when its lease lapsed during the failover, the actor stopped, and the next
//! command loads the topic from the promoted replica; without a record outside Redis the
//! loaded state would look current. The registry compares every loaded topic with its mark
//! here: the same epoch with a lower seq means acknowledged changes were lost.
//!
//! Marks are small (a ref and two numbers) and bounded: the oldest are dropped beyond
//! [`CAPACITY`], and a topic the store forgot (idle) drops its mark.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::time::Instant;
use tracing::warn;

use fhircast_proto::ids::random_bytes;
use fhircast_proto::{TopicId, TopicRef};

use crate::store::{Fence, Store, StoreError};
use crate::topic::TopicState;

/// Most topics remembered.
pub const CAPACITY: usize = 100_000;

/// Where a topic's committed history had reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The epoch seqs counted in.
    pub epoch: u64,
    /// The last committed seq.
    pub seq: u64,
}

impl Mark {
    /// Where `state` stands now.
    pub fn of(state: &TopicState) -> Self {
        Self {
            epoch: state.epoch(),
            seq: state.seq(),
        }
    }

    /// Returns true when `loaded` is this mark's history, rolled back: the same epoch
    /// (a restarted epoch or a recreated topic counts afresh) and an earlier seq.
    pub fn is_ahead_of(&self, loaded: Mark) -> bool {
        self.epoch == loaded.epoch && self.seq > loaded.seq
    }
}

/// The marks of the topics this node owned.
#[derive(Debug, Default)]
pub struct HighWater {
    marks: Mutex<HashMap<TopicRef, (Mark, Instant)>>,
}

impl HighWater {
    /// Records where a topic's commits reached when its actor stopped.
    pub fn record(&self, topic: &TopicRef, mark: Mark) {
        let mut marks = self.marks();
        marks.insert(topic.clone(), (mark, Instant::now()));
        if marks.len() > CAPACITY {
            let mut ages: Vec<Instant> = marks.values().map(|(_, at)| *at).collect();
            ages.sort_unstable();
            // Keeps the newer half: one sort per CAPACITY / 2 records.
            if let Some(cutoff) = ages.get(ages.len() / 2).copied() {
                marks.retain(|_, (_, at)| *at >= cutoff);
            }
        }
    }

    /// Forgets a topic the store forgot.
    pub fn forget(&self, topic: &TopicRef) {
        self.marks().remove(topic);
    }

    /// Returns the mark of a topic, if this node committed to it.
    pub fn get(&self, topic: &TopicRef) -> Option<Mark> {
        self.marks().get(topic).map(|(mark, _)| *mark)
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, HashMap<TopicRef, (Mark, Instant)>> {
        self.marks
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Logs that the store lost acknowledged changes of `topic` (it holds `stored`, this node
/// had committed up to `committed`) and starts a new epoch for it, so that gateways close
/// its sockets and clients resubscribe to what the store holds.
pub async fn restart_after_rollback(
    store: &dyn Store,
    topic: &TopicId,
    fence: Fence,
    stored: Mark,
    committed: Mark,
) -> Result<(), StoreError> {
    warn!(
        topic = %topic,
        stored_seq = stored.seq,
        committed_seq = committed.seq,
        "the store lost acknowledged changes of this topic (a Redis failover rolled them \
         back?); the topic restarts from what the store holds in a new epoch, and gateways \
         close its sockets so clients resubscribe"
    );
    new_epoch(store, topic, fence).await
}

/// Logs that the store may have lost acknowledged changes of `topic` (a failover just
/// happened, commits do not wait for replicas, and this node has no record of the topic's
/// history) and starts a new epoch for it, as [`restart_after_rollback`] does.
pub async fn restart_after_failover(
    store: &dyn Store,
    topic: &TopicId,
    fence: Fence,
) -> Result<(), StoreError> {
    warn!(
        topic = %topic,
        "the store may have lost acknowledged changes of this topic: Redis failed over moments \
         ago, commits do not wait for a replica (--redis-wait-replicas 0), and this node has no \
         record of where the topic had reached; the topic restarts in a new epoch, and gateways \
         close its sockets so clients resubscribe"
    );
    new_epoch(store, topic, fence).await
}

async fn new_epoch(store: &dyn Store, topic: &TopicId, fence: Fence) -> Result<(), StoreError> {
    let epoch = u64::from_le_bytes(random_bytes::<8>());
    let restarted = store.restart_epoch(topic.topic_ref(), fence, epoch).await;
    if let Err(err) = &restarted {
        warn!(topic = %topic, error = %err, "could not start a new epoch");
    }
    restarted
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhircast_proto::TopicKey;

    fn topic(n: usize) -> TopicRef {
        TopicKey::new(b"high-water-test-key").topic_ref(&format!("topic-{n}"))
    }

    #[test]
    fn only_the_same_epoch_with_a_lower_seq_counts_as_rolled_back() {
        let mark = Mark { epoch: 7, seq: 10 };
        assert!(mark.is_ahead_of(Mark { epoch: 7, seq: 9 }));
        assert!(!mark.is_ahead_of(Mark { epoch: 7, seq: 10 }));
        assert!(!mark.is_ahead_of(Mark { epoch: 7, seq: 11 }));
        assert!(!mark.is_ahead_of(Mark { epoch: 8, seq: 1 }));
    }

    #[test]
    fn marks_are_recorded_forgotten_and_bounded() {
        let high_water = HighWater::default();
        high_water.record(&topic(0), Mark { epoch: 1, seq: 3 });
        assert_eq!(high_water.get(&topic(0)), Some(Mark { epoch: 1, seq: 3 }));
        high_water.forget(&topic(0));
        assert_eq!(high_water.get(&topic(0)), None);
        for n in 0..=CAPACITY {
            high_water.record(&topic(n), Mark { epoch: 1, seq: 1 });
        }
        let kept = high_water.marks().len();
        assert!(kept < CAPACITY, "kept {kept}");
        assert!(
            high_water.get(&topic(CAPACITY)).is_some(),
            "the newest mark is kept"
        );
    }
}
