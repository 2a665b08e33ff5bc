//! The current context of a topic, as Get Current Context (2-9) returns it.

use serde_json::{Value, json};

use crate::event_name::EventName;

/// The current context as Get Current Context returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentContext {
    /// The open event of the current anchor, `None` when there is no current context.
    pub event_name: Option<EventName>,
    /// `context.versionId`.
    pub version_id: String,
    /// The context array as opened, plus the `content` Bundle item (empty when there is no
    /// current context).
    pub context: Vec<Value>,
}

impl CurrentContext {
    /// Returns the Get Current Context response body.
    pub fn to_json(&self) -> Value {
        json!({
            "context.type": self.event_name.as_ref().and_then(EventName::resource_type).unwrap_or(""),
            "context.versionId": self.version_id,
            "context": self.context,
        })
    }

    /// Returns the empty form with this context's version.
    pub fn emptied(&self) -> Self {
        Self {
            event_name: None,
            version_id: self.version_id.clone(),
            context: Vec::new(),
        }
    }
}
