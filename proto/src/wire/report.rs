//! ReportFailure and Detach on the wire: what a gateway reports about an endpoint's socket
//! (failed deliveries, and the socket going away).

use crate::hub::{DeliveryFailure, Detach, DetachReason};
use crate::ids::{EndpointId, TopicRef};
use crate::sync_error::SyncFailure;

use super::fields::{code_u16, endpoint_address, required};
use super::{WireError, v1};

impl From<SyncFailure> for v1::SyncFailure {
    fn from(failure: SyncFailure) -> Self {
        use v1::sync_failure::Kind;
        let kind = match failure {
            SyncFailure::Refused(status) => Kind::Refused(status.into()),
            SyncFailure::NotDelivered(status) => Kind::NotDelivered(status.into()),
            SyncFailure::UnexpectedStatus(status) => Kind::UnexpectedStatus(status.into()),
            SyncFailure::Timeout => Kind::Timeout(()),
            SyncFailure::ConnectionLost(code) => Kind::ConnectionLost(code.into()),
        };
        Self { kind: Some(kind) }
    }
}

impl TryFrom<v1::SyncFailure> for SyncFailure {
    type Error = WireError;

    fn try_from(failure: v1::SyncFailure) -> Result<Self, WireError> {
        use v1::sync_failure::Kind;
        Ok(match required("SyncFailure.kind", failure.kind)? {
            Kind::Refused(status) => Self::Refused(code_u16("SyncFailure.refused", status)?),
            Kind::NotDelivered(status) => {
                Self::NotDelivered(code_u16("SyncFailure.not_delivered", status)?)
            }
            Kind::UnexpectedStatus(status) => {
                Self::UnexpectedStatus(code_u16("SyncFailure.unexpected_status", status)?)
            }
            Kind::Timeout(()) => Self::Timeout,
            Kind::ConnectionLost(code) => {
                Self::ConnectionLost(code_u16("SyncFailure.connection_lost", code)?)
            }
        })
    }
}

impl From<DeliveryFailure> for v1::DeliveryFailure {
    fn from(report: DeliveryFailure) -> Self {
        Self {
            event_id: report.event_id,
            event_name: report.event_name,
            failure: Some(report.failure.into()),
            consecutive_timeouts: report.consecutive_timeouts,
        }
    }
}

impl TryFrom<v1::DeliveryFailure> for DeliveryFailure {
    type Error = WireError;

    fn try_from(report: v1::DeliveryFailure) -> Result<Self, WireError> {
        Ok(Self {
            event_id: report.event_id,
            event_name: report.event_name,
            failure: required("DeliveryFailure.failure", report.failure)?.try_into()?,
            consecutive_timeouts: report.consecutive_timeouts,
        })
    }
}

impl From<DetachReason> for v1::DetachReason {
    fn from(reason: DetachReason) -> Self {
        use v1::detach_reason::Kind;
        let kind = match reason {
            DetachReason::ClientClosed { code, last_event } => {
                Kind::ClientClosed(v1::ClientClosed {
                    code: code.into(),
                    last_event: last_event.map(|(event_id, event_name)| v1::LastEvent {
                        event_id,
                        event_name,
                    }),
                })
            }
            DetachReason::HubClosed => Kind::HubClosed(()),
        };
        Self { kind: Some(kind) }
    }
}

impl TryFrom<v1::DetachReason> for DetachReason {
    type Error = WireError;

    fn try_from(reason: v1::DetachReason) -> Result<Self, WireError> {
        use v1::detach_reason::Kind;
        Ok(match required("DetachReason.kind", reason.kind)? {
            Kind::ClientClosed(closed) => Self::ClientClosed {
                code: code_u16("ClientClosed.code", closed.code)?,
                last_event: closed
                    .last_event
                    .map(|last| (last.event_id, last.event_name)),
            },
            Kind::HubClosed(()) => Self::HubClosed,
        })
    }
}

impl From<Detach> for v1::Detach {
    fn from(detach: Detach) -> Self {
        Self {
            generation: detach.generation,
            reason: Some(detach.reason.into()),
            resume: detach.resume.map(Into::into),
        }
    }
}

impl TryFrom<v1::Detach> for Detach {
    type Error = WireError;

    fn try_from(detach: v1::Detach) -> Result<Self, WireError> {
        Ok(Self {
            generation: detach.generation,
            reason: required("Detach.reason", detach.reason)?.try_into()?,
            resume: detach.resume.map(Into::into),
        })
    }
}

impl v1::ReportFailureRequest {
    /// Reports a failed delivery to `endpoint` of the topic `topic_ref`.
    pub fn new(topic_ref: &TopicRef, endpoint: &EndpointId, report: DeliveryFailure) -> Self {
        Self {
            topic_ref: topic_ref.as_str().to_owned(),
            endpoint: endpoint.expose().to_owned(),
            report: Some(report.into()),
        }
    }

    /// Returns the topic's ref, the endpoint and the failure.
    pub fn into_parts(self) -> Result<(TopicRef, EndpointId, DeliveryFailure), WireError> {
        let (topic_ref, endpoint) = endpoint_address(
            ("ReportFailureRequest.topic_ref", &self.topic_ref),
            ("ReportFailureRequest.endpoint", &self.endpoint),
        )?;
        let report = required("ReportFailureRequest.report", self.report)?.try_into()?;
        Ok((topic_ref, endpoint, report))
    }
}

impl v1::DetachRequest {
    /// Reports that the socket of `endpoint` of the topic `topic_ref` went away.
    pub fn new(topic_ref: &TopicRef, endpoint: &EndpointId, detach: Detach) -> Self {
        Self {
            topic_ref: topic_ref.as_str().to_owned(),
            endpoint: endpoint.expose().to_owned(),
            detach: Some(detach.into()),
        }
    }

    /// Returns the topic's ref, the endpoint and the detach.
    pub fn into_parts(self) -> Result<(TopicRef, EndpointId, Detach), WireError> {
        let (topic_ref, endpoint) = endpoint_address(
            ("DetachRequest.topic_ref", &self.topic_ref),
            ("DetachRequest.endpoint", &self.endpoint),
        )?;
        let detach = required("DetachRequest.detach", self.detach)?.try_into()?;
        Ok((topic_ref, endpoint, detach))
    }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
