//! Time-driven changes of a topic's subscriptions, from one timer per subscription kept in
//! an ordered set (so finding what is due is O(log n), not a scan): an endpoint not
//! connected within the attach window, a lease that ended without its gateway closing the
//! socket (the backstop), a lost connection whose reconnect grace passed (its SyncError),
//! a re-attach window that passed; and remembered endpoints whose time is up.

use fhircast_proto::EndpointId;

use super::{EndReason, Link, Subscription, TopicState, UnixMs};

/// Returns why an unattached subscription is over at `now`, if it is: never connected
/// within the attach window, lease ended while detached, or re-attach window passed.
pub(super) fn overdue(subscription: &Subscription, now: UnixMs) -> Option<EndReason> {
    match &subscription.link {
        Link::Attached { .. } => None,
        Link::Pending { deadline } => (*deadline <= now).then_some(EndReason::AttachWindowPassed),
        Link::Detached { .. } if subscription.lease_ends.is_some_and(|ends| ends <= now) => {
            Some(EndReason::LeaseExpired)
        }
        Link::Detached { deadline, .. } => {
            (*deadline <= now).then_some(EndReason::ReattachWindowPassed)
        }
    }
}

impl TopicState {
    /// Returns the earliest time `expire` has work to do.
    pub fn next_expiry(&self) -> Option<UnixMs> {
        let timer = self.timers.first().map(|(at, _)| *at);
        match (timer, self.ended.next_forget()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Applies every time-driven change due by `now`.
    pub fn expire(&mut self, now: UnixMs) -> super::Effects {
        let mut effects = super::Effects::default();
        while let Some((at, endpoint)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.untime(&endpoint);
            let Some(subscription) = self.subscriptions.get(&endpoint) else {
                continue;
            };
            let link = subscription.link.clone();
            if let Link::Attached { .. } = link {
                // The timer of an attached subscription is its lease end plus the grace.
                self.end_subscription(&endpoint, EndReason::LeaseExpired, now, &mut effects);
                continue;
            }
            if let Some(reason) = overdue(subscription, now) {
                self.end_subscription(&endpoint, reason, now, &mut effects);
                continue;
            }
            if let Link::Detached {
                lost: Some(lost), ..
            } = link
                && lost.grace_ends <= now
            {
                self.raise_lost_connection(&mut effects, &endpoint, lost.code, lost.event);
                if let Some(Link::Detached { lost, .. }) = self
                    .subscriptions
                    .get_mut(&endpoint)
                    .map(|subscription| &mut subscription.link)
                {
                    *lost = None;
                }
            }
            self.retime(&endpoint);
        }
        for forgotten in self.ended.forget_due(now) {
            effects.endpoints_removed.push(forgotten);
        }
        effects
    }

    /// Schedules the subscription's next timer after any change of its link or lease.
    pub(super) fn retime(&mut self, endpoint: &EndpointId) {
        self.untime(endpoint);
        let Some(at) = self
            .subscriptions
            .get(endpoint)
            .and_then(|subscription| self.timer_of(subscription))
        else {
            return;
        };
        self.timers.insert((at, endpoint.clone()));
        self.scheduled.insert(endpoint.clone(), at);
    }

    /// Removes the subscription's timer.
    pub(super) fn untime(&mut self, endpoint: &EndpointId) {
        if let Some(at) = self.scheduled.remove(endpoint) {
            self.timers.remove(&(at, endpoint.clone()));
        }
    }

    fn timer_of(&self, subscription: &Subscription) -> Option<UnixMs> {
        match &subscription.link {
            Link::Pending { deadline } => Some(*deadline),
            Link::Attached { .. } => subscription
                .lease_ends
                .map(|ends| ends.saturating_add(self.settings.lease_grace_ms)),
            Link::Detached { deadline, lost, .. } => Some(
                lost.as_ref()
                    .map_or(*deadline, |lost| lost.grace_ends.min(*deadline)),
            ),
        }
    }
}
