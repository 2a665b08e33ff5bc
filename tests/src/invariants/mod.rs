//! What a fault scenario saw, and the invariants it must keep.
//!
//! A [`History`] records, while the faults happen:
//!
//! - per topic, every publish: its event id and body, when it was sent and answered, and its
//!   [`Outcome`]: acknowledged (2xx), refused (4xx/5xx, with `Retry-After`) or
//!   indeterminate (no answer: it may or may not have been applied);
//! - per subscriber (one app, across its sockets and subscriptions): every socket it
//!   opened and how ([`Opening`]), every notification it read (event id, event name, the
//!   topic the frame names, arrival order, which socket) and how each socket ended
//!   ([`SocketEnd`]: the hub's close code, a dropped connection, or stopped by the test).
//!
//! [`History::check`] then checks, for every subscriber `S` of topic `T`:
//!
//! - **I1 (delivery)**: every publish to `T` acknowledged after `S` subscribed (and before
//!   the test stopped it) reaches `S`, on its first socket or after a re-attach or a
//!   backfill. The only exception is the one [`Gaps`] allows: with
//!   [`Gaps::SupersededAfter1011`], events `S` missed because the hub closed its socket with
//!   1011 are superseded by the current context its new subscription starts with.
//! - **I2 (order, no silent gap)**: the acknowledged events reach `S` in publish order
//!   (each counted at its first arrival; re-deliveries are allowed); an event may be
//!   missing only under the 1011 rule above: the socket was closed with 1011 and `S`
//!   subscribed again, and the event was published between the last one `S` got before the
//!   close and the first one its new subscription delivered (and before that subscription
//!   was attached).
//! - **I3 (isolation)**: every notification names `T`, and carries an event that was
//!   published to `T` and not refused with a 4xx.
//!
//! Duplicates are counted and reported, not failed: delivery is at least once.
//! [`History::check_state`] adds **I4 (state)**: the event ids the topic's state accepted
//! hold every acknowledged event exactly once, in publish order, and nothing never
//! published or refused with a 4xx (5xx and indeterminate publishes may be there or not).
//!
//! "Publish order" is the order publishes were recorded; a scenario publishes to a topic
//! from one sequential publisher ([`crate::faults::Publisher`]), so it is also the order
//! the hub received them in.

mod check;
mod record;
mod report;

pub use record::{
    Gaps, History, Notification, Opening, Outcome, Publish, Socket, SocketEnd, SubscriberId,
    SubscriberLog,
};
pub use report::{Report, StateFigures, SubscriberFigures, TopicFigures, spread};

/// How many examples a violation lists.
const EXAMPLES: usize = 3;

#[cfg(test)]
mod tests;
