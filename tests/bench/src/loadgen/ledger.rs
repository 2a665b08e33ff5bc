//! Delivery bookkeeping: which publishes were sent and accepted per topic, and what every
//! subscriber received, so each step can say how many expected deliveries arrived exactly
//! once and in order.
//!
//! Order is checked against what the hub must respect: a publish answered before another
//! was sent was accepted first, so every subscriber must receive it first. Each event id
//! carries the topic's `floor` at send time (all lower sequence numbers were answered by
//! then); a delivery below the highest floor a subscriber has already seen is reordered.
//! Concurrent publishes (neither answered before the other was sent) may be delivered in
//! either order, as the hub accepted them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::event::EventId;
use super::latency::Shards;

/// Most phases (measured steps) a run may have.
pub const MAX_PHASES: usize = 256;
/// Highest sequence number a subscriber keeps track of (bounded memory).
const MAX_SEQ: u64 = 1 << 28;

/// A growable bitmap of sequence numbers.
#[derive(Debug, Default, Clone)]
pub struct Bitmap(Vec<u64>);

impl Bitmap {
    /// Sets `index`; returns whether it was set before.
    pub fn set(&mut self, index: u64) -> bool {
        let word = (index / 64) as usize;
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let bit = 1u64 << (index % 64);
        let before = self.0[word] & bit != 0;
        self.0[word] |= bit;
        before
    }

    pub fn get(&self, index: u64) -> bool {
        self.0
            .get((index / 64) as usize)
            .is_some_and(|word| word & (1u64 << (index % 64)) != 0)
    }

    /// How many indexes in `lo..hi` are set here and in `mask`.
    pub fn count_and(&self, mask: &Bitmap, lo: u64, hi: u64) -> u64 {
        (lo..hi)
            .filter(|&index| self.get(index) && mask.get(index))
            .count() as u64
    }

    /// How many indexes in `lo..hi` are set.
    pub fn count(&self, lo: u64, hi: u64) -> u64 {
        (lo..hi).filter(|&index| self.get(index)).count() as u64
    }
}

/// Publish bookkeeping of one topic.
#[derive(Debug, Default)]
pub struct TopicPublishes {
    next_seq: u64,
    /// Every sequence number below it has been answered.
    floor: u64,
    answered_above: BTreeSet<u64>,
    accepted: Bitmap,
    /// phase → the sequence numbers it used, `lo..hi`.
    ranges: HashMap<u32, (u64, u64)>,
}

impl TopicPublishes {
    /// Takes the next sequence number for a publish of `phase`.
    pub fn next(&mut self, phase: u32) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let range = self.ranges.entry(phase).or_insert((seq, seq));
        range.1 = seq + 1;
        seq
    }

    pub fn floor(&self) -> u64 {
        self.floor
    }

    /// Records the answer to publish `seq`.
    pub fn answered(&mut self, seq: u64, accepted: bool) {
        if accepted {
            self.accepted.set(seq);
        }
        if seq == self.floor {
            self.floor += 1;
            while self.answered_above.remove(&self.floor) {
                self.floor += 1;
            }
        } else if seq > self.floor {
            self.answered_above.insert(seq);
        }
    }

    /// The range of `phase` and how many of its publishes were accepted.
    pub fn phase(&self, phase: u32) -> Option<(u64, u64, u64)> {
        let &(lo, hi) = self.ranges.get(&phase)?;
        Some((lo, hi, self.accepted.count(lo, hi)))
    }
}

/// What one subscriber saw in one phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseCounts {
    /// First deliveries.
    pub received: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

/// What the sockets' frame loops did: the cost per delivery the generator itself pays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketIo {
    /// Reads that returned bytes.
    pub reads: u64,
    /// Our notifications among the frames read.
    pub notifications: u64,
    /// Writes of acks (and pongs, closes): one per read that asked for any.
    pub writes: u64,
    /// Ack frames written.
    pub acks: u64,
}

