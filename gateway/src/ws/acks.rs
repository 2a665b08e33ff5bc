//! Acknowledgements a socket is waiting for (2-5: subscribers answer each notification with
//! `{"id","status"}`), with their deadlines, the count of consecutive timeouts that makes a
//! subscriber unresponsive, and how far the subscriber is caught up: the position a
//! re-attach resumes from (everything after it is sent again).
//!
//! The socket's session adds to them and its read side resolves them as acks are read
//! ([`SharedAcks`]). Subscribers answer in order, so the oldest pending ack is tried
//! first: O(1) in the usual case.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use fhircast_proto::EventName;

/// Most unacknowledged notifications remembered per socket; older ones are forgotten
/// (their timeout already fired or the socket is about to be cut as slow).
const MAX_PENDING: usize = 4096;

#[derive(Debug)]
pub(crate) struct PendingAck {
    pub(crate) event_id: Arc<str>,
    pub(crate) event_name: EventName,
    pub(crate) deadline: Instant,
    /// The seq of the envelope that carried it; `None` for a current-context replay,
    /// which has no place in the sequence.
    pub(crate) seq: Option<u64>,
}

/// The acks one socket waits for, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    pending: VecDeque<PendingAck>,
    consecutive_timeouts: u32,
    /// The lowest position among pending acks dropped at [`MAX_PENDING`] (never answered).
    dropped_floor: Option<Option<u64>>,
}

impl Acks {
    /// Starts waiting for an ack of `event_id`, carried by envelope `seq`.
    pub(crate) fn expect(
        &mut self,
        event_id: &Arc<str>,
        event_name: &EventName,
        deadline: Instant,
        seq: Option<u64>,
    ) {
        if self.pending.len() >= MAX_PENDING
            && let Some(dropped) = self.pending.pop_front()
        {
            self.dropped_floor = Some(match self.dropped_floor {
                None => dropped.seq,
                Some(floor) => floor.zip(dropped.seq).map(|(a, b)| a.min(b)),
            });
        }
        self.pending.push_back(PendingAck {
            event_id: Arc::clone(event_id),
            event_name: event_name.clone(),
            deadline,
            seq,
        });
    }

    /// Returns the seq through which the subscriber has answered everything (or had its
    /// silence reported), given that the socket has processed envelopes through
    /// `high_water`. `None` when an unanswered current-context replay means only a fresh
    /// replay can bring a re-attaching subscriber up to date.
    pub(crate) fn caught_up_through(&self, high_water: u64) -> Option<u64> {
        let mut lowest: Option<u64> = None;
        let floors = self
            .pending
            .iter()
            .map(|pending| pending.seq)
            .chain(self.dropped_floor);
        for seq in floors {
            let seq = seq?;
            lowest = Some(lowest.map_or(seq, |low| low.min(seq)));
        }
        Some(lowest.map_or(high_water, |low| low.saturating_sub(1)))
    }

    /// Resolves an ack; returns the event's name if it was pending. Any answer shows the
    /// subscriber is responsive.
    pub(crate) fn resolve(&mut self, event_id: &str) -> Option<EventName> {
        let index = if self
            .pending
            .front()
            .is_some_and(|p| &*p.event_id == event_id)
        {
            0
        } else {
            self.pending.iter().position(|p| &*p.event_id == event_id)?
        };
        self.consecutive_timeouts = 0;
        self.pending.remove(index).map(|pending| pending.event_name)
    }

