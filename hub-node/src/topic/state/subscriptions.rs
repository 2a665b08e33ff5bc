//! Subscriptions of a topic: subscribe and re-subscribe (2-4), unsubscribe, attach and
//! re-attach, detach, delivery failures.
//!
//! The subscription, not the socket, is the unit (STU3: a subscriber that shuts down
//! unsubscribes over HTTP). An endpoint holds one socket at a time; after that socket
//! closes, for any reason, the endpoint may be attached again within the re-attach window
//! (never beyond the lease). A handshake on an endpoint with a live socket is refused and
//! changes nothing. Each client (app and user) holds a bounded number of subscriptions on
//! a topic, and within it a bounded share of the topic's unattached slots; re-subscribing
//! an endpoint it holds counts nothing again.

use fhircast_proto::bus::ControlAction;
use fhircast_proto::channel::{confirmation, denial};
use fhircast_proto::sync_error::SyncFailure;
use fhircast_proto::{EndpointId, ErrorCode, ValidationError};

use super::expiry::overdue;
use super::{
    AttachOutcome, Attachment, DeliveryFailure, Detach, DetachReason, Effects, EndReason, Link,
    LostConnection, Note, Owner, Position, SubscribeCommand, Subscription, TopicState, UnixMs,
    lease_end, seconds_until,
};
use fhircast_proto::hub::{EndedEndpoint, TopicError};

impl TopicState {
    /// Creates a subscription, or replaces the events and lease of an existing one
    /// (2-4: a re-request for the same endpoint "SHALL replace the earlier state").
    pub fn subscribe(
        &mut self,
        command: SubscribeCommand,
        now: UnixMs,
    ) -> Result<(EndpointId, Effects), TopicError> {
        if let Some(endpoint) = command.endpoint.clone() {
            let effects = self.resubscribe(&endpoint, command, now)?;
            return Ok((endpoint, effects));
        }
        let unattached_total = self
            .subscriptions
            .values()
            .filter(|s| !s.is_attached())
            .count();
        if unattached_total >= self.settings.max_pending_attach
            || self.subscriptions.len() >= self.settings.max_subscriptions
        {
            return Err(TopicError::Overloaded);
        }
        let own_live = self.live_of(&command.owner, now);
        let cap = self.settings.max_subscriptions_per_client;
        if own_live >= cap {
            return Err(ValidationError::with_code(
                ErrorCode::Overloaded,
                format!(
                    "this client already holds {own_live} subscriptions on this topic (at most \
                     {cap}, connected or not): unsubscribe one, or re-subscribe an endpoint it \
                     holds, first"
                ),
            )
            .into());
        }
        let own_unattached = self.unattached_of(&command.owner);
        let share = self.settings.max_unattached_per_client;
        if own_unattached >= share {
            return Err(ValidationError::with_code(
                ErrorCode::Overloaded,
                format!(
                    "this client already holds {own_unattached} unconnected subscriptions on \
                     this topic (at most {share}): connect or unsubscribe them first"
                ),
            )
            .into());
        }
        let mut effects = Effects::default();
        // Remembered endpoints share the client's slots; the oldest make room first.
        let mut remembered = self.ended.count_of(&command.owner);
        while own_unattached + remembered >= share {
            let Some((forgotten, ended)) = self.ended.forget_oldest(Some(&command.owner)) else {
                break;
            };
            effects.notes.push(Note::Forgotten {
                endpoint: forgotten.clone(),
                client: ended.owner.log_label().to_owned(),
            });
            effects.endpoints_removed.push(forgotten);
            remembered -= 1;
        }
        let endpoint = EndpointId::generate();
        self.subscriptions.insert(
            endpoint.clone(),
            Subscription {
                events: command.events,
                lease_seconds: command.lease_seconds,
                token_expires: command.token_expires,
                lease_ends: None,
                subscriber_name: command.subscriber_name,
                owner: command.owner,
                link: Link::Pending {
                    deadline: now + self.settings.attach_window_ms,
                },
                gateway: None,
                attached_at: None,
            },
        );
        self.retime(&endpoint);
        effects.endpoints_added.push(endpoint.clone());
        Ok((endpoint, effects))
    }

