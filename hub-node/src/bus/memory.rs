//! The in-process bus of the embedded hub: per topic, a bounded channel per subscriber
//! and a ring of recent envelopes (the topic's retained history) for backfill and for
//! what a re-attaching subscriber missed. The ring is capped by count and by bytes, so a
//! topic of large events cannot grow the process without bound.
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
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self {
            max_envelopes: 1024,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Default)]
struct TopicChannel {
    subscribers: Vec<mpsc::Sender<Arc<Envelope>>>,
    stream: VecDeque<Arc<Envelope>>,
    stream_bytes: usize,
}

/// The in-process bus.
#[derive(Debug, Default)]
pub struct MemoryBus {
    channels: Mutex<HashMap<TopicRef, TopicChannel>>,
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
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let channel = channels.entry(envelope.topic.clone()).or_default();
        channel.stream_bytes += envelope.frame_bytes();
        channel.stream.push_back(Arc::clone(&envelope));
        while channel.stream.len() > 1
            && (channel.stream.len() > self.limits.max_envelopes
                || channel.stream_bytes > self.limits.max_bytes)
        {
            if let Some(oldest) = channel.stream.pop_front() {
                channel.stream_bytes -= oldest.frame_bytes();
            }
        }
        channel
            .subscribers
            .retain(|subscriber| subscriber.try_send(Arc::clone(&envelope)).is_ok());
    }

    /// Returns how many envelopes and frame bytes a topic's history holds.
    pub fn history_size(&self, topic: &TopicRef) -> (usize, usize) {
        let channels = self
            .channels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        channels.get(topic).map_or((0, 0), |channel| {
            (channel.stream.len(), channel.stream_bytes)
        })
    }

    /// Forgets a topic whose owner stopped, unless someone still listens to it.
    pub fn release(&self, topic: &TopicRef) {
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(channel) = channels.get_mut(topic) {
            channel
                .subscribers
                .retain(|subscriber| !subscriber.is_closed());
            if channel.subscribers.is_empty() {
                channels.remove(topic);
            }
        }
    }
}

#[async_trait::async_trait]
impl Bus for MemoryBus {
    async fn subscribe(&self, topic: &TopicRef) -> Result<BusSubscription, BusError> {
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_CAPACITY);
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        channels
            .entry(topic.clone())
            .or_default()
            .subscribers
            .push(sender);
        Ok(BusSubscription { receiver })
    }

    async fn backfill(
        &self,
        topic: &TopicRef,
        epoch: u64,
        after_seq: u64,
    ) -> Result<Option<Vec<Arc<Envelope>>>, BusError> {
        let channels = self
            .channels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let Some(channel) = channels.get(topic) else {
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
                    event_id: format!("e{seq}"),
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

    #[tokio::test]
    async fn backfill_is_complete_only_when_the_history_reaches_back() {
        let bus = MemoryBus::with_limits(HistoryLimits {
            max_envelopes: 4,
            max_bytes: usize::MAX,
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
