//! The bus envelope on the wire: the bytes a hub node publishes on a topic's Redis channel
//! and appends to its Redis stream, and the trace context that travels with them.
//!
//! Decoding from a [`Bytes`] keeps every frame a slice of the received buffer: a batch's
//! frames are not copied on their way to the sockets.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message as _;

use crate::bus::{ControlAction, Delivery, Envelope, EnvelopeKind};

use super::fields::{
    endpoint, endpoints, endpoints_to_wire, event_name, event_names, event_names_to_wire, required,
    topic_ref,
};
use super::{WireError, v1};

/// Trace context carried with an envelope (W3C `traceparent`, `tracestate`): what an
/// OpenTelemetry propagator injects into and extracts from.
pub type Trace = HashMap<String, String>;

impl Envelope {
    /// Encodes the envelope and the trace context of the publish that produced it.
    pub fn to_wire(&self, trace: Trace) -> Vec<u8> {
        v1::BusEnvelope::new(self, trace).encode_to_vec()
    }

    /// Decodes an envelope and its trace context. Frames are slices of `bytes`, not copies.
    pub fn from_wire(bytes: Bytes) -> Result<(Self, Trace), WireError> {
        v1::BusEnvelope::decode(bytes)?.into_parts()
    }
}

impl v1::BusEnvelope {
    /// Returns the message of `envelope`, carrying `trace`.
    pub fn new(envelope: &Envelope, trace: Trace) -> Self {
        use v1::bus_envelope::Kind;
        let kind = match &envelope.kind {
            EnvelopeKind::Event {
                deliveries,
                exclude,
            } => Kind::Event(v1::EventBatch {
                deliveries: deliveries.iter().map(Into::into).collect(),
                exclude: endpoints_to_wire(exclude),
            }),
            EnvelopeKind::Control { endpoint, action } => Kind::Control(v1::Control {
                endpoint: endpoint.expose().to_owned(),
                action: Some(action.into()),
            }),
        };
        Self {
            epoch: envelope.epoch,
            seq: envelope.seq,
            topic_ref: envelope.topic.as_str().to_owned(),
            kind: Some(kind),
            trace,
        }
    }

    /// Returns the envelope and its trace context.
    pub fn into_parts(self) -> Result<(Envelope, Trace), WireError> {
        use v1::bus_envelope::Kind;
        let kind = match required("BusEnvelope.kind", self.kind)? {
            Kind::Event(batch) => EnvelopeKind::Event {
                deliveries: batch
                    .deliveries
                    .into_iter()
                    .map(Delivery::try_from)
                    .collect::<Result<_, _>>()?,
                exclude: endpoints("EventBatch.exclude", batch.exclude)?,
            },
            Kind::Control(control) => EnvelopeKind::Control {
                endpoint: endpoint("Control.endpoint", &control.endpoint)?,
                action: required("Control.action", control.action)?.try_into()?,
            },
        };
        let envelope = Envelope {
            epoch: self.epoch,
            seq: self.seq,
            topic: topic_ref("BusEnvelope.topic_ref", &self.topic_ref)?,
            kind,
        };
        Ok((envelope, self.trace))
    }
}

impl From<&ControlAction> for v1::control::Action {
    fn from(action: &ControlAction) -> Self {
        match action {
            ControlAction::Confirm {
                events,
                lease_ends_unix_ms,
                frame,
            } => Self::Confirm(v1::Confirm {
                events: event_names_to_wire(events),
                lease_ends_unix_ms: *lease_ends_unix_ms,
                frame: frame.clone(),
            }),
            ControlAction::Deny { frame } => Self::Deny(v1::Deny {
                frame: frame.clone(),
            }),
            ControlAction::Deliver(delivery) => Self::Deliver(delivery.into()),
        }
    }
}

impl TryFrom<v1::control::Action> for ControlAction {
    type Error = WireError;

    fn try_from(action: v1::control::Action) -> Result<Self, WireError> {
        use v1::control::Action;
        Ok(match action {
            Action::Confirm(confirm) => Self::Confirm {
                events: event_names("Confirm.events", confirm.events)?,
                lease_ends_unix_ms: confirm.lease_ends_unix_ms,
                frame: confirm.frame,
            },
            Action::Deny(deny) => Self::Deny { frame: deny.frame },
            Action::Deliver(delivery) => Self::Deliver(delivery.try_into()?),
        })
    }
}

impl From<&Delivery> for v1::Delivery {
    fn from(delivery: &Delivery) -> Self {
        Self {
            event_id: delivery.event_id.to_string(),
            name: delivery.name.as_str().to_owned(),
            suppressed_by: event_names_to_wire(&delivery.suppressed_by),
            frame: delivery.frame.clone(),
        }
    }
}

impl From<Delivery> for v1::Delivery {
    fn from(delivery: Delivery) -> Self {
        Self::from(&delivery)
    }
}

impl TryFrom<v1::Delivery> for Delivery {
    type Error = WireError;

    fn try_from(delivery: v1::Delivery) -> Result<Self, WireError> {
        Ok(Self {
            event_id: delivery.event_id.into(),
            name: event_name("Delivery.name", &delivery.name)?,
            suppressed_by: event_names("Delivery.suppressed_by", delivery.suppressed_by)?,
            frame: delivery.frame,
        })
    }
}

#[cfg(test)]
#[path = "bus_tests.rs"]
mod tests;
