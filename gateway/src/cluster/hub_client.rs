//! The cluster's `HubClient`: each call goes over gRPC to the hub node that owns the
//! topic. Placement (rendezvous hashing over the live nodes) picks the node; a node that
//! does not hold the topic's lease answers `NotOwner{holder}` and the call follows it; a
//! node that cannot be reached, or a topic whose lease is between owners, is retried with
//! backoff until the call's budget runs out, then the caller gets `Unavailable` (503 with
//! `Retry-After`). Every attempt has a deadline.
//!
//! Endpoint-addressed calls first resolve the endpoint to its topic ref from Redis (the
//! index the owner writes before it acknowledges a subscription). Failure reports and
//! detaches get a longer budget than requests from apps: a lost one would leave a
//! subscription attached with nobody behind it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hub_node::cluster::redis::RedisConn;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tracing::debug;

use fhircast_proto::event::EventRequest;
use fhircast_proto::hub::{
    AttachOutcome, CurrentContext, DeliveryFailure, Detach, Owner, Published, SubscribeCommand,
    TopicError,
};
use fhircast_proto::placement::owner_of;
use fhircast_proto::redis_schema::endpoint_key;
use fhircast_proto::wire::v1;
use fhircast_proto::wire::v1::hub_node_client::HubNodeClient;
use fhircast_proto::{EndpointId, TopicId, TopicKey, TopicRef};

use super::membership::LiveNodes;
use crate::hub_client::HubClient;

/// How long each call may take, all attempts together.
#[derive(Clone, Copy, Debug)]
pub struct CallBudgets {
    /// One attempt.
    pub attempt: Duration,
    /// A request from an app (subscribe, publish, attach, …).
    pub request: Duration,
    /// A failure report or detach.
    pub report: Duration,
}

impl Default for CallBudgets {
    fn default() -> Self {
        Self {
            attempt: Duration::from_secs(2),
            request: Duration::from_secs(4),
            report: Duration::from_secs(15),
        }
    }
}

/// Redirects followed within one attempt round before backing off.
const MAX_REDIRECTS: usize = 3;

/// The gRPC `HubClient`.
#[derive(Debug)]
pub struct GrpcHubClient {
    nodes: watch::Receiver<LiveNodes>,
    channels: Mutex<HashMap<String, HubNodeClient<Channel>>>,
    redis: RedisConn,
    key: TopicKey,
    budgets: CallBudgets,
    /// This gateway's membership id, named on every attach.
    gateway: String,
}

