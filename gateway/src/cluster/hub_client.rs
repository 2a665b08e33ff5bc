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
//!
//! Channels are over mutual TLS when configured ([`super::grpc_tls`]); a plaintext channel
//! to a node off loopback is warned about once.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hub_node::cluster::redis::RedisConn;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, warn};

use fhircast_proto::event::EventRequest;
use fhircast_proto::hub::{
    AttachOutcome, Caller, CurrentContext, DeliveryFailure, Detach, EndedEndpoint, Published,
    SubscribeCommand, TopicError, TopicRecord,
};
use fhircast_proto::placement::owner_of;
use fhircast_proto::redis_schema::endpoint_key;
use fhircast_proto::wire::ERROR_METADATA_KEY;
use fhircast_proto::wire::v1;
use fhircast_proto::wire::v1::hub_node_client::HubNodeClient;
use fhircast_proto::{EndpointId, TopicId, TopicKey, TopicRef};

use super::grpc_tls::{GrpcClientTls, is_loopback_address};
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

/// How long a node that did not answer is looked past (longer than a membership
/// heartbeat's lifetime: by then a dead node has left the live set).
const SUSPECT_FOR: Duration = Duration::from_secs(3);

/// Redirects followed within one attempt round before backing off.
const MAX_REDIRECTS: usize = 3;

