//! Error codes shared by every process, and the validation error carried from the point
//! of refusal to the HTTP answer.
//!
//! Keep [`ErrorCode`] small: each variant is a class of answer a client acts on
//! differently. Reasons are one lowercase line for the app developer; they never carry
//! PHI, tokens or raw topics.

use std::fmt;

/// A class of failure, mapped to one HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed or breaks a protocol rule (400).
    BadRequest,
    /// No valid credentials (401).
    Unauthorized,
    /// Valid credentials that do not permit this (403).
    Forbidden,
    /// Nothing to act on: unknown endpoint or route (404).
    NotFound,
    /// The request conflicts with the topic's state (409).
    Conflict,
    /// The body exceeds a size limit (413).
    PayloadTooLarge,
    /// The content type is not one the route accepts (415).
    UnsupportedMediaType,
    /// A topic or the hub is over its admission limits; retry later (429).
    Overloaded,
    /// The hub cannot serve now (shutting down, store unavailable); retry (503).
    Unavailable,
    /// A fault inside the hub (500).
    Internal,
}

impl ErrorCode {
    /// Returns the HTTP status code of this class.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Overloaded => 429,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

/// A refusal with its class and a developer-facing reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    code: ErrorCode,
    reason: String,
}

impl ValidationError {
    /// Creates a 400-class refusal.
    pub fn new(reason: impl Into<String>) -> Self {
        Self::with_code(ErrorCode::BadRequest, reason)
    }

    /// Creates a refusal of a given class.
    pub fn with_code(code: ErrorCode, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }

    /// Creates a 409-class refusal.
    pub fn conflict(reason: impl Into<String>) -> Self {
        Self::with_code(ErrorCode::Conflict, reason)
    }

    /// Returns the class.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// Returns the reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}
