//! Events accepted on a topic (2-6): opens with their derived events and versions, closes,
//! content-sharing updates applied all or nothing, relays; and the replay an attaching
//! subscriber gets (2-4).

use fhircast_proto::bundle::parse_update_bundle;
use fhircast_proto::bus::Delivery;
use fhircast_proto::derive::{derive_opens, should_deliver, suppressors};
use fhircast_proto::event::EventRequest;
use fhircast_proto::ids::new_event_id;
use fhircast_proto::limits::Limits;
use fhircast_proto::validate::{AnchorKey, anchor_of};
use fhircast_proto::{EventKind, EventName, ValidationError};

use fhircast_proto::EndpointId;
use fhircast_proto::sync_error::SUBSCRIBER_NAME_SYSTEM;
use serde_json::Value;

use super::idempotency::fingerprint;
use super::{Effects, Owner, Published, TopicState};
use crate::topic::context::{OpenContext, UpdateRefusal};
use fhircast_proto::hub::TopicError;

impl TopicState {
    /// Accepts or refuses an event from `poster`; see the module docs of
    /// `topic::context` for the context rules.
    pub fn publish(
        &mut self,
        event: EventRequest,
        poster: &Owner,
    ) -> Result<(Published, Effects), TopicError> {
        let fingerprint = fingerprint(&event);
        match self.accepted_ids.get(&event.id) {
            Some(seen) if seen == fingerprint => {
                return Ok((Published::Duplicate, Effects::default()));
            }
            Some(_) => {
                return Err(ValidationError::conflict(
                    "this event id was already used on this topic for a different event",
                )
                .into());
            }
            None => {}
        }
        let seq = self.seq + 1;
        let mut exclude = Vec::new();
        let deliveries = match event.name.kind() {
            EventKind::Open => self.apply_open(&event, seq),
            EventKind::Close => {
                if let Some(anchor) = anchor_of(&event.name, &event.context) {
                    self.contexts.close(&anchor);
                }
                vec![self.relay(&event, None, None)]
            }
            EventKind::Update => vec![self.apply_update(&event)?],
            EventKind::HomeOpen => {
                self.contexts.leave_current();
                vec![self.relay(&event, None, None)]
            }
            EventKind::SyncError => {
                // 2-5: a SyncError a subscriber posts goes to the *other* subscribers.
                exclude = self.poster_endpoints(poster, &event.context);
                vec![self.relay(&event, None, None)]
            }
            EventKind::Select
            | EventKind::UserLogout
            | EventKind::UserHibernate
            | EventKind::Proprietary => vec![self.relay(&event, None, None)],
        };
        self.last_event = Some((event.id.clone(), event.name.as_str().to_owned()));
        self.accepted_ids.insert(event.id, fingerprint);
        let envelope = self.batch(deliveries, exclude);
        debug_assert_eq!(envelope.seq, seq);
        Ok((
            Published::Accepted { seq },
            Effects {
                envelopes: vec![envelope],
                ..Effects::default()
            },
        ))
    }

    fn apply_open(&mut self, event: &EventRequest, seq: u64) -> Vec<Delivery> {
        let Some(anchor) = anchor_of(&event.name, &event.context) else {
            return vec![self.relay(event, None, None)];
        };
        let version = self.contexts.open(
            OpenContext {
                anchor,
                name: event.name.clone(),
                event_id: event.id.clone(),
                timestamp: event.timestamp.clone(),
                context: event.context.clone(),
                suppressed_by: Vec::new(),
                opened_seq: seq,
                version_id: String::new(),
                order: 0,
                content: Vec::new(),
            },
            true,
        );
        let mut deliveries = vec![self.relay(event, Some(&version), None)];
        if !self.settings.derived_events {
            return deliveries;
        }
        let derived = derive_opens(&event.name, &event.context);
        for (index, derived_event) in derived.iter().enumerate() {
            let Some(anchor) = anchor_of(&derived_event.name, &derived_event.context) else {
                continue;
            };
            let suppressed_by = suppressors((&event.name, &event.context), &derived, index);
            let id = new_event_id();
            let version = self.contexts.open(
                OpenContext {
                    anchor,
                    name: derived_event.name.clone(),
                    event_id: id.clone(),
                    timestamp: event.timestamp.clone(),
                    context: derived_event.context.clone(),
                    suppressed_by: suppressed_by.clone(),
                    opened_seq: seq,
                    version_id: String::new(),
                    order: 0,
                    content: Vec::new(),
                },
                false,
            );
            let frame = self.encode(
                &event.timestamp,
                &id,
                &derived_event.name,
                &derived_event.context,
                Some(&version),
                None,
            );
            deliveries.push(Delivery {
                event_id: id.into(),
                name: derived_event.name.clone(),
                suppressed_by,
                frame,
            });
        }
        deliveries
    }

