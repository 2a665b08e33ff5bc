//! The `HubClient` seam (DESIGN §3): everything the gateway's HTTP and WebSocket code asks
//! of the topics, and nothing else. The embedded hub implements it with in-process calls
//! to the hub-node registry ([`LocalHubClient`]); the cluster implements it over gRPC.
//! Handlers never touch actors directly.

use std::fmt;

use fhircast_proto::event::EventRequest;
use fhircast_proto::{EndpointId, TopicId, TopicRef};
use hub_node::topic::{
    AttachOutcome, CurrentContext, DeliveryFailure, Detach, Owner, Published, SubscribeCommand,
};
use hub_node::{Registry, TopicError};

/// What the gateway asks of topics.
#[async_trait::async_trait]
pub trait HubClient: Send + Sync + fmt::Debug + 'static {
    /// Creates or re-requests a subscription; returns its endpoint.
    async fn subscribe(
        &self,
        topic: &TopicId,
        command: SubscribeCommand,
    ) -> Result<EndpointId, TopicError>;

    /// Cancels a subscription of `topic`.
    async fn unsubscribe(&self, topic: &TopicId, endpoint: EndpointId) -> Result<(), TopicError>;

    /// Returns the topic an endpoint belongs to.
    async fn resolve_endpoint(&self, endpoint: &EndpointId) -> Result<TopicRef, TopicError>;

    /// Attaches a socket to an endpoint: confirmation, replay, resume position and the seq
    /// snapshot; or the denial of an endpoint whose subscription ended.
    async fn attach(&self, endpoint: EndpointId) -> Result<AttachOutcome, TopicError>;

    /// Publishes an event from `poster`; returns once it is committed.
    async fn publish(
        &self,
        topic: &TopicId,
        event: EventRequest,
        poster: Owner,
    ) -> Result<Published, TopicError>;

    /// Returns a topic's current context.
    async fn current_context(&self, topic: &TopicId) -> Result<CurrentContext, TopicError>;

    /// Reports a failed delivery (error ack or ack timeout).
    async fn report_failure(
        &self,
        endpoint: EndpointId,
        report: DeliveryFailure,
    ) -> Result<(), TopicError>;

    /// Reports that a socket went away.
    async fn detach(&self, endpoint: EndpointId, detach: Detach) -> Result<(), TopicError>;
}

/// The embedded implementation: topics live in this process.
#[derive(Clone, Debug)]
pub struct LocalHubClient {
    registry: Registry,
}

impl LocalHubClient {
    /// Wraps a registry.
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }
}

#[async_trait::async_trait]
impl HubClient for LocalHubClient {
    async fn subscribe(
        &self,
        topic: &TopicId,
        command: SubscribeCommand,
    ) -> Result<EndpointId, TopicError> {
        self.registry
            .with_topic(topic, |handle| {
                let command = command.clone();
                async move { handle.subscribe(command).await }
            })
            .await
    }

    async fn unsubscribe(&self, topic: &TopicId, endpoint: EndpointId) -> Result<(), TopicError> {
        self.registry
            .with_topic(topic, |handle| {
                let endpoint = endpoint.clone();
                async move { handle.unsubscribe(endpoint).await }
            })
            .await
    }

    async fn resolve_endpoint(&self, endpoint: &EndpointId) -> Result<TopicRef, TopicError> {
        let handle = self.registry.topic_of_endpoint(endpoint).await?;
        Ok(handle.topic().topic_ref().clone())
    }

    async fn attach(&self, endpoint: EndpointId) -> Result<AttachOutcome, TopicError> {
        let handle = self.registry.topic_of_endpoint(&endpoint).await?;
        handle.attach(endpoint).await
    }

    async fn publish(
        &self,
        topic: &TopicId,
        event: EventRequest,
        poster: Owner,
    ) -> Result<Published, TopicError> {
        self.registry
            .with_topic(topic, |handle| {
                let (event, poster) = (event.clone(), poster.clone());
                async move { handle.publish(event, poster).await }
            })
            .await
    }

    async fn current_context(&self, topic: &TopicId) -> Result<CurrentContext, TopicError> {
        self.registry
            .with_topic(
                topic,
                |handle| async move { handle.current_context().await },
            )
            .await
    }

    async fn report_failure(
        &self,
        endpoint: EndpointId,
        report: DeliveryFailure,
    ) -> Result<(), TopicError> {
        let handle = self.registry.topic_of_endpoint(&endpoint).await?;
        handle.report_failure(endpoint, report).await
    }

    async fn detach(&self, endpoint: EndpointId, detach: Detach) -> Result<(), TopicError> {
        let handle = self.registry.topic_of_endpoint(&endpoint).await?;
        handle.detach(endpoint, detach).await
    }
}