    fn resubscribe(
        &mut self,
        endpoint: &EndpointId,
        command: SubscribeCommand,
        now: UnixMs,
    ) -> Result<Effects, TopicError> {
        let mut effects = Effects::default();
        let topic = self.topic.clone();
        let subscription = self
            .subscriptions
            .get_mut(endpoint)
            .filter(|s| overdue(s, now).is_none())
            .ok_or(TopicError::UnknownEndpoint)?;
        if subscription.owner != command.owner {
            return Err(not_the_creator());
        }
        subscription.events = command.events;
        subscription.lease_seconds = command.lease_seconds;
        subscription.token_expires = command.token_expires;
        if command.subscriber_name.is_some() {
            subscription.subscriber_name = command.subscriber_name;
        }
        let lease_ends = lease_end(now, command.lease_seconds, command.token_expires);
        match &mut subscription.link {
            // The lease starts at the first confirmation.
            Link::Pending { .. } => {}
            Link::Detached { deadline, .. } => {
                subscription.lease_ends = Some(lease_ends);
                *deadline = (*deadline).min(lease_ends);
            }
            Link::Attached { .. } => {
                subscription.lease_ends = Some(lease_ends);
                let events = subscription.events.clone();
                let frame = confirmation(topic.expose(), &events, seconds_until(lease_ends, now));
                let action = ControlAction::Confirm {
                    events,
                    lease_ends_unix_ms: lease_ends,
                    frame,
                };
                let envelope = self.control(endpoint, action);
                effects.envelopes.push(envelope);
            }
        }
        self.retime(endpoint);
        Ok(effects)
    }

    /// Cancels a subscription `owner` created; an attached socket gets a denial and is
    /// closed (2-4). An endpoint whose subscription already ended is accepted again and
    /// changes nothing. Another app's or user's subscription is refused (AUZ-05).
    pub fn unsubscribe(
        &mut self,
        endpoint: &EndpointId,
        owner: &Owner,
        now: UnixMs,
    ) -> Result<Effects, TopicError> {
        let creator = match (self.subscriptions.get(endpoint), self.ended.get(endpoint)) {
            (Some(subscription), _) => &subscription.owner,
            (None, Some(ended)) => &ended.owner,
            (None, None) => return Err(TopicError::UnknownEndpoint),
        };
        if creator != owner {
            return Err(not_the_creator());
        }
        if !self.subscriptions.contains_key(endpoint) {
            return Ok(Effects::default());
        }
        let mut effects = Effects::default();
        self.end_subscription(endpoint, EndReason::Unsubscribed, now, &mut effects);
        Ok(effects)
    }

