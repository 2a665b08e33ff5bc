//! The `HubClient` seam (DESIGN §3): everything the gateway's HTTP and WebSocket code asks
//! of the topics, and nothing else. The embedded hub implements it with in-process calls
//! to the hub-node registry (`crate::embedded`); the cluster implements it over gRPC.
//! Handlers never touch actors directly; the vocabulary is `fhircast_proto::hub`.

use std::fmt;

use fhircast_proto::event::EventRequest;
use fhircast_proto::hub::{
    AttachOutcome, Caller, CurrentContext, DeliveryFailure, Detach, EndedEndpoint, Published,
    SubscribeCommand, TopicError, TopicRecord,
};
use fhircast_proto::{EndpointId, TopicId, TopicRef};

/// What the gateway asks of topics.
#[async_trait::async_trait]
pub trait HubClient: Send + Sync + fmt::Debug + 'static {
    /// Creates or re-requests a subscription; returns its endpoint.
    async fn subscribe(
        &self,
        topic: &TopicId,
        command: SubscribeCommand,
    ) -> Result<EndpointId, TopicError>;

    /// Cancels a subscription of `topic` that `caller` created.
    async fn unsubscribe(
        &self,
        topic: &TopicId,
        endpoint: EndpointId,
        caller: Caller,
    ) -> Result<(), TopicError>;

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
        poster: Caller,
    ) -> Result<Published, TopicError>;

    /// Returns a topic's current context.
    async fn current_context(
        &self,
        topic: &TopicId,
        caller: Caller,
    ) -> Result<CurrentContext, TopicError>;

    /// Reports a failed delivery (error ack or ack timeout).
    async fn report_failure(
        &self,
        endpoint: EndpointId,
        report: DeliveryFailure,
    ) -> Result<(), TopicError>;

    /// Reports that a socket went away.
    async fn detach(&self, endpoint: EndpointId, detach: Detach) -> Result<(), TopicError>;

    /// Returns which of `endpoints` (of `topic`, with sockets on this gateway) no longer
    /// have a subscription, each with the denial its socket sends before closing.
    async fn revalidate(
        &self,
        topic: &TopicRef,
        endpoints: &[EndpointId],
    ) -> Result<Vec<EndedEndpoint>, TopicError>;

    /// Records a freshly generated topic as minted for `user` (the admin API).
    async fn mint_topic(&self, topic: &TopicId, user: &str) -> Result<TopicRecord, TopicError>;

    /// Revokes a topic: every subscription ends with a denial, every later request is
    /// refused. Returns its record and how many subscriptions ended.
    async fn revoke_topic(&self, topic: &TopicId) -> Result<(TopicRecord, usize), TopicError>;

    /// The admin API's records, newest first: at most `limit`, only `user`'s if given.
    async fn list_topics(
        &self,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicRecord>, TopicError>;
}
