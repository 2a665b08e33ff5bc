//! Attaching sockets to endpoints and reporting what happened to them: the handshake's
//! outcome, delivery failures and detaches.

use bytes::Bytes;

use crate::bus::Delivery;
use crate::event_name::EventName;
use crate::ids::TopicId;
use crate::sync_error::SyncFailure;

use super::{EndReason, UnixMs};

/// A point in the topic's sequence: a subscriber that is caught up through it has
/// received (and acknowledged) everything up to and including `seq` of `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// The topic's epoch.
    pub epoch: u64,
    /// The last seq covered.
    pub seq: u64,
}

/// What an attaching socket needs to start delivering.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// The topic (its raw form goes into frames only).
    pub topic: TopicId,
    /// Granted events.
    pub events: Vec<EventName>,
    /// When the lease ends.
    pub lease_ends: UnixMs,
    /// The encoded confirmation, to send first.
    pub confirmation: Bytes,
    /// The current-context replay (2-4): sent after the confirmation on a first attach,
    /// and on a re-attach when the topic's history no longer covers what was missed.
    pub replay: Vec<Delivery>,
    /// The topic's epoch and the seq of the last envelope the attachment already
    /// reflects: later envelopes are delivered live, earlier ones dropped.
    pub epoch: u64,
    /// See `epoch`.
    pub seq: u64,
    /// Which attach of the endpoint this is; the socket reports it when it detaches.
    pub generation: u64,
    /// On a re-attach: where the subscriber was caught up to when its last socket went
    /// away. The gateway delivers what followed from the topic's history when it can, and
    /// the replay otherwise. `None` on a first attach or when the position is unknown.
    pub resume: Option<Position>,
}

/// The outcome of a handshake on a known endpoint.
#[derive(Clone, Debug)]
pub enum AttachOutcome {
    /// The socket is attached.
    Attached(Attachment),
    /// The endpoint's subscription has ended: send this denial and close, so a client
    /// that keeps reconnecting stops for good.
    Ended {
        /// The encoded denial.
        denial: Bytes,
        /// Why the subscription ended.
        reason: EndReason,
    },
}

/// A delivery failure the gateway reports (a non-2xx ack, or an ack timeout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryFailure {
    /// The failed notification's id.
    pub event_id: String,
    /// The failed notification's event name.
    pub event_name: String,
    /// What happened.
    pub failure: SyncFailure,
    /// How many acks in a row this subscriber let time out (0 unless `failure` is a
    /// timeout).
    pub consecutive_timeouts: u32,
}

/// Why a socket went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DetachReason {
    /// The subscriber closed (or lost) the connection; `code` 1006 for a lost one, 1005
    /// for a close frame without a code.
    ClientClosed {
        /// The close code.
        code: u16,
        /// The notification the subscriber had not acknowledged, or the last one it got.
        last_event: Option<(String, String)>,
    },
    /// The hub closed it (lease end, slow consumer, gap, drain): never a SyncError.
    HubClosed,
}

impl DetachReason {
    /// Returns true for a close that may raise a SyncError (2-5: never 1000 or 1001; ours:
    /// never 1005, which is what browsers' `ws.close()` sends; never a close the hub made).
    pub fn is_abnormal(&self) -> bool {
        matches!(self, Self::ClientClosed { code, .. } if !matches!(code, 1000 | 1001 | 1005))
    }
}

/// A socket's report that it went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detach {
    /// The attach generation the socket had.
    pub generation: u64,
    /// Why it went away.
    pub reason: DetachReason,
    /// Where the subscriber was caught up to (`None`: unknown, replay the context).
    pub resume: Option<Position>,
}
