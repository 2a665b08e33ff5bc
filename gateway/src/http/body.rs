//! Request bodies: which content types each route accepts, and reading a body under the
//! size limit (enforced while streaming, so an oversized body never sits in memory) and
//! the time limit (a client that stops sending mid-body is answered 408, not waited for).

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;

use crate::error::ApiError;

/// How a body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json` or `application/fhir+json`.
    Json,
}

/// Classifies the `Content-Type`; anything else is 415.
pub(crate) fn body_kind(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send exactly one Content-Type: application/x-www-form-urlencoded, \
             application/json or application/fhir+json",
        ));
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Ok(BodyKind::Form),
        "application/json" | "application/fhir+json" => Ok(BodyKind::Json),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported Content-Type: use application/x-www-form-urlencoded, \
             application/json or application/fhir+json",
        )),
    }
}

/// Reads a body of at most `limit` bytes within `timeout`; a larger one is 413, a slower
/// one 408.
pub(crate) async fn read_body(
    body: Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} ms",
                    timeout.as_millis()
                ),
            )
        })?;
    read.map_err(|err| {
        let too_large = std::error::Error::source(&err)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {limit} bytes"),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
        }
    })
}
