//! Idempotency on the event id (2-6: the id "MAY be used to spot retries"): the ids a topic
//! accepted recently, each with a fingerprint of what the event said, so a retry gets the
//! original answer and a different event reusing an id is refused.

use std::collections::{HashMap, VecDeque};

use fhircast_proto::event::EventRequest;

/// A stable 64-bit FNV-1a fingerprint of what an event says, to tell a retry of the same
/// event from a different event reusing its id.
pub(super) fn fingerprint(event: &EventRequest) -> u64 {
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
    feed(&serde_json::to_vec(&event.context).unwrap_or_default());
    feed(event.version_id.as_deref().unwrap_or_default().as_bytes());
    hash
}

/// The ids of recently accepted events, oldest evicted first.
#[derive(Clone, Debug)]
pub(super) struct IdempotencyLog {
    capacity: usize,
    order: VecDeque<String>,
    fingerprints: HashMap<String, u64>,
    /// Ids accepted since the last [`IdempotencyLog::take_added`].
    added: Vec<(String, u64)>,
}

impl IdempotencyLog {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            fingerprints: HashMap::new(),
            added: Vec::new(),
        }
    }

    /// Rebuilds the log a store loaded, oldest id first.
    pub(super) fn restore(capacity: usize, accepted: Vec<(String, u64)>) -> Self {
        let mut log = Self::new(capacity);
        for (id, fingerprint) in accepted {
            log.insert(id, fingerprint);
        }
        log.added.clear();
        log
    }

    /// Returns the ids accepted since the last call, oldest first.
    pub(super) fn take_added(&mut self) -> Vec<(String, u64)> {
        std::mem::take(&mut self.added)
    }

    #[cfg(test)]
    pub(super) fn entries(&self) -> std::collections::VecDeque<(String, u64)> {
        self.order
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    self.fingerprints.get(id).copied().unwrap_or_default(),
                )
            })
            .collect()
    }

    pub(super) fn get(&self, id: &str) -> Option<u64> {
        self.fingerprints.get(id).copied()
    }

    pub(super) fn insert(&mut self, id: String, fingerprint: u64) {
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.fingerprints.remove(&oldest);
        }
        self.order.push_back(id.clone());
        self.added.push((id.clone(), fingerprint));
        self.fingerprints.insert(id, fingerprint);
    }
}