impl SocketIo {
    fn add(&mut self, other: &SocketIo) {
        self.reads += other.reads;
        self.notifications += other.notifications;
        self.writes += other.writes;
        self.acks += other.acks;
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &SocketIo) -> SocketIo {
        SocketIo {
            reads: self.reads.saturating_sub(before.reads),
            notifications: self.notifications.saturating_sub(before.notifications),
            writes: self.writes.saturating_sub(before.writes),
            acks: self.acks.saturating_sub(before.acks),
        }
    }
}

/// A subscriber's socket, as far as the ledger knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Socket {
    Connecting,
    Bound,
    /// Closed, by the hub or an error, at this time.
    Closed(Instant),
    Failed,
}

/// Everything one subscriber received.
#[derive(Debug)]
pub struct Subscriber {
    pub topic: u32,
    seen: Bitmap,
    max_floor: u64,
    counts: Vec<PhaseCounts>,
    /// Stalled at some point: its deliveries no longer count (they are tallied apart).
    pub excluded: bool,
    pub excluded_received: u64,
    pub socket: Socket,
    /// Our events of another topic (should never happen).
    pub foreign: u64,
    /// Its frame loop's counts so far.
    pub io: SocketIo,
}

impl Subscriber {
    pub fn new(topic: u32) -> Self {
        Self {
            topic,
            seen: Bitmap::default(),
            max_floor: 0,
            counts: Vec::new(),
            excluded: false,
            excluded_received: 0,
            socket: Socket::Connecting,
            foreign: 0,
            io: SocketIo::default(),
        }
    }

    /// Records one of our events; returns whether it is a first, counted delivery (its
    /// latency belongs to the step).
    pub fn delivered(&mut self, id: &EventId) -> bool {
        if id.topic != self.topic || id.seq >= MAX_SEQ {
            self.foreign += 1;
            return false;
        }
        let duplicate = self.seen.set(id.seq);
        let reordered = !duplicate && id.seq < self.max_floor;
        self.max_floor = self.max_floor.max(id.floor);
        if self.excluded {
            self.excluded_received += 1;
            return false;
        }
        let phase = id.phase as usize;
        if phase >= MAX_PHASES {
            return false;
        }
        if self.counts.len() <= phase {
            self.counts.resize(phase + 1, PhaseCounts::default());
        }
        let counts = &mut self.counts[phase];
        if duplicate {
            counts.duplicated += 1;
        } else {
            counts.received += 1;
            if reordered {
                counts.reordered += 1;
            }
        }
        !duplicate
    }

    pub fn counts(&self, phase: u32) -> PhaseCounts {
        self.counts.get(phase as usize).copied().unwrap_or_default()
    }
}

/// Frames that were not our events, by kind (they are reported in notes).
#[derive(Debug, Default)]
pub struct OtherFrames {
    pub confirmations: AtomicU64,
    pub denials: AtomicU64,
    pub sync_errors: AtomicU64,
    pub pings: AtomicU64,
    pub other: AtomicU64,
}

/// The run-wide ledger.
#[derive(Debug)]
pub struct Ledger {
    pub epoch: Instant,
    pub topics: Vec<Mutex<TopicPublishes>>,
    pub subscribers: Vec<Mutex<Subscriber>>,
    /// Counted first deliveries per phase (for the drain wait and the progress line).
    pub phase_received: Vec<AtomicU64>,
    pub latency: Shards,
    pub other: OtherFrames,
}

/// The delivery figures of one phase.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Delivered although their publish was not answered 2xx.
    pub unaccepted: u64,
    pub excluded_subscribers: u64,
    pub excluded_received: u64,
}

impl Ledger {
    pub fn new(epoch: Instant, topics: usize, subscribers: &[u32]) -> Self {
        Self {
            epoch,
            topics: (0..topics)
                .map(|_| Mutex::new(TopicPublishes::default()))
                .collect(),
            subscribers: subscribers
                .iter()
                .map(|&topic| Mutex::new(Subscriber::new(topic)))
                .collect(),
            phase_received: (0..MAX_PHASES).map(|_| AtomicU64::new(0)).collect(),
            latency: Shards::new(16),
            other: OtherFrames::default(),
        }
    }

