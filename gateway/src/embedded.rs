//! The embedded hub: topics, store and bus of the hub-node library in this process, behind
//! the same seams the cluster fills over gRPC and Redis. This is the only place the
//! gateway touches `hub-node`.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use fhircast_proto::bus::Bus;
use fhircast_proto::event::EventRequest;
use fhircast_proto::hub::{
    AttachOutcome, Caller, CurrentContext, DeliveryFailure, Detach, EndedEndpoint, Published,
    SubscribeCommand, TopicError, TopicRecord,
};
use fhircast_proto::{EndpointId, TopicId, TopicKey, TopicRef};
use hub_node::Registry;
use hub_node::bus::{HistoryLimits, MemoryBus};
use hub_node::store::MemoryStore;
use hub_node::topic::TopicSettings;

use crate::hub_client::HubClient;

/// The gateway id attachments of the embedded hub name (there is only this one).
const EMBEDDED_GATEWAY: &str = "embedded";

/// The topics of an embedded hub and the bus their envelopes travel on.
#[derive(Debug)]
pub struct EmbeddedHub {
    /// The topics, as handlers reach them.
    pub hub: Arc<dyn HubClient>,
    /// Where gateways' fan-out subscribes.
    pub bus: Arc<dyn Bus>,
}

impl EmbeddedHub {
    /// Starts the in-memory store, bus and registry; topic actors run on `tracker` and stop
    /// when `shutdown` is cancelled.
    pub fn start(
        settings: TopicSettings,
        history: HistoryLimits,
        key: TopicKey,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let bus = Arc::new(MemoryBus::with_limits(history));
        let store = Arc::new(MemoryStore::new(Arc::clone(&bus)));
        let registry = Registry::new(store, settings, key, tracker, shutdown);
        Self {
            hub: Arc::new(LocalHubClient::new(registry)),
            bus,
        }
    }
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
            .with_caller(topic, &command.caller(), |handle| {
                let command = command.clone();
                async move { handle.subscribe(command).await }
            })
            .await
    }

    async fn unsubscribe(
        &self,
        topic: &TopicId,
        endpoint: EndpointId,
        caller: Caller,
    ) -> Result<(), TopicError> {
        self.registry
            .with_caller(topic, &caller, |handle| {
                let (endpoint, caller) = (endpoint.clone(), caller.clone());
                async move { handle.unsubscribe(endpoint, caller).await }
            })
            .await
    }

    async fn resolve_endpoint(&self, endpoint: &EndpointId) -> Result<TopicRef, TopicError> {
        self.registry.resolve_endpoint(endpoint).await
    }

    async fn attach(&self, endpoint: EndpointId) -> Result<AttachOutcome, TopicError> {
        self.registry
            .with_endpoint(&endpoint, |handle| {
                let endpoint = endpoint.clone();
                async move { handle.attach(endpoint, EMBEDDED_GATEWAY.to_owned()).await }
            })
            .await
    }

    async fn publish(
        &self,
        topic: &TopicId,
        event: EventRequest,
        poster: Caller,
    ) -> Result<Published, TopicError> {
        self.registry
            .with_caller(topic, &poster, |handle| {
                let (event, poster) = (event.clone(), poster.clone());
                async move { handle.publish(event, poster).await }
            })
            .await
    }

    async fn current_context(
        &self,
        topic: &TopicId,
        caller: Caller,
    ) -> Result<CurrentContext, TopicError> {
        self.registry
            .with_caller(topic, &caller, |handle| {
                let caller = caller.clone();
                async move { handle.current_context(caller).await }
            })
            .await
    }

    async fn report_failure(
        &self,
        endpoint: EndpointId,
        report: DeliveryFailure,
    ) -> Result<(), TopicError> {
        self.registry
            .with_endpoint(&endpoint, |handle| {
                let (endpoint, report) = (endpoint.clone(), report.clone());
                async move { handle.report_failure(endpoint, report).await }
            })
            .await
    }

    async fn detach(&self, endpoint: EndpointId, detach: Detach) -> Result<(), TopicError> {
        self.registry
            .with_endpoint(&endpoint, |handle| {
                let (endpoint, detach) = (endpoint.clone(), detach.clone());
                async move { handle.detach(endpoint, detach).await }
            })
            .await
    }

    async fn revalidate(
        &self,
        topic: &TopicRef,
        endpoints: &[EndpointId],
    ) -> Result<Vec<EndedEndpoint>, TopicError> {
        self.registry
            .with_ref(topic, |handle| {
                let endpoints = endpoints.to_vec();
                async move { handle.revalidate(endpoints).await }
            })
            .await
    }

    async fn mint_topic(&self, topic: &TopicId, user: &str) -> Result<TopicRecord, TopicError> {
        self.registry
            .with_topic(topic, |handle| {
                let user = user.to_owned();
                async move { handle.mint(user).await }
            })
            .await
    }

    async fn revoke_topic(&self, topic: &TopicId) -> Result<(TopicRecord, usize), TopicError> {
        self.registry
            .with_topic(topic, |handle| async move { handle.revoke().await })
            .await
    }

    async fn list_topics(
        &self,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicRecord>, TopicError> {
        self.registry.list_records(user, limit).await
    }
}
