//! The in-process bus of the embedded hub: per topic, a bounded channel per subscriber
//! and a ring of recent envelopes (the topic's retained history) for backfill and for
//! what a re-attaching subscriber missed. The ring is capped by count and by bytes per
//! topic, and by bytes over all topics together (oldest envelope of the whole hub first),
//! so neither one topic of large events nor many busy topics grow the process without
//! bound.
//!
//! Publishing never waits for a subscriber: a subscriber whose channel is full is dropped
//! (its receiver ends after draining), exactly like a Redis pub/sub client that falls
//! behind, so the gateway's gap handling is exercised the same way in both modes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use fhircast_proto::TopicRef;
use fhircast_proto::bus::Envelope;

use super::{Bus, BusError, BusSubscription};

/// Envelopes a subscriber may have outstanding before it is dropped.
const SUBSCRIBER_CAPACITY: usize = 4096;

/// How much history each topic retains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Most envelopes kept per topic.
    pub max_envelopes: usize,
    /// Most frame bytes kept per topic (the newest envelope is always kept).
    pub max_bytes: usize,
    /// Most frame bytes kept over all topics; past it the hub's oldest envelopes go first
    /// (each topic still keeps its newest).
    pub max_total_bytes: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self {
            max_envelopes: 1024,
            max_bytes: 4 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Default)]
struct TopicChannel {
    subscribers: Vec<mpsc::Sender<Arc<Envelope>>>,
    stream: VecDeque<Arc<Envelope>>,
    stream_bytes: usize,
    /// Which channel of the topic this is (a released topic's next channel is another).
    generation: u64,
    /// Envelopes ever pushed to `stream`: the front's index is `pushed - stream.len()`.
    pushed: u64,
}

impl TopicChannel {
    fn front_index(&self) -> u64 {
        self.pushed - self.stream.len() as u64
    }

    /// Drops the oldest envelope; returns its frame bytes.
    fn pop_oldest(&mut self) -> usize {
        let bytes = self
            .stream
            .pop_front()
            .map_or(0, |oldest| oldest.frame_bytes());
        self.stream_bytes -= bytes;
        bytes
    }
}

/// Where one retained envelope sits, in the order envelopes were published hub-wide.
#[derive(Debug)]
struct Retained {
    topic: TopicRef,
    generation: u64,
    index: u64,
}

#[derive(Debug, Default)]
struct Channels {
    by_topic: HashMap<TopicRef, TopicChannel>,
    /// Retained envelopes of every topic, oldest first; entries of envelopes a topic
    /// already dropped are skipped when reached, and compacted away in bulk.
    order: VecDeque<Retained>,
    total_bytes: usize,
    total_envelopes: usize,
    generations: u64,
}

impl Channels {
    fn channel(&mut self, topic: &TopicRef) -> &mut TopicChannel {
        if !self.by_topic.contains_key(topic) {
            self.generations += 1;
            let fresh = TopicChannel {
                generation: self.generations,
                ..TopicChannel::default()
            };
            self.by_topic.insert(topic.clone(), fresh);
        }
        self.by_topic
            .get_mut(topic)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    fn is_retained(&self, entry: &Retained) -> bool {
        self.by_topic.get(&entry.topic).is_some_and(|channel| {
            channel.generation == entry.generation && entry.index >= channel.front_index()
        })
    }

    /// Drops the hub's oldest envelopes until the total fits (each topic keeps its newest).
    fn trim_total(&mut self, max_total_bytes: usize) {
        while self.total_bytes > max_total_bytes {
            let Some(entry) = self.order.pop_front() else {
                break;
            };
            if !self.is_retained(&entry) {
                continue;
            }
            if let Some(channel) = self.by_topic.get_mut(&entry.topic)
                && channel.stream.len() > 1
            {
                self.total_bytes -= channel.pop_oldest();
                self.total_envelopes -= 1;
            }
        }
        // Entries of envelopes dropped by their topic's own limits are not reached above
        // until they are old: compact when they outnumber the retained ones.
        if self.order.len() > 2 * self.total_envelopes + 1024 {
            let order = std::mem::take(&mut self.order);
            self.order = order
                .into_iter()
                .filter(|entry| self.is_retained(entry))
                .collect();
        }
    }
}

/// The in-process bus.
#[derive(Debug, Default)]
pub struct MemoryBus {
    channels: Mutex<Channels>,
    limits: HistoryLimits,
}

impl MemoryBus {
    /// Creates an empty bus with the default history limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an empty bus retaining at most `limits` per topic.
    pub fn with_limits(limits: HistoryLimits) -> Self {
        Self {
            channels: Mutex::default(),
            limits,
        }
    }