/// The gRPC `HubClient`.
#[derive(Debug)]
pub struct GrpcHubClient {
    nodes: watch::Receiver<LiveNodes>,
    channels: Mutex<HashMap<String, HubNodeClient<Channel>>>,
    /// Nodes that did not answer, until when they are looked past.
    suspects: Mutex<HashMap<String, Instant>>,
    redis: RedisConn,
    key: TopicKey,
    budgets: CallBudgets,
    /// This gateway's membership id, named on every attach.
    gateway: String,
    /// Whether this gateway's own last Redis heartbeat succeeded.
    redis_up: watch::Receiver<bool>,
    /// Mutual TLS to the nodes; `None`: plaintext.
    tls: Option<GrpcClientTls>,
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
            suspects: Mutex::new(HashMap::new()),
            redis,
            key,
            budgets,
            gateway,
            redis_up: watch::channel(true).1,
            tls: None,
        }
    }

    /// Reaches the nodes over mutual TLS (`Some`) or plaintext.
    pub fn with_tls(mut self, tls: Option<GrpcClientTls>) -> Self {
        self.tls = tls;
        self
    }

    /// Fails calls closed at once while Redis is down: when a node answers `Unavailable`
    /// and this gateway's own heartbeats into Redis fail too, retrying within the budget
    /// cannot help (P7: a publish during a Redis outage is answered 503 promptly).
    pub fn with_redis_health(mut self, redis_up: watch::Receiver<bool>) -> Self {
        self.redis_up = redis_up;
        self
    }

    /// Returns the nodes that failed to answer recently.
    fn suspects(&self) -> HashSet<String> {
        let mut suspects = self
            .suspects
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let now = Instant::now();
        suspects.retain(|_, until| *until > now);
        suspects.keys().cloned().collect()
    }

    fn suspect(&self, node: String) {
        self.suspects
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(node, Instant::now() + SUSPECT_FOR);
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
        let channel = match &self.tls {
            Some(tls) => tls.channel(&endpoint, address),
            None => {
                if !is_loopback_address(address) {
                    warn!(
                        node_address = address,
                        "gRPC to this hub node is plaintext and unauthenticated; configure \
                         --grpc-tls-ca, --grpc-client-cert and --grpc-client-key"
                    );
                }
                endpoint.connect_lazy()
            }
        };
        let client = HubNodeClient::new(channel);
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
        Fut: Future<Output = Result<T, Failure>>,
    {
        let deadline = Instant::now() + budget;
        let mut backoff = Duration::from_millis(20);
        loop {
            let mut target: Option<String> = None;
            let mut last = TopicError::Unavailable;
            for _ in 0..=MAX_REDIRECTS {
                let nodes = self.nodes.borrow().clone();
                let suspects = self.suspects();
                let node = target
                    .take()
                    .filter(|id| nodes.contains_key(id) && !suspects.contains(id))
                    .or_else(|| place(topic, &nodes, &suspects));
                let Some((id, address)) =
                    node.and_then(|id| nodes.get(&id).map(|address| (id, address.clone())))
                else {
                    last = TopicError::Unavailable;
                    break;
                };
                match op(self.client(&address)?).await {
                    Ok(value) => return Ok(value),
                    Err(Failure::Unreachable) => {
                        // A dead node stays in the membership until its heartbeat lapses:
                        // look past it meanwhile, so its topics move as soon as their
                        // leases do.
                        self.suspect(id);
                        last = TopicError::Unavailable;
                        break;
                    }
                    Err(Failure::Topic(TopicError::NotOwner { holder })) => {
                        debug!(topic = %topic, "following a NotOwner redirect");
                        last = TopicError::NotOwner {
                            holder: holder.clone(),
                        };
                        target = Some(holder);
                    }
                    Err(Failure::Topic(TopicError::Unavailable)) if !*self.redis_up.borrow() => {
                        return Err(TopicError::Unavailable);
                    }
                    Err(Failure::Topic(err @ (TopicError::Unavailable | TopicError::Stopped))) => {
                        last = err;
                        break;
                    }
                    Err(Failure::Topic(err)) => return Err(err),
                }
            }
            if Instant::now() + backoff >= deadline {
                return Err(match last {
                    TopicError::NotOwner { .. } | TopicError::Stopped => TopicError::Unavailable,
                    other => other,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
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
        Fut: Future<Output = Result<T, Failure>>,
    {
        let topic = self.resolve_endpoint(endpoint).await?;
        self.call(&topic, budget, |client| op(client, topic.clone()))
            .await
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum Failure {
    /// The node answered with this error.
    Topic(TopicError),
    /// The node did not answer (refused, reset, timed out).
    Unreachable,
}

/// Turns a response (or a status) into the vocabulary.
fn answer<M, T>(
    result: Result<tonic::Response<M>, tonic::Status>,
    convert: impl FnOnce(M) -> Result<T, fhircast_proto::wire::WireError>,
) -> Result<T, Failure> {
    let message = match result {
        Ok(response) => response.into_inner(),
        Err(status) if status.metadata().get_bin(ERROR_METADATA_KEY).is_none() => {
            return Err(match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                    Failure::Unreachable
                }
                _ => Failure::Topic(TopicError::from(status)),
            });
        }
        Err(status) => return Err(Failure::Topic(TopicError::from(status))),
    };
    convert(message).map_err(|err| {
        debug!(error = %err, "a hub node answered with a malformed message");
        Failure::Topic(TopicError::Unavailable)
    })
}

/// Returns the node placement picks for `topic`, looking past suspected nodes unless every
/// node is suspected.
fn place(topic: &TopicRef, nodes: &LiveNodes, suspects: &HashSet<String>) -> Option<String> {
    let trusted = nodes
        .keys()
        .filter(|id| !suspects.contains(*id))
        .map(String::as_str);
    owner_of(topic, trusted)
        .or_else(|| owner_of(topic, nodes.keys().map(String::as_str)))
        .map(str::to_owned)
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

    async fn unsubscribe(
        &self,
        topic: &TopicId,
        endpoint: EndpointId,
        caller: Caller,
    ) -> Result<(), TopicError> {
        self.call(topic.topic_ref(), self.budgets.request, |mut client| {
            let request = v1::UnsubscribeRequest::new(topic, &endpoint, caller.clone());
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
        poster: Caller,
    ) -> Result<Published, TopicError> {
        self.call(topic.topic_ref(), self.budgets.request, |mut client| {
            let request = v1::PublishRequest::new(topic, event.clone(), poster.clone());
            async move { answer(client.publish(request).await, Published::try_from) }
        })
        .await
    }

    async fn current_context(
        &self,
        topic: &TopicId,
        caller: Caller,
    ) -> Result<CurrentContext, TopicError> {
        self.call(topic.topic_ref(), self.budgets.request, |mut client| {
            let request = v1::CurrentContextRequest::new(topic, caller.clone());
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

    async fn revalidate(
        &self,
        topic: &TopicRef,
        endpoints: &[EndpointId],
    ) -> Result<Vec<EndedEndpoint>, TopicError> {
        // One attempt's budget: the next revalidation round retries.
        self.call(topic, self.budgets.attempt, |mut client| {
            let request = v1::RevalidateRequest::new(topic, endpoints);
            async move { answer(client.revalidate(request).await, TryInto::try_into) }
        })
        .await
    }

    async fn mint_topic(&self, topic: &TopicId, user: &str) -> Result<TopicRecord, TopicError> {
        self.call(topic.topic_ref(), self.budgets.request, |mut client| {
            let request = v1::MintTopicRequest::new(topic, user);
            async move { answer(client.mint_topic(request).await, TopicRecord::try_from) }
        })
        .await
    }

    async fn revoke_topic(&self, topic: &TopicId) -> Result<(TopicRecord, usize), TopicError> {
        self.call(topic.topic_ref(), self.budgets.request, |mut client| {
            let request = v1::RevokeTopicRequest::new(topic);
            async move { answer(client.revoke_topic(request).await, TryInto::try_into) }
        })
        .await
    }

    async fn list_topics(
        &self,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicRecord>, TopicError> {
        // Any node reads the listing from Redis; routing it like a topic gives it the same
        // retries and the same look past unreachable nodes.
        let route = TopicRef::parse(LISTING_ROUTE).ok_or(TopicError::Unavailable)?;
        self.call(&route, self.budgets.request, |mut client| {
            let request = v1::ListTopicsRequest {
                user: user.map(str::to_owned),
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
            };
            async move { answer(client.list_topics(request).await, TryInto::try_into) }
        })
        .await
    }
}

/// The ref topic listings are placed by (any well-formed ref would do).
const LISTING_ROUTE: &str = "AAAAAAAAAAAAAAAAAAAAAA";
