//! Attach on the wire: the attachment a socket starts delivering from (or the denial of an
//! ended subscription), positions in a topic's sequence, and why subscriptions end.

use crate::bus::Delivery;
use crate::hub::{AttachOutcome, Attachment, EndReason, Position};
use crate::ids::{EndpointId, TopicKey, TopicRef};

use super::fields::{
    endpoint_address, enumeration, event_names, event_names_to_wire, required, topic_with_ref,
};
use super::{WireError, v1};

impl From<Position> for v1::Position {
    fn from(position: Position) -> Self {
        Self {
            epoch: position.epoch,
            seq: position.seq,
        }
    }
}

impl From<v1::Position> for Position {
    fn from(position: v1::Position) -> Self {
        Self {
            epoch: position.epoch,
            seq: position.seq,
        }
    }
}

impl From<EndReason> for v1::EndReason {
    fn from(reason: EndReason) -> Self {
        match reason {
            EndReason::Unsubscribed => Self::Unsubscribed,
            EndReason::LeaseExpired => Self::LeaseExpired,
            EndReason::Unresponsive => Self::Unresponsive,
            EndReason::AttachWindowPassed => Self::AttachWindowPassed,
            EndReason::ReattachWindowPassed => Self::ReattachWindowPassed,
            EndReason::ConnectionClosed => Self::ConnectionClosed,
            EndReason::Revoked => Self::Revoked,
        }
    }
}

/// Reads an `EndReason` field: unset (0) and values this build does not know are refused.
fn end_reason(field: &'static str, raw: i32) -> Result<EndReason, WireError> {
    use v1::EndReason as Wire;
    Ok(match enumeration(field, raw)? {
        Wire::Unspecified => return Err(WireError::Missing(field)),
        Wire::Unsubscribed => EndReason::Unsubscribed,
        Wire::LeaseExpired => EndReason::LeaseExpired,
        Wire::Unresponsive => EndReason::Unresponsive,
        Wire::AttachWindowPassed => EndReason::AttachWindowPassed,
        Wire::ReattachWindowPassed => EndReason::ReattachWindowPassed,
        Wire::ConnectionClosed => EndReason::ConnectionClosed,
        Wire::Revoked => EndReason::Revoked,
    })
}

impl From<Attachment> for v1::Attachment {
    fn from(attachment: Attachment) -> Self {
        Self {
            topic: attachment.topic.expose().to_owned(),
            topic_ref: attachment.topic.topic_ref().as_str().to_owned(),
            events: event_names_to_wire(&attachment.events),
            lease_ends_unix_ms: attachment.lease_ends,
            confirmation: attachment.confirmation,
            replay: attachment.replay.into_iter().map(Into::into).collect(),
            epoch: attachment.epoch,
            seq: attachment.seq,
            generation: attachment.generation,
            resume: attachment.resume.map(Into::into),
        }
    }
}

impl v1::Attachment {
    /// Returns the attachment; the raw topic is validated with `key` and checked against
    /// the ref carried with it.
    pub fn into_domain(self, key: &TopicKey) -> Result<Attachment, WireError> {
        Ok(Attachment {
            topic: topic_with_ref(
                ("Attachment.topic", &self.topic),
                ("Attachment.topic_ref", &self.topic_ref),
                key,
            )?,
            events: event_names("Attachment.events", self.events)?,
            lease_ends: self.lease_ends_unix_ms,
            confirmation: self.confirmation,
            replay: self
                .replay
                .into_iter()
                .map(Delivery::try_from)
                .collect::<Result<_, _>>()?,
            epoch: self.epoch,
            seq: self.seq,
            generation: self.generation,
            resume: self.resume.map(Into::into),
        })
    }
}

impl From<AttachOutcome> for v1::AttachResponse {
    fn from(outcome: AttachOutcome) -> Self {
        use v1::attach_response::Outcome;
        let outcome = match outcome {
            AttachOutcome::Attached(attachment) => Outcome::Attached(attachment.into()),
            AttachOutcome::Ended { denial, reason } => Outcome::Ended(v1::Ended {
                denial,
                reason: v1::EndReason::from(reason).into(),
            }),
        };
        Self {
            outcome: Some(outcome),
        }
    }
}

impl v1::AttachResponse {
    /// Returns the outcome; an attachment's raw topic is validated with `key` and checked
    /// against the ref carried with it.
    pub fn into_domain(self, key: &TopicKey) -> Result<AttachOutcome, WireError> {
        use v1::attach_response::Outcome;
        match required("AttachResponse.outcome", self.outcome)? {
            Outcome::Attached(attachment) => {
                Ok(AttachOutcome::Attached(attachment.into_domain(key)?))
            }
            Outcome::Ended(ended) => Ok(AttachOutcome::Ended {
                denial: ended.denial,
                reason: end_reason("Ended.reason", ended.reason)?,
            }),
        }
    }
}

impl v1::AttachRequest {
    /// Asks to attach a socket held by `gateway` to `endpoint` of the topic `topic_ref`.
    pub fn new(topic_ref: &TopicRef, endpoint: &EndpointId, gateway: &str) -> Self {
        Self {
            topic_ref: topic_ref.as_str().to_owned(),
            endpoint: endpoint.expose().to_owned(),
            gateway: gateway.to_owned(),
        }
    }

    /// Returns the topic's ref, the endpoint and the gateway holding the socket.
    pub fn into_parts(self) -> Result<(TopicRef, EndpointId, String), WireError> {
        let (topic, endpoint) = endpoint_address(
            ("AttachRequest.topic_ref", &self.topic_ref),
            ("AttachRequest.endpoint", &self.endpoint),
        )?;
        if self.gateway.is_empty() || self.gateway.len() > 256 {
            return Err(WireError::invalid(
                "AttachRequest.gateway",
                "must be 1 to 256 characters",
            ));
        }
        Ok((topic, endpoint, self.gateway))
    }
}

#[cfg(test)]
#[path = "attach_tests.rs"]
mod tests;