    /// Removes and returns the acks whose deadline passed, with the consecutive-timeout
    /// count after each.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<(PendingAck, u32)> {
        let mut expired = Vec::new();
        while self.pending.front().is_some_and(|p| p.deadline <= now) {
            if let Some(pending) = self.pending.pop_front() {
                self.consecutive_timeouts = self.consecutive_timeouts.saturating_add(1);
                expired.push((pending, self.consecutive_timeouts));
            }
        }
        expired
    }

    /// Returns the earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.pending.front().map(|p| p.deadline)
    }

    /// Returns the earliest deadline later than `after`. Pending acks are kept in the order
    /// their notifications were written, all with the same timeout, so deadlines rise and
    /// this is a binary search (the front, in the usual case).
    pub(crate) fn first_deadline_after(&self, after: Instant) -> Option<Instant> {
        let index = self.pending.partition_point(|p| p.deadline <= after);
        self.pending.get(index).map(|p| p.deadline)
    }

    /// Returns the oldest unacknowledged notification.
    pub(crate) fn oldest(&self) -> Option<(Arc<str>, EventName)> {
        self.pending
            .front()
            .map(|p| (Arc::clone(&p.event_id), p.event_name.clone()))
    }
}

/// One socket's [`Acks`], shared by its session (which adds) and its read side (which
/// resolves), both in the socket's task. Each holds the lock only for a lookup or an
/// insert.
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedAcks(Arc<Mutex<Acks>>);

impl SharedAcks {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Acks> {
        self.0.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn id(text: &str) -> Arc<str> {
        Arc::from(text)
    }

    fn open() -> EventName {
        EventName::parse("Patient-open").expect("a standard event")
    }

    #[test]
    fn timeouts_count_until_an_answer() {
        let start = Instant::now();
        let mut acks = Acks::default();
        acks.expect(&id("a"), &open(), start + Duration::from_secs(1), Some(1));
        acks.expect(&id("b"), &open(), start + Duration::from_secs(2), Some(2));
        acks.expect(&id("c"), &open(), start + Duration::from_secs(3), Some(3));
        let expired = acks.take_expired(start + Duration::from_secs(2));
        let counts: Vec<u32> = expired.iter().map(|(_, count)| *count).collect();
        assert_eq!(counts, [1, 2]);
        assert_eq!(acks.resolve("c"), Some(open()));
        assert_eq!(acks.resolve("c"), None);
        acks.expect(&id("d"), &open(), start, Some(4));
        assert_eq!(acks.take_expired(start)[0].1, 1);
    }

    #[test]
    fn the_resume_position_stops_before_the_oldest_unanswered_notification() {
        let later = Instant::now() + Duration::from_secs(60);
        let mut acks = Acks::default();
        assert_eq!(acks.caught_up_through(7), Some(7));
        acks.expect(&id("e5"), &open(), later, Some(5));
        acks.expect(&id("e6"), &open(), later, Some(6));
        assert_eq!(acks.caught_up_through(7), Some(4));
        assert!(acks.resolve("e5").is_some());
        assert_eq!(acks.caught_up_through(7), Some(5));
        assert!(acks.resolve("e6").is_some());
        assert_eq!(acks.caught_up_through(7), Some(7));
        // An unanswered replay has no position: only a fresh replay catches up.
        acks.expect(&id("replayed"), &open(), later, None);
        assert_eq!(acks.caught_up_through(7), None);
    }

    #[test]
    fn the_first_deadline_after_an_instant_skips_older_ones() {
        let start = Instant::now();
        let second = |n: u64| start + Duration::from_secs(n);
        let mut acks = Acks::default();
        assert_eq!(acks.first_deadline_after(start), None);
        for (n, name) in [(1, "a"), (2, "b"), (3, "c")] {
            acks.expect(&id(name), &open(), second(n), Some(n));
        }
        assert_eq!(acks.first_deadline_after(start), Some(second(1)));
        assert_eq!(acks.first_deadline_after(second(1)), Some(second(2)));
        assert!(acks.resolve("b").is_some());
        assert_eq!(acks.first_deadline_after(second(1)), Some(second(3)));
        assert_eq!(acks.first_deadline_after(second(3)), None);
    }

    #[test]
    fn dropped_pending_acks_still_hold_the_position_back() {
        let later = Instant::now() + Duration::from_secs(60);
        let mut acks = Acks::default();
        for seq in 1..=(MAX_PENDING as u64 + 1) {
            acks.expect(&id(&format!("e{seq}")), &open(), later, Some(seq));
        }
        assert_eq!(acks.caught_up_through(10_000), Some(0));
    }
}
