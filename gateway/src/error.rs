//! [`ApiError`]: every refusal the HTTP API answers with, as a status and a one-line
//! `text/plain` reason for the app developer (2-4: "a plain-text description"). Internal
//! details never reach the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use fhircast_proto::hub::TopicError;
use fhircast_proto::{ErrorCode, ValidationError};

use crate::auth::AuthError;

/// An HTTP error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    reason: String,
    retry_after: Option<u32>,
}

impl ApiError {
    /// Creates an error with a status and a reason.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// Creates an error of an error class.
    pub fn from_code(code: ErrorCode, reason: impl Into<String>) -> Self {
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after =
            matches!(code, ErrorCode::Overloaded | ErrorCode::Unavailable).then_some(1);
        Self {
            status,
            reason: reason.into(),
            retry_after,
        }
    }

    /// The answer to a topic that is not permitted for the caller's token. Identical for
    /// topics that exist and topics that do not.
    pub fn topic_not_permitted() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            fhircast_proto::hub::TOPIC_NOT_PERMITTED,
        )
    }

    /// The answer to a topic supplied from outside that is too easy to guess (TOP-02).
    /// Says nothing of whether the topic exists.
    pub fn guessable_topic() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "hub.topic is guessable: this hub accepts only topics with at least 122 random \
             bits, such as a UUID v4 or 32 random base64url characters",
        )
    }

    /// Asks the client to retry after `seconds` (`Retry-After`).
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Returns the status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Returns the reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        Self::from_code(err.code(), err.reason())
    }
}

impl From<TopicError> for ApiError {
    fn from(err: TopicError) -> Self {
        match err {
            TopicError::Rejected(err) => err.into(),
            other => Self::from_code(other.code(), other.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
        Self {
            retry_after: err.retry_after_seconds(),
            ..Self::new(status, err.reason())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, format!("{}\n", self.reason)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"fhircast\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
            .extensions_mut()
            .insert(crate::http::ErrorReason(self.reason));
        response
    }
}
