//! Why a topic refused or failed a command: what every `HubClient` call can answer.

use crate::error::{ErrorCode, ValidationError};

/// A topic command's failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The request breaks a rule or conflicts with the topic's state.
    #[error("{0}")]
    Rejected(#[from] ValidationError),
    /// The endpoint named is unknown (never issued, or forgotten).
    #[error("unknown endpoint")]
    UnknownEndpoint,
    /// The endpoint already has a live socket; a second handshake changes nothing.
    #[error("the endpoint already has a live connection")]
    EndpointInUse,
    /// The topic is at capacity (its mailbox is full, or it holds as many subscriptions
    /// as it may): the caller should retry later (503 with `Retry-After`).
    #[error("the topic is busy, retry later")]
    Overloaded,
    /// The topic's actor stopped; the registry respawns it.
    #[error("the topic stopped")]
    Stopped,
    /// The store could not commit the change; nothing was acknowledged.
    #[error("the hub could not store the change, retry later")]
    Unavailable,
    /// Another hub node owns the topic: the caller asks `holder` instead.
    #[error("another hub node owns the topic")]
    NotOwner {
        /// The id of the hub node that owns the topic.
        holder: String,
    },
}

impl TopicError {
    /// Returns the error class.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Rejected(err) => err.code(),
            Self::UnknownEndpoint => ErrorCode::NotFound,
            Self::EndpointInUse => ErrorCode::Conflict,
            Self::Overloaded => ErrorCode::Unavailable,
            Self::Stopped | Self::Unavailable | Self::NotOwner { .. } => ErrorCode::Unavailable,
        }
    }
}