    /// Attaches a socket to an endpoint: the first time within the attach window, again
    /// within the re-attach window after a socket closed. A remembered endpoint whose
    /// subscription ended gets its denial instead.
    pub fn attach(
        &mut self,
        endpoint: &EndpointId,
        gateway: &str,
        now: UnixMs,
    ) -> Result<(AttachOutcome, Effects), TopicError> {
        let mut effects = Effects::default();
        if let Some(ended) = self.ended.get(endpoint) {
            return Ok((self.ended_outcome(endpoint, ended.reason), effects));
        }
        let subscription = self
            .subscriptions
            .get(endpoint)
            .ok_or(TopicError::UnknownEndpoint)?;
        if let Link::Attached { .. } = subscription.link {
            return Err(TopicError::EndpointInUse);
        }
        let overdue = overdue(subscription, now);
        if let Some(reason) = overdue {
            self.end_subscription(endpoint, reason, now, &mut effects);
            return Ok((self.ended_outcome(endpoint, reason), effects));
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let (events, lease_ends, resume) = {
            let Some(subscription) = self.subscriptions.get_mut(endpoint) else {
                return Err(TopicError::UnknownEndpoint);
            };
            let resume = match &subscription.link {
                Link::Detached { resume, .. } => *resume,
                Link::Pending { .. } | Link::Attached { .. } => None,
            };
            // A reconnect within the grace cancels the lost connection's SyncError.
            let lease_ends = *subscription.lease_ends.get_or_insert_with(|| {
                lease_end(now, subscription.lease_seconds, subscription.token_expires)
            });
            subscription.link = Link::Attached { generation };
            subscription.gateway = Some(gateway.to_owned());
            subscription.attached_at = Some(Position {
                epoch: self.epoch,
                seq: self.seq,
            });
            (subscription.events.clone(), lease_ends, resume)
        };
        self.retime(endpoint);
        let confirmation =
            confirmation(self.topic.expose(), &events, seconds_until(lease_ends, now));
        let attachment = Attachment {
            topic: self.topic.clone(),
            replay: self.replay_for(&events),
            events,
            lease_ends,
            confirmation,
            epoch: self.epoch,
            seq: self.seq,
            generation,
            resume,
        };
        Ok((AttachOutcome::Attached(attachment), effects))
    }

    fn ended_outcome(&self, endpoint: &EndpointId, reason: EndReason) -> AttachOutcome {
        let events = self
            .ended
            .get(endpoint)
            .map(|ended| ended.events.as_slice())
            .unwrap_or_default();
        AttachOutcome::Ended {
            denial: denial(self.topic.expose(), events, reason.denial_reason()),
            reason,
        }
    }

    /// Returns those of `endpoints` without a subscription, each with the denial its socket
    /// sends: the one a re-attach would get for a remembered endpoint, a plain one for an
    /// endpoint no longer remembered (a gateway revalidating sockets its bus could not
    /// close).
    pub fn revalidate(&self, endpoints: &[EndpointId]) -> Vec<EndedEndpoint> {
        endpoints
            .iter()
            .filter(|endpoint| !self.subscriptions.contains_key(*endpoint))
            .map(|endpoint| {
                let denial = match self.ended.get(endpoint) {
                    Some(ended) => denial(
                        self.topic.expose(),
                        &ended.events,
                        ended.reason.denial_reason(),
                    ),
                    None => denial(self.topic.expose(), &[], "the subscription ended"),
                };
                EndedEndpoint {
                    endpoint: endpoint.clone(),
                    denial,
                }
            })
            .collect()
    }

    /// Notes that a socket went away. The subscription stays for the re-attach window
    /// (0: it ends now); an abnormal client close raises its SyncError only if nobody
    /// attaches again within the reconnect grace (2-5: never for 1000 or 1001; ours: never
    /// for 1005 or a close the hub made). A report from an earlier socket is ignored.
    pub fn detach(&mut self, endpoint: &EndpointId, detach: Detach, now: UnixMs) -> Effects {
        let mut effects = Effects::default();
        let Some(subscription) = self.subscriptions.get(endpoint) else {
            return effects;
        };
        if subscription.link
            != (Link::Attached {
                generation: detach.generation,
            })
        {
            return effects;
        }
        let (code, lost_event) = match &detach.reason {
            DetachReason::ClientClosed { code, last_event } => (*code, last_event.clone()),
            DetachReason::HubClosed => (1000, None),
        };
        let abnormal = detach.reason.is_abnormal();
        let lease_ends = subscription.lease_ends.unwrap_or(now);
        let window = self.settings.reattach_window_ms;
        if window == 0 || lease_ends <= now {
            // The socket is gone: no denial to send it.
            if let Some(subscription) = self.subscriptions.get_mut(endpoint) {
                subscription.link = Link::Detached {
                    deadline: now,
                    resume: None,
                    lost: None,
                };
                subscription.gateway = None;
                subscription.attached_at = None;
            }
            if abnormal {
                self.raise_lost_connection(&mut effects, endpoint, code, lost_event);
            }
            let reason = if lease_ends <= now {
                EndReason::LeaseExpired
            } else {
                EndReason::ConnectionClosed
            };
            self.end_subscription(endpoint, reason, now, &mut effects);
            return effects;
        }
        let grace = self.settings.reconnect_grace_ms;
        let lost = if abnormal && grace == 0 {
            self.raise_lost_connection(&mut effects, endpoint, code, lost_event);
            None
        } else {
            abnormal.then(|| LostConnection {
                grace_ends: now + grace,
                code,
                event: lost_event,
            })
        };
        if let Some(subscription) = self.subscriptions.get_mut(endpoint) {
            subscription.link = Link::Detached {
                deadline: now.saturating_add(window).min(lease_ends),
                resume: detach.resume,
                lost,
            };
            subscription.gateway = None;
            subscription.attached_at = None;
        }
        self.retime(endpoint);
        effects
    }

    /// Detaches every socket held by a gateway that left the cluster (`gone` says which):
    /// the sockets vanished with it, abnormally, as if each had lost its connection. The
    /// subscriptions may be attached again through another gateway within the re-attach
    /// window, and the SyncError waits for the reconnect grace as for any lost connection.
    pub fn gateways_gone(&mut self, gone: impl Fn(&str) -> bool, now: UnixMs) -> Effects {
        let orphaned: Vec<(EndpointId, u64, Option<Position>)> = self
            .subscriptions
            .iter()
            .filter_map(|(endpoint, subscription)| {
                match (&subscription.link, &subscription.gateway) {
                    (Link::Attached { generation }, Some(gateway)) if gone(gateway) => {
                        Some((endpoint.clone(), *generation, subscription.attached_at))
                    }
                    _ => None,
                }
            })
            .collect();
        let mut effects = Effects::default();
        for (endpoint, generation, resume) in orphaned {
            let detach = Detach {
                generation,
                reason: DetachReason::ClientClosed {
                    code: 1006,
                    last_event: None,
                },
                resume,
            };
            effects.extend(self.detach(&endpoint, detach, now));
        }
        effects
    }

    /// Turns a delivery failure into a SyncError to the other SyncError subscribers
    /// (2-5), and ends the subscription of an unresponsive subscriber.
    pub fn report_failure(
        &mut self,
        endpoint: &EndpointId,
        report: DeliveryFailure,
        now: UnixMs,
    ) -> Effects {
        let mut effects = Effects::default();
        if !self.subscriptions.contains_key(endpoint) || report.event_id.is_empty() {
            return effects;
        }
        self.raise_sync_error(
            &mut effects,
            endpoint,
            (&report.event_id, &report.event_name),
            report.failure,
        );
        let unresponsive = report.failure == SyncFailure::Timeout
            && report.consecutive_timeouts >= self.settings.unresponsive_threshold;
        if unresponsive {
            self.end_subscription(endpoint, EndReason::Unresponsive, now, &mut effects);
        }
        effects
    }

    /// Raises the SyncError of a connection that was lost and not resumed: about the
    /// notification named, else the topic's last event. A topic that never carried an
    /// event has nothing its subscribers could be out of step with: no SyncError then.
    pub(super) fn raise_lost_connection(
        &mut self,
        effects: &mut Effects,
        endpoint: &EndpointId,
        code: u16,
        event: Option<(String, String)>,
    ) {
        let event = event
            .filter(|(id, name)| !id.is_empty() && !name.is_empty())
            .or_else(|| self.last_event.clone());
        if let Some((event_id, event_name)) = event {
            self.raise_sync_error(
                effects,
                endpoint,
                (&event_id, &event_name),
                SyncFailure::ConnectionLost(code),
            );
        }
    }

    /// Ends a subscription: its socket (if any) gets a denial, a SyncError still waiting
    /// for the reconnect grace is raised, and the endpoint is remembered until its lease
    /// would have ended (at least the re-attach window).
    pub(super) fn end_subscription(
        &mut self,
        endpoint: &EndpointId,
        reason: EndReason,
        now: UnixMs,
        effects: &mut Effects,
    ) {
        if let Some(Link::Detached {
            lost: Some(lost), ..
        }) = self.subscriptions.get(endpoint).map(|s| s.link.clone())
        {
            self.raise_lost_connection(effects, endpoint, lost.code, lost.event);
        }
        self.untime(endpoint);
        let Some(subscription) = self.subscriptions.remove(endpoint) else {
            return;
        };
        if subscription.is_attached() {
            let envelope = self.deny(endpoint, &subscription.events, reason.denial_reason());
            effects.envelopes.push(envelope);
        }
        if reason != EndReason::Unsubscribed {
            effects.notes.push(Note::Ended {
                endpoint: endpoint.clone(),
                client: subscription.owner.log_label().to_owned(),
                reason,
            });
        }
        let lease_would_end = subscription.lease_ends.unwrap_or_else(|| {
            let start = match subscription.link {
                Link::Pending { deadline } => deadline,
                Link::Attached { .. } | Link::Detached { .. } => now,
            };
            lease_end(
                start,
                subscription.lease_seconds,
                subscription.token_expires,
            )
        });
        let floor = self
            .settings
            .reattach_window_ms
            .max(self.settings.attach_window_ms);
        let forget_at = lease_would_end.max(now.saturating_add(floor));
        self.ended.insert(
            endpoint.clone(),
            subscription.events,
            reason,
            subscription.owner,
            forget_at,
        );
        while self.ended.len() > self.settings.max_remembered_endpoints {
            let Some((forgotten, ended)) = self.ended.forget_oldest(None) else {
                break;
            };
            effects.notes.push(Note::Forgotten {
                endpoint: forgotten.clone(),
                client: ended.owner.log_label().to_owned(),
            });
            effects.endpoints_removed.push(forgotten);
        }
    }

    /// Ends every subscription: the topic was revoked (AUZ-10). Returns how many ended.
    pub fn revoke(&mut self, now: UnixMs) -> (usize, Effects) {
        let mut effects = Effects::default();
        let endpoints: Vec<EndpointId> = self
            .subscriptions
            .iter()
            .map(|(endpoint, _)| endpoint.clone())
            .collect();
        for endpoint in &endpoints {
            self.end_subscription(endpoint, EndReason::Revoked, now, &mut effects);
        }
        (endpoints.len(), effects)
    }

    /// Returns how many subscriptions `owner` holds at `now`, connected or not (one not
    /// connected in time is over, whether or not its timer has run yet).
    fn live_of(&self, owner: &Owner, now: UnixMs) -> usize {
        self.subscriptions
            .values()
            .filter(|s| s.owner == *owner && overdue(s, now).is_none())
            .count()
    }

    /// Returns how many of `owner`'s subscriptions have no socket.
    fn unattached_of(&self, owner: &Owner) -> usize {
        self.subscriptions
            .values()
            .filter(|s| !s.is_attached() && s.owner == *owner)
            .count()
    }
}

/// Re-requesting or cancelling a subscription another app or user created (AUZ-05).
fn not_the_creator() -> TopicError {
    ValidationError::with_code(
        ErrorCode::Forbidden,
        "this subscription was created by another app or user; only its creator may change \
         or cancel it",
    )
    .into()
}
