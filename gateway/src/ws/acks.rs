//! Acknowledgements a socket is waiting for (2-5: subscribers answer each notification with
//! `{"id","status"}`), with their deadlines, and the count of consecutive timeouts that
//! makes a subscriber unresponsive.

use std::collections::VecDeque;

use tokio::time::Instant;

/// Most unacknowledged notifications remembered per socket; older ones are forgotten
/// (their timeout already fired or the socket is about to be cut as slow).
const MAX_PENDING: usize = 4096;

#[derive(Debug)]
pub(crate) struct PendingAck {
    pub(crate) event_id: String,
    pub(crate) event_name: String,
    pub(crate) deadline: Instant,
}

/// The acks one socket waits for, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    pending: VecDeque<PendingAck>,
    consecutive_timeouts: u32,
}

impl Acks {
    /// Starts waiting for an ack of `event_id`.
    pub(crate) fn expect(&mut self, event_id: &str, event_name: &str, deadline: Instant) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(PendingAck {
            event_id: event_id.to_owned(),
            event_name: event_name.to_owned(),
            deadline,
        });
    }

    /// Resolves an ack; returns the event's name if it was pending. Any answer shows the
    /// subscriber is responsive.
    pub(crate) fn resolve(&mut self, event_id: &str) -> Option<String> {
        let index = self.pending.iter().position(|p| p.event_id == event_id)?;
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

    /// Returns the oldest unacknowledged notification.
    pub(crate) fn oldest(&self) -> Option<(String, String)> {
        self.pending
            .front()
            .map(|p| (p.event_id.clone(), p.event_name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timeouts_count_until_an_answer() {
        let start = Instant::now();
        let mut acks = Acks::default();
        acks.expect("a", "Patient-open", start + Duration::from_secs(1));
        acks.expect("b", "Patient-open", start + Duration::from_secs(2));
        acks.expect("c", "Patient-open", start + Duration::from_secs(3));
        let expired = acks.take_expired(start + Duration::from_secs(2));
        let counts: Vec<u32> = expired.iter().map(|(_, count)| *count).collect();
        assert_eq!(counts, [1, 2]);
        assert_eq!(acks.resolve("c").as_deref(), Some("Patient-open"));
        assert_eq!(acks.resolve("c"), None);
        acks.expect("d", "Patient-open", start);
        assert_eq!(acks.take_expired(start)[0].1, 1);
    }
}
