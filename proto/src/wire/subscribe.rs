//! Subscribe, Unsubscribe and ResolveEndpoint on the wire, and the owner every
//! subscription and publish names.

use crate::hub::{Caller, Owner, SubscribeCommand};
use crate::ids::{EndpointId, TopicId, TopicKey, TopicRef};

use super::fields::{
    endpoint, event_names, event_names_to_wire, optional_endpoint, required, topic, topic_with_ref,
};
use super::{WireError, v1};

impl From<Owner> for v1::Owner {
    fn from(owner: Owner) -> Self {
        Self {
            client_id: owner.client_id,
            subject: owner.subject,
        }
    }
}

impl From<v1::Owner> for Owner {
    fn from(owner: v1::Owner) -> Self {
        Self {
            client_id: owner.client_id,
            subject: owner.subject,
        }
    }
}

impl From<SubscribeCommand> for v1::SubscribeCommand {
    fn from(command: SubscribeCommand) -> Self {
        Self {
            events: event_names_to_wire(&command.events),
            lease_seconds: command.lease_seconds,
            token_expires_unix_ms: command.token_expires,
            subscriber_name: command.subscriber_name,
            endpoint: command
                .endpoint
                .map(|endpoint| endpoint.expose().to_owned()),
            owner: Some(command.owner.into()),
            minted_for: command.minted_for,
        }
    }
}

impl TryFrom<v1::SubscribeCommand> for SubscribeCommand {
    type Error = WireError;

    fn try_from(command: v1::SubscribeCommand) -> Result<Self, WireError> {
        Ok(Self {
            events: event_names("SubscribeCommand.events", command.events)?,
            lease_seconds: command.lease_seconds,
            token_expires: command.token_expires_unix_ms,
            subscriber_name: command.subscriber_name,
            endpoint: optional_endpoint("SubscribeCommand.endpoint", command.endpoint)?,
            owner: required("SubscribeCommand.owner", command.owner)?.into(),
            minted_for: command.minted_for,
        })
    }
}

impl v1::SubscribeRequest {
    /// Asks to subscribe to `topic`.
    pub fn new(topic: &TopicId, command: SubscribeCommand) -> Self {
        Self {
            topic: topic.expose().to_owned(),
            command: Some(command.into()),
        }
    }

    /// Returns the topic and the command.
    pub fn into_parts(self, key: &TopicKey) -> Result<(TopicId, SubscribeCommand), WireError> {
        let topic = topic("SubscribeRequest.topic", &self.topic, key)?;
        let command = required("SubscribeRequest.command", self.command)?.try_into()?;
        Ok((topic, command))
    }
}

impl From<EndpointId> for v1::SubscribeResponse {
    fn from(endpoint: EndpointId) -> Self {
        Self {
            endpoint: endpoint.expose().to_owned(),
        }
    }
}

impl TryFrom<v1::SubscribeResponse> for EndpointId {
    type Error = WireError;

    fn try_from(response: v1::SubscribeResponse) -> Result<Self, WireError> {
        endpoint("SubscribeResponse.endpoint", &response.endpoint)
    }
}

impl v1::UnsubscribeRequest {
    /// Asks, on behalf of `caller`, to cancel the subscription `endpoint` of `topic`.
    pub fn new(topic: &TopicId, endpoint: &EndpointId, caller: Caller) -> Self {
        Self {
            topic: topic.expose().to_owned(),
            topic_ref: topic.topic_ref().as_str().to_owned(),
            endpoint: endpoint.expose().to_owned(),
            owner: Some(caller.owner.into()),
            minted_for: caller.minted_for,
        }
    }

    /// Returns the topic (checked against the ref carried with it), the endpoint and the
    /// caller.
    pub fn into_parts(self, key: &TopicKey) -> Result<(TopicId, EndpointId, Caller), WireError> {
        let topic = topic_with_ref(
            ("UnsubscribeRequest.topic", &self.topic),
            ("UnsubscribeRequest.topic_ref", &self.topic_ref),
            key,
        )?;
        let endpoint = endpoint("UnsubscribeRequest.endpoint", &self.endpoint)?;
        let caller = Caller {
            owner: required("UnsubscribeRequest.owner", self.owner)?.into(),
            minted_for: self.minted_for,
        };
        Ok((topic, endpoint, caller))
    }
}

impl v1::ResolveEndpointRequest {
    /// Asks which topic `endpoint` belongs to.
    pub fn new(endpoint: &EndpointId) -> Self {
        Self {
            endpoint: endpoint.expose().to_owned(),
        }
    }

    /// Returns the endpoint.
    pub fn into_parts(self) -> Result<EndpointId, WireError> {
        endpoint("ResolveEndpointRequest.endpoint", &self.endpoint)
    }
}

impl From<TopicRef> for v1::ResolveEndpointResponse {
    fn from(topic_ref: TopicRef) -> Self {
        Self {
            topic_ref: topic_ref.as_str().to_owned(),
        }
    }
}

impl TryFrom<v1::ResolveEndpointResponse> for TopicRef {
    type Error = WireError;

    fn try_from(response: v1::ResolveEndpointResponse) -> Result<Self, WireError> {
        super::fields::topic_ref("ResolveEndpointResponse.topic_ref", &response.topic_ref)
    }
}

#[cfg(test)]
#[path = "subscribe_tests.rs"]
mod tests;