impl GrpcHubClient {
    /// Calls the owners among `nodes` on behalf of gateway `gateway`; resolves endpoints
    /// through `redis`.
    pub fn new(
        nodes: watch::Receiver<LiveNodes>,
        redis: RedisConn,
        key: TopicKey,
        budgets: CallBudgets,
        gateway: String,
    ) -> Self {
        Self {
            nodes,
            channels: Mutex::new(HashMap::new()),
            redis,
            key,
            budgets,
            gateway,
        }
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<String, HubNodeClient<Channel>>> {
        self.channels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Returns a client for a node's address; channels connect lazily and reconnect.
    fn client(&self, address: &str) -> Result<HubNodeClient<Channel>, TopicError> {
        if let Some(client) = self.channels().get(address) {
            return Ok(client.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|_| TopicError::Unavailable)?
            .connect_timeout(self.budgets.attempt)
            .timeout(self.budgets.attempt)
            .tcp_nodelay(true);
        let client = HubNodeClient::new(endpoint.connect_lazy());
        self.channels().insert(address.to_owned(), client.clone());
        Ok(client)
    }

    /// Runs `op` against the owner of `topic`, following redirects and retrying
    /// unreachable owners until `budget` runs out.
    async fn call<T, F, Fut>(
        &self,
        topic: &TopicRef,
        budget: Duration,
        op: F,
    ) -> Result<T, TopicError>
    where
        F: Fn(HubNodeClient<Channel>) -> Fut,
        Fut: Future<Output = Result<T, TopicError>>,
    {
        let deadline = Instant::now() + budget;
        let mut backoff = Duration::from_millis(20);
        loop {
            let mut target: Option<String> = None;
            let mut last = TopicError::Unavailable;
            for _ in 0..=MAX_REDIRECTS {
                let nodes = self.nodes.borrow().clone();
                let node = target
                    .take()
                    .filter(|id| nodes.contains_key(id))
                    .or_else(|| {
                        owner_of(topic, nodes.keys().map(String::as_str)).map(str::to_owned)
                    });
                let Some(address) = node.as_ref().and_then(|id| nodes.get(id)) else {
                    last = TopicError::Unavailable;
                    break;
                };
                match op(self.client(address)?).await {
                    Ok(value) => return Ok(value),
                    Err(TopicError::NotOwner { holder }) => {
                        debug!(topic = %topic, "following a NotOwner redirect");
                        last = TopicError::NotOwner {
                            holder: holder.clone(),
                        };
                        target = Some(holder);
                    }
                    Err(err @ (TopicError::Unavailable | TopicError::Stopped)) => {
                        last = err;
                        break;
                    }
                    Err(err) => return Err(err),
                }
            }
            if Instant::now() + backoff >= deadline {
                return Err(match last {
                    TopicError::NotOwner { .. } | TopicError::Stopped => TopicError::Unavailable,
                    other => other,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(250));
        }
    }

    /// Resolves an endpoint and runs `op` against its topic's owner.
    async fn call_endpoint<T, F, Fut>(
        &self,
        endpoint: &EndpointId,
        budget: Duration,
        op: F,
    ) -> Result<T, TopicError>
    where
        F: Fn(HubNodeClient<Channel>, TopicRef) -> Fut,
        Fut: Future<Output = Result<T, TopicError>>,
    {
        let topic = self.resolve_endpoint(endpoint).await?;
        self.call(&topic, budget, |client| op(client, topic.clone()))
            .await
    }
}

/// Turns a response (or a status) into the vocabulary.
fn answer<M, T>(
    result: Result<tonic::Response<M>, tonic::Status>,
    convert: impl FnOnce(M) -> Result<T, fhircast_proto::wire::WireError>,
) -> Result<T, TopicError> {
    let message = result.map_err(TopicError::from)?.into_inner();
    convert(message).map_err(|err| {
        debug!(error = %err, "a hub node answered with a malformed message");
        TopicError::Unavailable
    })
}

#[async_trait::async_trait]
impl HubClient for GrpcHubClient {
    async fn subscribe(
        &self,
        topic: &TopicId,
        command: SubscribeCommand,
    ) -> Result<EndpointId, TopicError> {
        self.call(topic.topic_ref(), self.budgets.request, |mut client| {
            let request = v1::SubscribeRequest::new(topic, command.clone());
            async move { answer(client.subscribe(request).await, EndpointId::try_from) }
        })
        .await
    }

    async fn unsubscribe(&self, topic: &TopicId, endpoint: EndpointId) -> Result<(), TopicError> {
        self.call(topic.topic_ref(), self.budgets.request, |mut client| {
            let request = v1::UnsubscribeRequest::new(topic, &endpoint);
            async move { answer(client.unsubscribe(request).await, |_| Ok(())) }
        })
        .await
    }

    async fn resolve_endpoint(&self, endpoint: &EndpointId) -> Result<TopicRef, TopicError> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(endpoint_key(endpoint))
            .query_async(&mut self.redis.clone())
            .await
            .map_err(|_| TopicError::Unavailable)?;
        raw.as_deref()
            .and_then(TopicRef::parse)
            .ok_or(TopicError::UnknownEndpoint)
    }

    async fn attach(&self, endpoint: EndpointId) -> Result<AttachOutcome, TopicError> {
        let key = &self.key;
        self.call_endpoint(&endpoint, self.budgets.request, |mut client, topic| {
            let request = v1::AttachRequest::new(&topic, &endpoint, &self.gateway);
            async move {
                answer(client.attach(request).await, |response| {
                    response.into_domain(key)
                })
            }
        })
        .await
    }

    async fn publish(
        &self,
        topic: &TopicId,
        event: EventRequest,
        poster: Owner,
    ) -> Result<Published, TopicError> {
        self.call(topic.topic_ref(), self.budgets.request, |mut client| {
            let request = v1::PublishRequest::new(topic, event.clone(), poster.clone());
            async move { answer(client.publish(request).await, Published::try_from) }
        })
        .await
    }

    async fn current_context(&self, topic: &TopicId) -> Result<CurrentContext, TopicError> {
        self.call(topic.topic_ref(), self.budgets.request, |mut client| {
            let request = v1::CurrentContextRequest::new(topic);
            async move {
                answer(
                    client.current_context(request).await,
                    CurrentContext::try_from,
                )
            }
        })
        .await
    }

    async fn report_failure(
        &self,
        endpoint: EndpointId,
        report: DeliveryFailure,
    ) -> Result<(), TopicError> {
        self.call_endpoint(&endpoint, self.budgets.report, |mut client, topic| {
            let request = v1::ReportFailureRequest::new(&topic, &endpoint, report.clone());
            async move { answer(client.report_failure(request).await, |_| Ok(())) }
        })
        .await
    }

    async fn detach(&self, endpoint: EndpointId, detach: Detach) -> Result<(), TopicError> {
        self.call_endpoint(&endpoint, self.budgets.report, |mut client, topic| {
            let request = v1::DetachRequest::new(&topic, &endpoint, detach.clone());
            async move { answer(client.detach(request).await, |_| Ok(())) }
        })
        .await
    }
}