    /// Publishes an envelope to the topic's subscribers and its history.
    pub fn publish(&self, envelope: Envelope) {
        let envelope = Arc::new(envelope);
        let mut channels = self.lock();
        let channels = &mut *channels;
        let channel = channels.channel(&envelope.topic);
        let bytes = envelope.frame_bytes();
        channel.stream_bytes += bytes;
        channel.stream.push_back(Arc::clone(&envelope));
        channel.pushed += 1;
        let mut dropped = (0, 0);
        while channel.stream.len() > 1
            && (channel.stream.len() > self.limits.max_envelopes
                || channel.stream_bytes > self.limits.max_bytes)
        {
            dropped.0 += 1;
            dropped.1 += channel.pop_oldest();
        }
        channel
            .subscribers
            .retain(|subscriber| subscriber.try_send(Arc::clone(&envelope)).is_ok());
        let retained = Retained {
            topic: envelope.topic.clone(),
            generation: channel.generation,
            index: channel.pushed - 1,
        };
        channels.order.push_back(retained);
        channels.total_envelopes = channels.total_envelopes + 1 - dropped.0;
        channels.total_bytes = channels.total_bytes + bytes - dropped.1;
        channels.trim_total(self.limits.max_total_bytes);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Channels> {
        self.channels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Returns how many envelopes and frame bytes the history of every topic holds.
    pub fn total_history_size(&self) -> (usize, usize) {
        let channels = self.lock();
        (channels.total_envelopes, channels.total_bytes)
    }

    /// Returns how many envelopes and frame bytes a topic's history holds.
    pub fn history_size(&self, topic: &TopicRef) -> (usize, usize) {
        let channels = self.lock();
        channels.by_topic.get(topic).map_or((0, 0), |channel| {
            (channel.stream.len(), channel.stream_bytes)
        })
    }

    /// Forgets a topic whose owner stopped, unless someone still listens to it.
    pub fn release(&self, topic: &TopicRef) {
        let mut channels = self.lock();
        if let Some(channel) = channels.by_topic.get_mut(topic) {
            channel
                .subscribers
                .retain(|subscriber| !subscriber.is_closed());
            if channel.subscribers.is_empty()
                && let Some(gone) = channels.by_topic.remove(topic)
            {
                channels.total_bytes -= gone.stream_bytes;
                channels.total_envelopes -= gone.stream.len();
            }
        }
    }
}

#[async_trait::async_trait]
impl Bus for MemoryBus {
    async fn subscribe(&self, topic: &TopicRef) -> Result<BusSubscription, BusError> {
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_CAPACITY);
        self.lock().channel(topic).subscribers.push(sender);
        Ok(BusSubscription { receiver })
    }

    async fn backfill(
        &self,
        topic: &TopicRef,
        epoch: u64,
        after_seq: u64,
    ) -> Result<Option<Vec<Arc<Envelope>>>, BusError> {
        let channels = self.lock();
        let Some(channel) = channels.by_topic.get(topic) else {
            return Ok(None);
        };
        let missing: Vec<Arc<Envelope>> = channel
            .stream
            .iter()
            .filter(|envelope| envelope.epoch == epoch && envelope.seq > after_seq)
            .cloned()
            .collect();
        // Complete only if the history reaches back to the envelope right after
        // `after_seq` (or nothing was published since), all in one epoch.
        let reaches_back = match missing.first() {
            Some(first) => first.seq == after_seq + 1,
            None => channel
                .stream
                .back()
                .is_none_or(|last| last.seq <= after_seq),
        };
        let complete = reaches_back
            && channel
                .stream
                .iter()
                .all(|envelope| envelope.epoch == epoch);
        Ok(complete.then_some(missing))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use fhircast_proto::bus::{Delivery, EnvelopeKind};
    use fhircast_proto::{EventName, TopicKey};

    use super::*;

    fn envelope(topic: &TopicRef, seq: u64, frame: &Bytes) -> Envelope {
        Envelope {
            epoch: 1,
            seq,
            topic: topic.clone(),
            kind: EnvelopeKind::Event {
                deliveries: vec![Delivery {
                    event_id: format!("e{seq}").into(),
                    name: EventName::parse("Patient-open").expect("valid"),
                    suppressed_by: Vec::new(),
                    frame: frame.clone(),
                }],
                exclude: Vec::new(),
            },
        }
    }

    #[test]
    fn history_is_bounded_by_bytes_as_well_as_count() {
        let bus = MemoryBus::new();
        let topic = TopicKey::random().topic_ref("history-topic-0123456789");
        let large = Bytes::from(vec![b'x'; 250 * 1024]);
        for seq in 1..=1024 {
            bus.publish(envelope(&topic, seq, &large));
        }
        let (count, bytes) = bus.history_size(&topic);
        let limits = HistoryLimits::default();
        assert!(bytes <= limits.max_bytes, "{bytes} bytes retained");
        assert_eq!(count, limits.max_bytes / large.len());
        let small = Bytes::from_static(b"{}");
        for seq in 1025..=3000 {
            bus.publish(envelope(&topic, seq, &small));
        }
        assert_eq!(bus.history_size(&topic).0, limits.max_envelopes);
    }

    #[test]
    fn history_is_bounded_in_total_oldest_first_keeping_each_topics_newest() {
        let bus = MemoryBus::with_limits(HistoryLimits {
            max_envelopes: 1024,
            max_bytes: usize::MAX,
            max_total_bytes: 10 * 100,
        });
        let key = TopicKey::random();
        let topics: Vec<TopicRef> = (0..4)
            .map(|n| key.topic_ref(&format!("total-history-topic-{n:04}-0123456789")))
            .collect();
        let frame = Bytes::from(vec![b'x'; 100]);
        // Topic 0 publishes 8 envelopes first, then topics 1..3 publish 4 each.
        for seq in 1..=8 {
            bus.publish(envelope(&topics[0], seq, &frame));
        }
        for topic in &topics[1..] {
            for seq in 1..=4 {
                bus.publish(envelope(topic, seq, &frame));
            }
        }
        assert_eq!(bus.total_history_size(), (10, 1000));
        // The oldest envelopes hub-wide went first: topic 0 and topic 1 lost theirs.
        assert_eq!(
            bus.history_size(&topics[0]).0,
            1,
            "a topic keeps its newest"
        );
        assert_eq!(bus.history_size(&topics[1]).0, 1);
        assert_eq!(bus.history_size(&topics[2]).0, 4);
        assert_eq!(bus.history_size(&topics[3]).0, 4);
        // Released topics give their bytes back.
        bus.release(&topics[3]);
        assert_eq!(bus.total_history_size(), (6, 600));
    }

    #[test]
    fn entries_of_envelopes_a_topic_trimmed_itself_do_not_accumulate() {
        let bus = MemoryBus::with_limits(HistoryLimits {
            max_envelopes: 2,
            max_bytes: usize::MAX,
            max_total_bytes: usize::MAX,
        });
        let topic = TopicKey::random().topic_ref("order-compaction-topic-0123456789");
        let frame = Bytes::from_static(b"{}");
        for seq in 1..=10_000 {
            bus.publish(envelope(&topic, seq, &frame));
        }
        assert_eq!(bus.total_history_size(), (2, 4));
        assert!(bus.lock().order.len() <= 2 * 2 + 1024 + 1);
    }

    #[tokio::test]
    async fn backfill_is_complete_only_when_the_history_reaches_back() {
        let bus = MemoryBus::with_limits(HistoryLimits {
            max_envelopes: 4,
            max_bytes: usize::MAX,
            max_total_bytes: usize::MAX,
        });
        let topic = TopicKey::random().topic_ref("backfill-topic-0123456789");
        let frame = Bytes::from_static(b"{}");
        for seq in 1..=6 {
            bus.publish(envelope(&topic, seq, &frame));
        }
        let seqs = |found: Option<Vec<Arc<Envelope>>>| {
            found.map(|envelopes| envelopes.iter().map(|e| e.seq).collect::<Vec<_>>())
        };
        assert_eq!(
            seqs(bus.backfill(&topic, 1, 3).await.expect("bus")),
            Some(vec![4, 5, 6])
        );
        assert_eq!(
            seqs(bus.backfill(&topic, 1, 6).await.expect("bus")),
            Some(vec![])
        );
        assert_eq!(
            seqs(bus.backfill(&topic, 1, 1).await.expect("bus")),
            None,
            "trimmed"
        );
        assert_eq!(
            seqs(bus.backfill(&topic, 2, 3).await.expect("bus")),
            None,
            "other epoch"
        );
    }
}
