//! [`TopicError`] as a gRPC status, both ways, without loss.
//!
//! The status code is chosen per failure so that generic gRPC tooling (retry policies,
//! dashboards) reads it correctly; the exact failure travels in the binary metadata entry
//! [`ERROR_METADATA_KEY`] as a `TopicErrorDetail` message. A status without a readable
//! entry (a transport failure, a deadline, a proxy's answer, a node that could not decode
//! the request) is [`TopicError::Unavailable`]: the hub could not serve the call.
//!
//! | failure | status code |
//! |---|---|
//! | `Rejected` (`BadRequest`, `PayloadTooLarge`, `UnsupportedMediaType`) | `INVALID_ARGUMENT` |
//! | `Rejected` (`Unauthorized`) | `UNAUTHENTICATED` |
//! | `Rejected` (`Forbidden`) | `PERMISSION_DENIED` |
//! | `Rejected` (`NotFound`) | `NOT_FOUND` |
//! | `Rejected` (`Conflict`) | `FAILED_PRECONDITION` |
//! | `Rejected` (`Overloaded`) | `RESOURCE_EXHAUSTED` |
//! | `Rejected` (`Unavailable`) | `UNAVAILABLE` |
//! | `Rejected` (`Internal`) | `INTERNAL` |
//! | `UnknownEndpoint` | `NOT_FOUND` |
//! | `EndpointInUse` | `ALREADY_EXISTS` |
//! | `Overloaded` | `RESOURCE_EXHAUSTED` |
//! | `Stopped`, `Unavailable` | `UNAVAILABLE` |
//! | `NotOwner` | `FAILED_PRECONDITION` |

use prost::Message as _;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::error::{ErrorCode, ValidationError};
use crate::hub::TopicError;

use super::fields::{enumeration, required};
use super::{WireError, v1};

/// The binary metadata entry of an error status that holds the exact failure.
pub const ERROR_METADATA_KEY: &str = "x-fhircast-error-bin";

impl From<TopicError> for Status {
    fn from(err: TopicError) -> Self {
        let mut status = Status::new(status_code(&err), err.to_string());
        let detail = v1::TopicErrorDetail::from(err).encode_to_vec();
        status
            .metadata_mut()
            .insert_bin(ERROR_METADATA_KEY, MetadataValue::from_bytes(&detail));
        status
    }
}

impl From<&Status> for TopicError {
    fn from(status: &Status) -> Self {
        detail(status).unwrap_or(TopicError::Unavailable)
    }
}

impl From<Status> for TopicError {
    fn from(status: Status) -> Self {
        Self::from(&status)
    }
}

/// A request that could not be read is the caller's fault, not the topic's: it is refused
/// as `INVALID_ARGUMENT` without a failure entry, which the caller reads as unavailable.
impl From<WireError> for Status {
    fn from(err: WireError) -> Self {
        Status::invalid_argument(err.to_string())
    }
}

/// Returns the status code of a failure.
pub fn status_code(err: &TopicError) -> Code {
    match err {
        TopicError::Rejected(err) => match err.code() {
            ErrorCode::BadRequest
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UnsupportedMediaType => Code::InvalidArgument,
            ErrorCode::Unauthorized => Code::Unauthenticated,
            ErrorCode::Forbidden => Code::PermissionDenied,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::Conflict => Code::FailedPrecondition,
            ErrorCode::Overloaded => Code::ResourceExhausted,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::Internal => Code::Internal,
        },
        TopicError::UnknownEndpoint => Code::NotFound,
        TopicError::EndpointInUse => Code::AlreadyExists,
        TopicError::Overloaded => Code::ResourceExhausted,
        TopicError::Stopped | TopicError::Unavailable => Code::Unavailable,
        TopicError::NotOwner { .. } => Code::FailedPrecondition,
    }
}

/// Reads the failure entry of a status, if it has a readable one.
fn detail(status: &Status) -> Option<TopicError> {
    let entry = status
        .metadata()
        .get_bin(ERROR_METADATA_KEY)?
        .to_bytes()
        .ok()?;
    v1::TopicErrorDetail::decode(entry).ok()?.try_into().ok()
}

impl From<TopicError> for v1::TopicErrorDetail {
    fn from(err: TopicError) -> Self {
        use v1::topic_error_detail::Kind;
        let kind = match err {
            TopicError::Rejected(err) => Kind::Rejected(v1::Rejected {
                code: v1::ErrorCode::from(err.code()).into(),
                reason: err.reason().to_owned(),
            }),
            TopicError::UnknownEndpoint => Kind::UnknownEndpoint(()),
            TopicError::EndpointInUse => Kind::EndpointInUse(()),
            TopicError::Overloaded => Kind::Overloaded(()),
            TopicError::Stopped => Kind::Stopped(()),
            TopicError::Unavailable => Kind::Unavailable(()),
            TopicError::NotOwner { holder } => Kind::NotOwner(v1::NotOwner { holder }),
        };
        Self { kind: Some(kind) }
    }
}

impl TryFrom<v1::TopicErrorDetail> for TopicError {
    type Error = WireError;

    fn try_from(detail: v1::TopicErrorDetail) -> Result<Self, WireError> {
        use v1::topic_error_detail::Kind;
        Ok(match required("TopicErrorDetail.kind", detail.kind)? {
            Kind::Rejected(rejected) => Self::Rejected(ValidationError::with_code(
                error_code("Rejected.code", rejected.code)?,
                rejected.reason,
            )),
            Kind::UnknownEndpoint(()) => Self::UnknownEndpoint,
            Kind::EndpointInUse(()) => Self::EndpointInUse,
            Kind::Overloaded(()) => Self::Overloaded,
            Kind::Stopped(()) => Self::Stopped,
            Kind::Unavailable(()) => Self::Unavailable,
            Kind::NotOwner(not_owner) => Self::NotOwner {
                holder: not_owner.holder,
            },
        })
    }
}

impl From<ErrorCode> for v1::ErrorCode {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::BadRequest => Self::BadRequest,
            ErrorCode::Unauthorized => Self::Unauthorized,
            ErrorCode::Forbidden => Self::Forbidden,
            ErrorCode::NotFound => Self::NotFound,
            ErrorCode::Conflict => Self::Conflict,
            ErrorCode::PayloadTooLarge => Self::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType => Self::UnsupportedMediaType,
            ErrorCode::Overloaded => Self::Overloaded,
            ErrorCode::Unavailable => Self::Unavailable,
            ErrorCode::Internal => Self::Internal,
        }
    }
}

/// Reads an `ErrorCode` field: unset (0) and values this build does not know are refused.
fn error_code(field: &'static str, raw: i32) -> Result<ErrorCode, WireError> {
    use v1::ErrorCode as Wire;
    Ok(match enumeration(field, raw)? {
        Wire::Unspecified => return Err(WireError::Missing(field)),
        Wire::BadRequest => ErrorCode::BadRequest,
        Wire::Unauthorized => ErrorCode::Unauthorized,
        Wire::Forbidden => ErrorCode::Forbidden,
        Wire::NotFound => ErrorCode::NotFound,
        Wire::Conflict => ErrorCode::Conflict,
        Wire::PayloadTooLarge => ErrorCode::PayloadTooLarge,
        Wire::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
        Wire::Overloaded => ErrorCode::Overloaded,
        Wire::Unavailable => ErrorCode::Unavailable,
        Wire::Internal => ErrorCode::Internal,
    })
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
