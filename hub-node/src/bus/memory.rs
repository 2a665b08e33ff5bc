//! The in-process bus of the embedded hub: per topic, a bounded channel per subscriber
//! and a capped ring of recent event envelopes for backfill.
//!
//! Publishing never waits for a subscriber: a subscriber whose channel is full is dropped
//! (its receiver ends after draining), exactly like a Redis pub/sub client that falls
//! behind, so the gateway's gap handling is exercised the same way in both modes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use fhircast_proto::TopicRef;
use fhircast_proto::bus::{Envelope, EnvelopeKind};

use super::{Bus, BusError, BusSubscription};

/// Envelopes a subscriber may have outstanding before it is dropped.
const SUBSCRIBER_CAPACITY: usize = 4096;
/// Event envelopes kept per topic for backfill.
const STREAM_CAPACITY: usize = 1024;

#[derive(Debug, Default)]
struct TopicChannel {
    subscribers: Vec<mpsc::Sender<Arc<Envelope>>>,
    stream: VecDeque<Arc<Envelope>>,
}

/// The in-process bus.
#[derive(Debug, Default)]
pub struct MemoryBus {
    channels: Mutex<HashMap<TopicRef, TopicChannel>>,
}

impl MemoryBus {
    /// Creates an empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes an envelope to the topic's subscribers and, for events, its stream.
    pub fn publish(&self, envelope: Envelope) {
        let envelope = Arc::new(envelope);
        let mut channels = self
            .channels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let channel = channels.entry(envelope.topic.clone()).or_default();
        if matches!(envelope.kind, EnvelopeKind::Event { .. }) {
            if channel.stream.len() >= STREAM_CAPACITY {
                channel.stream.pop_front();
            }
            channel.stream.push_back(Arc::clone(&envelope));
        }
        channel
            .subscribers
            .retain(|subscriber| subscriber.try_send(Arc::clone(&envelope)).is_ok());
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
            .filter(|envelope| envelope.epoch == epoch && event_seq(envelope) > after_seq)
            .cloned()
            .collect();
        let complete = missing
            .first()
            .is_none_or(|first| event_seq(first) == after_seq + 1)
            && channel
                .stream
                .iter()
                .all(|envelope| envelope.epoch == epoch);
        Ok(complete.then_some(missing))
    }
}

fn event_seq(envelope: &Envelope) -> u64 {
    match envelope.kind {
        EnvelopeKind::Event { seq, .. } => seq,
        EnvelopeKind::Control { .. } => 0,
    }
}
