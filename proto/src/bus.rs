//! The bus envelope: what a topic publishes for gateways to fan out (DESIGN §3, "the
//! seams"). Every envelope carries the topic's gap-free `seq`, so a gateway detects a lost
//! denial like a lost event; `Event` envelopes go to every matching socket of the topic,
//! `Control` envelopes to the socket of one endpoint.
//!
//! Frames are encoded once by the topic and shared (`Bytes`) by every socket that
//! delivers them.
//!
//! The [`Bus`] trait is the seam gateways subscribe through: in-process for the embedded
//! hub, Redis pub/sub (with the topic stream for backfill) for the cluster. A subscriber
//! that falls too far behind loses its subscription (its receiver ends) and recovers with
//! [`Bus::backfill`] or, failing that, by closing its sockets so their clients
//! resubscribe.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::event_name::EventName;
use crate::ids::{EndpointId, TopicRef};

/// One message on a topic's channel.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// Changes when the topic's sequence restarts (a new owner that could not load the
    /// old sequence); a gateway that sees it change cannot trust `seq` continuity.
    pub epoch: u64,
    /// The topic's sequence number of this envelope: gap-free, starting at 1.
    pub seq: u64,
    /// The topic the envelope belongs to.
    pub topic: TopicRef,
    /// What it carries.
    pub kind: EnvelopeKind,
}

impl Envelope {
    /// Returns the bytes of the frames it carries (what retaining it costs).
    pub fn frame_bytes(&self) -> usize {
        match &self.kind {
            EnvelopeKind::Event { deliveries, .. } => {
                deliveries.iter().map(|delivery| delivery.frame.len()).sum()
            }
            EnvelopeKind::Control { action, .. } => match action {
                ControlAction::Confirm { frame, .. } | ControlAction::Deny { frame } => frame.len(),
                ControlAction::Deliver(delivery) => delivery.frame.len(),
            },
        }
    }
}

/// The two kinds of envelope.
#[derive(Clone, Debug)]
pub enum EnvelopeKind {
    /// A batch of notifications that every matching subscriber of the topic receives.
    Event {
        /// The notifications, in delivery order.
        deliveries: Vec<Delivery>,
        /// Subscribers that must not receive this batch: the one a hub SyncError is about,
        /// or the app that posted a SyncError itself.
        exclude: Vec<EndpointId>,
    },
    /// An instruction for the socket of one endpoint.
    Control {
        /// The endpoint addressed.
        endpoint: EndpointId,
        /// What to do.
        action: ControlAction,
    },
}

/// One notification and the rule deciding who receives it.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The notification's event id (what acks name); shared, since every socket that
    /// receives the notification waits for its ack.
    pub event_id: Arc<str>,
    /// The event's name: only subscribers granted it receive the notification.
    pub name: EventName,
    /// Subscribers granted any of these already receive the resource in another
    /// notification of the same batch (derived events), so they skip this one.
    pub suppressed_by: Vec<EventName>,
    /// The encoded notification.
    pub frame: Bytes,
}

impl Delivery {
    /// Returns true if a subscriber granted `granted` receives this notification.
    pub fn is_for(&self, granted: &[EventName]) -> bool {
        crate::derive::should_deliver(granted, &self.name, &self.suppressed_by)
    }
}

/// What a control envelope asks the endpoint's socket to do.
#[derive(Clone, Debug)]
pub enum ControlAction {
    /// The subscription was re-requested: switch to these events and this lease, and send
    /// the new confirmation.
    Confirm {
        /// Granted events.
        events: Vec<EventName>,
        /// When the lease ends, in milliseconds since the Unix epoch.
        lease_ends_unix_ms: u64,
        /// The encoded confirmation.
        frame: Bytes,
    },
    /// The subscription ended: send this denial, then close normally.
    Deny {
        /// The encoded denial.
        frame: Bytes,
    },
    /// Deliver this notification to this socket only (a SyncError for one requester).
    Deliver(Delivery),
}

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
