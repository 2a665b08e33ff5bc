//! Subscriptions of a topic: subscribe and re-subscribe (2-4), unsubscribe, attach (single
//! use, within the attach window), and how they end: unresponsive subscribers after a
//! SyncError, sockets that went away, and expiry.

use fhircast_proto::EndpointId;
use fhircast_proto::bus::ControlAction;
use fhircast_proto::channel::confirmation;
use fhircast_proto::sync_error::SyncFailure;

use super::{
    Attachment, DeliveryFailure, DetachReason, Effects, SubscribeCommand, Subscription, TopicState,
    UnixMs, lease_end, seconds_until,
};
use crate::error::TopicError;

impl TopicState {
    /// Creates a subscription, or replaces the events and lease of an existing one
    /// (2-4: a re-request for the same endpoint "SHALL replace the earlier state").
    pub fn subscribe(
        &mut self,
        command: SubscribeCommand,
        now: UnixMs,
    ) -> Result<(EndpointId, Effects), TopicError> {
        let mut effects = Effects::default();
        if let Some(endpoint) = command.endpoint {
            let topic = self.topic.clone();
            let subscription = self
                .subscriptions
                .get_mut(&endpoint)
                .filter(|s| s.attach_deadline.is_none_or(|deadline| deadline > now))
                .ok_or(TopicError::UnknownEndpoint)?;
            subscription.events = command.events;
            subscription.lease_seconds = command.lease_seconds;
            subscription.token_expires = command.token_expires;
            if command.subscriber_name.is_some() {
                subscription.subscriber_name = command.subscriber_name;
            }
            if subscription.attach_deadline.is_none() {
                let lease_ends = lease_end(now, command.lease_seconds, command.token_expires);
                subscription.lease_ends = Some(lease_ends);
                let events = subscription.events.clone();
                let frame = confirmation(topic.expose(), &events, seconds_until(lease_ends, now));
                let action = ControlAction::Confirm {
                    events,
                    lease_ends_unix_ms: lease_ends,
                    frame,
                };
                effects.envelopes.push(self.control(&endpoint, action));
            }
            return Ok((endpoint, effects));
        }
        let pending = self
            .subscriptions
            .values()
            .filter(|s| s.attach_deadline.is_some())
            .count();
        if pending >= self.settings.max_pending_attach
            || self.subscriptions.len() >= self.settings.max_subscriptions
        {
            return Err(TopicError::Overloaded);
        }
        let endpoint = EndpointId::generate();
        self.subscriptions.insert(
            endpoint.clone(),
            Subscription {
                events: command.events,
                lease_seconds: command.lease_seconds,
                token_expires: command.token_expires,
                lease_ends: None,
                attach_deadline: Some(now + self.settings.attach_window_ms),
                subscriber_name: command.subscriber_name,
            },
        );
        effects.endpoints_added.push(endpoint.clone());
        Ok((endpoint, effects))
    }

    /// Cancels a subscription; an attached socket gets a denial and is closed (2-4).
    pub fn unsubscribe(&mut self, endpoint: &EndpointId) -> Result<Effects, TopicError> {
        let subscription = self
            .subscriptions
            .remove(endpoint)
            .ok_or(TopicError::UnknownEndpoint)?;
        let mut effects = Effects::default();
        effects.endpoints_removed.push(endpoint.clone());
        if subscription.attach_deadline.is_none() {
            effects
                .envelopes
                .push(self.deny(endpoint, &subscription.events, "unsubscribed"));
        }
        Ok(effects)
    }

    /// Attaches a socket to an endpoint: once, within the attach window.
    pub fn attach(&mut self, endpoint: &EndpointId, now: UnixMs) -> Result<Attachment, TopicError> {
        let subscription = self
            .subscriptions
            .get_mut(endpoint)
            .ok_or(TopicError::UnknownEndpoint)?;
        match subscription.attach_deadline {
            Some(deadline) if deadline > now => {}
            _ => return Err(TopicError::UnknownEndpoint),
        }
        subscription.attach_deadline = None;
        let lease_ends = lease_end(now, subscription.lease_seconds, subscription.token_expires);
        subscription.lease_ends = Some(lease_ends);
        let events = subscription.events.clone();
        let confirmation =
            confirmation(self.topic.expose(), &events, seconds_until(lease_ends, now));
        Ok(Attachment {
            topic: self.topic.clone(),
            replay: self.replay_for(&events),
            events,
            lease_ends,
            confirmation,
            epoch: self.epoch,
            seq: self.seq,
        })
    }

    /// Turns a delivery failure into a SyncError to the other SyncError subscribers
    /// (2-5), and ends the subscription of an unresponsive subscriber.
    pub fn report_failure(&mut self, endpoint: &EndpointId, report: DeliveryFailure) -> Effects {
        let mut effects = Effects::default();
        let name = self.subscriber_label(endpoint);
        effects.envelopes.push(self.sync_error(
            endpoint,
            &report.event_id,
            &report.event_name,
            &name,
            report.failure,
        ));
        let unresponsive = report.failure == SyncFailure::Timeout
            && report.consecutive_timeouts >= self.settings.unresponsive_threshold;
        if unresponsive && let Some(subscription) = self.subscriptions.remove(endpoint) {
            effects.endpoints_removed.push(endpoint.clone());
            effects.envelopes.push(self.deny(
                endpoint,
                &subscription.events,
                "the subscriber did not acknowledge events in time",
            ));
        }
        effects
    }

    /// Forgets the subscription of a socket that went away; an abnormal client close
    /// raises a SyncError (2-5: never for 1000 or 1001, never for closes the hub made).
    pub fn detach(&mut self, endpoint: &EndpointId, reason: DetachReason) -> Effects {
        let mut effects = Effects::default();
        let name = self.subscriber_label(endpoint);
        if self.subscriptions.remove(endpoint).is_some() {
            effects.endpoints_removed.push(endpoint.clone());
        }
        if let DetachReason::ClientClosed { code, last_event } = reason
            && !matches!(code, 1000 | 1001)
        {
            let (event_id, event_name) = last_event.unwrap_or_default();
            effects.envelopes.push(self.sync_error(
                endpoint,
                &event_id,
                &event_name,
                &name,
                SyncFailure::ConnectionLost(code),
            ));
        }
        effects
    }

    /// Drops endpoints never attached within the window, and subscriptions whose lease
    /// ended (their gateway closes the socket itself; this is the backstop).
    pub fn expire(&mut self, now: UnixMs) -> Effects {
        let mut effects = Effects::default();
        let expired: Vec<EndpointId> = self
            .subscriptions
            .iter()
            .filter(|(_, s)| {
                s.attach_deadline.is_some_and(|deadline| deadline <= now)
                    || s.lease_ends
                        .is_some_and(|ends| ends + self.settings.lease_grace_ms <= now)
            })
            .map(|(endpoint, _)| endpoint.clone())
            .collect();
        for endpoint in expired {
            if let Some(subscription) = self.subscriptions.remove(&endpoint) {
                if subscription.attach_deadline.is_none() {
                    effects.envelopes.push(self.deny(
                        &endpoint,
                        &subscription.events,
                        "the lease expired",
                    ));
                }
                effects.endpoints_removed.push(endpoint);
            }
        }
        effects
    }
}
