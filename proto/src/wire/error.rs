//! Why a received message could not become a domain value.

/// A received message that is malformed or does not hold what the contract says.
///
/// Fields are named `Message.field` as in the `.proto` files.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes are not a message of the expected type.
    #[error("malformed message: {0}")]
    Malformed(#[from] prost::DecodeError),
    /// A required field is absent.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A field holds a value the contract does not allow.
    #[error("invalid field {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it (never the value of a secret field).
        reason: String,
    },
    /// A topic ref does not match the topic carried with it.
    #[error("field {0} does not match the topic")]
    TopicRefMismatch(&'static str),
}

impl WireError {
    /// Creates an [`WireError::Invalid`].
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
