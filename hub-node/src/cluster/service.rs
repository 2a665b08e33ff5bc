//! The tonic service gateways call (`fhircast.hub.v1.HubNode`): each rpc turns its message
//! into the `HubClient` vocabulary, runs it against the registry's topic actors, and turns
//! the answer back. Proto types stop here.
//!
//! A request this node cannot serve because another node's lease runs answers
//! `NotOwner{holder}`; a malformed message answers `INVALID_ARGUMENT` and changes nothing.

use tonic::{Request, Response, Status};
use tracing::debug;

use fhircast_proto::TopicKey;
use fhircast_proto::hub::TopicError;
use fhircast_proto::wire::v1;
use fhircast_proto::wire::v1::hub_node_server::HubNode;

use crate::Registry;

/// The `HubNode` service of this process.
#[derive(Clone, Debug)]
pub struct HubNodeService {
    registry: Registry,
    key: TopicKey,
}

impl HubNodeService {
    /// Serves the topics of `registry`; `key` is the deployment's shared topic key.
    pub fn new(registry: Registry, key: TopicKey) -> Self {
        Self { registry, key }
    }
}

/// A message that does not parse is refused before anything runs.
fn malformed(err: impl std::fmt::Display) -> Status {
    debug!(error = %err, "refused a malformed gRPC request");
    Status::invalid_argument(err.to_string())
}

fn answer<T, M: From<T>>(result: Result<T, TopicError>) -> Result<Response<M>, Status> {
    result
        .map(|value| Response::new(M::from(value)))
        .map_err(Status::from)
}

#[tonic::async_trait]
impl HubNode for HubNodeService {
    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<v1::SubscribeResponse>, Status> {
        let (topic, command) = request
            .into_inner()
            .into_parts(&self.key)
            .map_err(malformed)?;
        let result = self
            .registry
            .with_caller(&topic, &command.caller(), |handle| {
                let command = command.clone();
                async move { handle.subscribe(command).await }
            })
            .await;
        answer(result)
    }

    async fn unsubscribe(
        &self,
        request: Request<v1::UnsubscribeRequest>,
    ) -> Result<Response<v1::UnsubscribeResponse>, Status> {
        let (topic, endpoint, caller) = request
            .into_inner()
            .into_parts(&self.key)
            .map_err(malformed)?;
        let result = self
            .registry
            .with_caller(&topic, &caller, |handle| {
                let (endpoint, caller) = (endpoint.clone(), caller.clone());
                async move { handle.unsubscribe(endpoint, caller).await }
            })
            .await;
        result
            .map(|()| Response::new(v1::UnsubscribeResponse {}))
            .map_err(Status::from)
    }

    async fn resolve_endpoint(
        &self,
        request: Request<v1::ResolveEndpointRequest>,
    ) -> Result<Response<v1::ResolveEndpointResponse>, Status> {
        let endpoint = request.into_inner().into_parts().map_err(malformed)?;
        answer(self.registry.resolve_endpoint(&endpoint).await)
    }

    async fn attach(
        &self,
        request: Request<v1::AttachRequest>,
    ) -> Result<Response<v1::AttachResponse>, Status> {
        let (topic, endpoint, gateway) = request.into_inner().into_parts().map_err(malformed)?;
        let result = self
            .registry
            .with_ref(&topic, |handle| {
                let (endpoint, gateway) = (endpoint.clone(), gateway.clone());
                async move { handle.attach(endpoint, gateway).await }
            })
            .await;
        answer(result)
    }

    async fn publish(
        &self,
        request: Request<v1::PublishRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        let (topic, event, poster) = request
            .into_inner()
            .into_parts(&self.key)
            .map_err(malformed)?;
        let result = self
            .registry
            .with_caller(&topic, &poster, |handle| {
                let (event, poster) = (event.clone(), poster.clone());
                async move { handle.publish(event, poster).await }
            })
            .await;
        answer(result)
    }

    async fn current_context(
        &self,
        request: Request<v1::CurrentContextRequest>,
    ) -> Result<Response<v1::CurrentContextResponse>, Status> {
        let (topic, caller) = request
            .into_inner()
            .into_parts(&self.key)
            .map_err(malformed)?;
        let result = self
            .registry
            .with_caller(&topic, &caller, |handle| {
                let caller = caller.clone();
                async move { handle.current_context(caller).await }
            })
            .await;
        answer(result)
    }

    async fn mint_topic(
        &self,
        request: Request<v1::MintTopicRequest>,
    ) -> Result<Response<v1::MintTopicResponse>, Status> {
        let (topic, user) = request
            .into_inner()
            .into_parts(&self.key)
            .map_err(malformed)?;
        let result = self
            .registry
            .with_topic(&topic, |handle| {
                let user = user.clone();
                async move { handle.mint(user).await }
            })
            .await;
        result
            .map(|record| {
                Response::new(v1::MintTopicResponse {
                    record: Some(record.into()),
                })
            })
            .map_err(Status::from)
    }

    async fn revoke_topic(
        &self,
        request: Request<v1::RevokeTopicRequest>,
    ) -> Result<Response<v1::RevokeTopicResponse>, Status> {
        let topic = request
            .into_inner()
            .into_parts(&self.key)
            .map_err(malformed)?;
        let result = self
            .registry
            .with_topic(&topic, |handle| async move { handle.revoke().await })
            .await;
        answer(result)
    }

    async fn list_topics(
        &self,
        request: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        let request = request.into_inner();
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        answer(
            self.registry
                .list_records(request.user.as_deref(), limit)
                .await,
        )
    }

    async fn report_failure(
        &self,
        request: Request<v1::ReportFailureRequest>,
    ) -> Result<Response<v1::ReportFailureResponse>, Status> {
        let (topic, endpoint, report) = request.into_inner().into_parts().map_err(malformed)?;
        let result = self
            .registry
            .with_ref(&topic, |handle| {
                let (endpoint, report) = (endpoint.clone(), report.clone());
                async move { handle.report_failure(endpoint, report).await }
            })
            .await;
        result
            .map(|()| Response::new(v1::ReportFailureResponse {}))
            .map_err(Status::from)
    }

    async fn detach(
        &self,
        request: Request<v1::DetachRequest>,
    ) -> Result<Response<v1::DetachResponse>, Status> {
        let (topic, endpoint, detach) = request.into_inner().into_parts().map_err(malformed)?;
        let result = self
            .registry
            .with_ref(&topic, |handle| {
                let (endpoint, detach) = (endpoint.clone(), detach.clone());
                async move { handle.detach(endpoint, detach).await }
            })
            .await;
        result
            .map(|()| Response::new(v1::DetachResponse {}))
            .map_err(Status::from)
    }

    async fn revalidate(
        &self,
        request: Request<v1::RevalidateRequest>,
    ) -> Result<Response<v1::RevalidateResponse>, Status> {
        let (topic, endpoints) = request.into_inner().into_parts().map_err(malformed)?;
        let result = self
            .registry
            .with_ref(&topic, |handle| {
                let endpoints = endpoints.clone();
                async move { handle.revalidate(endpoints).await }
            })
            .await;
        answer(result)
    }
}