    fn apply_update(&mut self, event: &EventRequest) -> Result<Delivery, TopicError> {
        let base_version = event.version_id.as_deref().ok_or_else(|| {
            ValidationError::new(format!("{} requires context.versionId", event.name))
        })?;
        let anchor = anchor_of(&event.name, &event.context)
            .ok_or_else(|| ValidationError::new("the update names no anchor"))?;
        let bundle = event
            .context
            .iter()
            .find(|item| item["key"] == "updates")
            .map(|item| &item["resource"])
            .ok_or_else(|| ValidationError::new("the update has no updates Bundle"))?;
        // The gateway that took the event checked the Bundle against its configured limit;
        // the topic applies only the ceiling no configuration can raise.
        let changes = parse_update_bundle(bundle, &Limits::CEILING)?;
        let new_version = self
            .contexts
            .update(
                &anchor,
                base_version,
                &changes,
                self.settings.non_current_context_updates,
            )
            .map_err(|refusal| {
                ValidationError::conflict(update_refusal_reason(&anchor, &refusal))
            })?;
        Ok(self.relay(event, Some(&new_version), Some(base_version)))
    }

    /// Returns the endpoints of the app that posted a SyncError: its owner's
    /// subscriptions, narrowed to those whose `subscriber.name` the SyncError names when
    /// it names one of them. Only the poster's own subscriptions can be excluded.
    fn poster_endpoints(&self, poster: &Owner, context: &[Value]) -> Vec<EndpointId> {
        let own: Vec<(&EndpointId, Option<&str>)> = self
            .subscriptions
            .iter()
            .filter(|(_, subscription)| subscription.owner == *poster)
            .map(|(endpoint, subscription)| (endpoint, subscription.subscriber_name.as_deref()))
            .collect();
        let named = named_subscriber(context);
        let by_name: Vec<EndpointId> = own
            .iter()
            .filter(|(_, name)| named.is_some() && *name == named)
            .map(|(endpoint, _)| (*endpoint).clone())
            .collect();
        if by_name.is_empty() {
            own.into_iter()
                .map(|(endpoint, _)| endpoint.clone())
                .collect()
        } else {
            by_name
        }
    }

    pub(super) fn replay_for(&self, granted: &[EventName]) -> Vec<Delivery> {
        let set = self.contexts.replay_set();
        let mut replay = Vec::new();
        for entry in &set {
            // A derived open is skipped only when its source batch is replayed too and the
            // subscriber receives the event that carries the resource.
            let batch_names: Vec<EventName> = set
                .iter()
                .filter(|other| other.opened_seq == entry.opened_seq)
                .map(|other| other.name.clone())
                .collect();
            let suppressed_by: Vec<EventName> = entry
                .suppressed_by
                .iter()
                .filter(|name| batch_names.contains(name))
                .cloned()
                .collect();
            if !should_deliver(granted, &entry.name, &suppressed_by) {
                continue;
            }
            let frame = self.encode(
                &entry.timestamp,
                &entry.event_id,
                &entry.name,
                &entry.context,
                Some(&entry.version_id),
                None,
            );
            replay.push(Delivery {
                event_id: entry.event_id.as_str().into(),
                name: entry.name.clone(),
                suppressed_by,
                frame,
            });
        }
        replay
    }

    fn relay(&self, event: &EventRequest, version: Option<&str>, prior: Option<&str>) -> Delivery {
        Delivery {
            event_id: event.id.as_str().into(),
            name: event.name.clone(),
            suppressed_by: Vec::new(),
            frame: self.encode(
                &event.timestamp,
                &event.id,
                &event.name,
                &event.context,
                version,
                prior,
            ),
        }
    }
}

/// Returns the subscriber name a SyncError's OperationOutcome names (the
/// `subscribername` coding, or the example's `.../subscriber` spelling).
fn named_subscriber(context: &[Value]) -> Option<&str> {
    let legacy = SUBSCRIBER_NAME_SYSTEM.trim_end_matches("name");
    context
        .iter()
        .filter_map(|item| item.pointer("/resource/issue")?.as_array())
        .flatten()
        .filter_map(|issue| issue.pointer("/details/coding")?.as_array())
        .flatten()
        .find(|coding| {
            coding
                .get("system")
                .and_then(Value::as_str)
                .is_some_and(|system| system == SUBSCRIBER_NAME_SYSTEM || system == legacy)
        })?
        .get("code")?
        .as_str()
}

/// Explains a refused update. Reasons name resource types, never resource ids: they are
/// logged, and an id can be an identifier of a patient.
fn update_refusal_reason(anchor: &AnchorKey, refusal: &UpdateRefusal) -> String {
    let anchor = &anchor.resource_type;
    match refusal {
        UpdateRefusal::NotOpen => format!("the {anchor} is not an open context of this topic"),
        UpdateRefusal::NotCurrent => format!(
            "the {anchor} is not the current context (updates outside the current context are not enabled)"
        ),
        UpdateRefusal::StaleVersion => {
            "context.versionId is not the anchor's current version: get the current context and retry".to_owned()
        }
        UpdateRefusal::DeletesOriginal(key) => format!(
            "a {} of the update belongs to the context the anchor was opened with and cannot be deleted",
            key.resource_type
        ),
        UpdateRefusal::DeletesUnknown(key) => {
            format!("a {} the update deletes is not in the anchor's content", key.resource_type)
        }
    }
}
