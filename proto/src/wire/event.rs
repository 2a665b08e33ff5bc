//! Publish and CurrentContext on the wire: event requests as the gateway parsed them,
//! publish outcomes, and a topic's current context. Context items travel as one JSON
//! array, exactly as the sender wrote them.

use crate::event::EventRequest;
use crate::hub::{Caller, CurrentContext, Published};
use crate::ids::{TopicId, TopicKey};

use super::fields::{event_name, json_items, json_items_to_wire, required, required_text, topic};
use super::{WireError, v1};

impl From<EventRequest> for v1::EventRequest {
    fn from(event: EventRequest) -> Self {
        Self {
            context: json_items_to_wire(&event.context),
            id: event.id,
            timestamp: event.timestamp,
            topic: event.topic,
            name: event.name.as_str().to_owned(),
            version_id: event.version_id,
        }
    }
}

/// Structural checks only: the gateway validated the request at the edge (ids, timestamp,
/// context keys), and the name is parsed again here because the domain type needs it.
impl TryFrom<v1::EventRequest> for EventRequest {
    type Error = WireError;

    fn try_from(event: v1::EventRequest) -> Result<Self, WireError> {
        Ok(Self {
            id: required_text("EventRequest.id", event.id)?,
            timestamp: required_text("EventRequest.timestamp", event.timestamp)?,
            topic: required_text("EventRequest.topic", event.topic)?,
            name: event_name("EventRequest.name", &event.name)?,
            context: json_items("EventRequest.context", &event.context)?,
            version_id: event.version_id,
        })
    }
}

impl v1::PublishRequest {
    /// Asks to publish `event` to `topic` on behalf of `poster`.
    pub fn new(topic: &TopicId, event: EventRequest, poster: Caller) -> Self {
        Self {
            topic: topic.expose().to_owned(),
            event: Some(event.into()),
            poster: Some(poster.owner.into()),
            minted_for: poster.minted_for,
        }
    }

    /// Returns the topic, the event and its poster.
    pub fn into_parts(self, key: &TopicKey) -> Result<(TopicId, EventRequest, Caller), WireError> {
        Ok((
            topic("PublishRequest.topic", &self.topic, key)?,
            required("PublishRequest.event", self.event)?.try_into()?,
            Caller {
                owner: required("PublishRequest.poster", self.poster)?.into(),
                minted_for: self.minted_for,
            },
        ))
    }
}

impl From<Published> for v1::PublishResponse {
    fn from(published: Published) -> Self {
        use v1::publish_response::{Accepted, Outcome};
        let outcome = match published {
            Published::Accepted { seq } => Outcome::Accepted(Accepted { seq }),
            Published::Duplicate => Outcome::Duplicate(()),
        };
        Self {
            outcome: Some(outcome),
        }
    }
}

impl TryFrom<v1::PublishResponse> for Published {
    type Error = WireError;

    fn try_from(response: v1::PublishResponse) -> Result<Self, WireError> {
        use v1::publish_response::Outcome;
        Ok(
            match required("PublishResponse.outcome", response.outcome)? {
                Outcome::Accepted(accepted) => Self::Accepted { seq: accepted.seq },
                Outcome::Duplicate(()) => Self::Duplicate,
            },
        )
    }
}

impl v1::CurrentContextRequest {
    /// Asks for the current context of `topic` on behalf of `caller`.
    pub fn new(topic: &TopicId, caller: Caller) -> Self {
        Self {
            topic: topic.expose().to_owned(),
            caller: Some(caller.owner.into()),
            minted_for: caller.minted_for,
        }
    }

    /// Returns the topic and the caller.
    pub fn into_parts(self, key: &TopicKey) -> Result<(TopicId, Caller), WireError> {
        Ok((
            topic("CurrentContextRequest.topic", &self.topic, key)?,
            Caller {
                owner: required("CurrentContextRequest.caller", self.caller)?.into(),
                minted_for: self.minted_for,
            },
        ))
    }
}

impl From<CurrentContext> for v1::CurrentContextResponse {
    fn from(current: CurrentContext) -> Self {
        Self {
            event_name: current.event_name.map(|name| name.as_str().to_owned()),
            version_id: current.version_id,
            context: json_items_to_wire(&current.context),
        }
    }
}

impl TryFrom<v1::CurrentContextResponse> for CurrentContext {
    type Error = WireError;

    fn try_from(response: v1::CurrentContextResponse) -> Result<Self, WireError> {
        Ok(Self {
            event_name: response
                .event_name
                .map(|name| event_name("CurrentContextResponse.event_name", &name))
                .transpose()?,
            version_id: response.version_id,
            context: json_items("CurrentContextResponse.context", &response.context)?,
        })
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
