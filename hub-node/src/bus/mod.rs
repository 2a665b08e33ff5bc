//! The bus seam: how topic envelopes reach gateways (DESIGN §3). A gateway subscribes
//! once per topic it hosts sockets for; a subscriber that falls too far behind loses its
//! subscription (its receiver ends) and recovers with [`Bus::backfill`] or, failing that,
//! by closing its sockets so their clients resubscribe.

mod memory;

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use fhircast_proto::TopicRef;
use fhircast_proto::bus::Envelope;

pub use memory::{HistoryLimits, MemoryBus};

/// Why the bus failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The bus cannot be reached.
    #[error("the bus is unavailable")]
    Unavailable,
}

/// A live subscription to one topic's envelopes, in publish order. The receiver ending
/// means the subscription was lost (the subscriber fell behind, or the bus went away).
#[derive(Debug)]
pub struct BusSubscription {
    /// The envelopes.
    pub receiver: mpsc::Receiver<Arc<Envelope>>,
}

/// Where topics publish and gateways subscribe.
#[async_trait::async_trait]
pub trait Bus: Send + Sync + fmt::Debug + 'static {
    /// Subscribes to a topic's envelopes; everything published after this returns is
    /// received.
    async fn subscribe(&self, topic: &TopicRef) -> Result<BusSubscription, BusError>;

    /// Returns the event envelopes of `epoch` with a seq greater than `after_seq`, in
    /// order, or `None` when they are no longer all available (trimmed, or the epoch
    /// changed).
    async fn backfill(
        &self,
        topic: &TopicRef,
        epoch: u64,
        after_seq: u64,
    ) -> Result<Option<Vec<Arc<Envelope>>>, BusError>;
}