    /// Microseconds since the epoch.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    pub fn received(&self, phase: u32) -> u64 {
        self.phase_received
            .get(phase as usize)
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    /// Every subscriber's frame-loop counts added up.
    pub fn io(&self) -> SocketIo {
        let mut total = SocketIo::default();
        for sub in &self.subscribers {
            total.add(&lock(sub).io);
        }
        total
    }

    /// Expected deliveries of `phase` so far: accepted publishes times the subscribers
    /// that count (bound, not excluded).
    pub fn expected(&self, phase: u32) -> u64 {
        let accepted: Vec<u64> = self
            .topics
            .iter()
            .map(|topic| {
                lock(topic)
                    .phase(phase)
                    .map_or(0, |(_, _, accepted)| accepted)
            })
            .collect();
        self.subscribers
            .iter()
            .map(|sub| {
                let sub = lock(sub);
                if sub.excluded || sub.socket == Socket::Failed {
                    0
                } else {
                    accepted.get(sub.topic as usize).copied().unwrap_or(0)
                }
            })
            .sum()
    }

    /// The delivery figures of `phase`.
    pub fn tally(&self, phase: u32) -> Tally {
        let topics: Vec<Option<(u64, u64, u64, Bitmap)>> = self
            .topics
            .iter()
            .map(|topic| {
                let topic = lock(topic);
                topic
                    .phase(phase)
                    .map(|(lo, hi, accepted)| (lo, hi, accepted, topic.accepted.clone()))
            })
            .collect();
        let mut tally = Tally::default();
        for sub in &self.subscribers {
            let sub = lock(sub);
            if sub.excluded {
                tally.excluded_subscribers += 1;
                tally.excluded_received += sub.excluded_received;
                continue;
            }
            if sub.socket == Socket::Failed {
                continue;
            }
            let Some(Some((lo, hi, accepted, mask))) = topics.get(sub.topic as usize) else {
                continue;
            };
            let counts = sub.counts(phase);
            let received_accepted = sub.seen.count_and(mask, *lo, *hi);
            tally.expected += accepted;
            tally.received += received_accepted;
            tally.unaccepted += counts.received.saturating_sub(received_accepted);
            tally.lost += accepted - received_accepted;
            tally.duplicated += counts.duplicated;
            tally.reordered += counts.reordered;
        }
        tally
    }
}

/// Locks a ledger mutex; a poisoned one (a panicked task) still holds valid counts.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(seq: u64, floor: u64) -> EventId {
        EventId {
            phase: 1,
            topic: 0,
            seq,
            sched_us: 0,
            floor,
        }
    }

    #[test]
    fn counts_losses_duplicates_and_causal_reorders() {
        let ledger = Ledger::new(Instant::now(), 1, &[0, 0]);
        {
            let mut topic = lock(&ledger.topics[0]);
            for _ in 0..4 {
                topic.next(1);
            }
            for seq in [0, 1, 2, 3] {
                topic.answered(seq, true);
            }
            assert_eq!(topic.floor(), 4);
        }
        lock(&ledger.subscribers[0]).socket = Socket::Bound;
        lock(&ledger.subscribers[1]).socket = Socket::Bound;
        {
            let mut first = lock(&ledger.subscribers[0]);
            for seq in 0..4 {
                assert!(first.delivered(&id(seq, seq)));
            }
        }
        {
            // seq 2 is lost, seq 1 arrives twice, seq 0 arrives after seq 3 whose floor is 3.
            let mut second = lock(&ledger.subscribers[1]);
            assert!(second.delivered(&id(1, 1)));
            assert!(!second.delivered(&id(1, 1)));
            assert!(second.delivered(&id(3, 3)));
            assert!(second.delivered(&id(0, 0)));
        }
        let tally = ledger.tally(1);
        assert_eq!(
            (
                tally.expected,
                tally.received,
                tally.lost,
                tally.duplicated,
                tally.reordered
            ),
            (8, 7, 1, 1, 1)
        );
    }

    #[test]
    fn concurrent_publishes_may_arrive_in_either_order() {
        let mut sub = Subscriber::new(0);
        // 0 and 1 were both sent before either was answered (floor 0).
        assert!(sub.delivered(&id(1, 0)));
        assert!(sub.delivered(&id(0, 0)));
        assert_eq!(sub.counts(1).reordered, 0);
    }
}
