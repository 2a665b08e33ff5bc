//! The generated `HubNode` client and server over a loopback connection: requests convert
//! on the node, answers and failures convert back on the gateway, through real HTTP/2.

use bytes::Bytes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::fixtures::{key, names, topic};
use super::v1;
use super::v1::hub_node_client::HubNodeClient;
use super::v1::hub_node_server::{HubNode, HubNodeServer};
use crate::event::EventRequest;
use crate::hub::{
    AttachOutcome, Caller, DeliveryFailure, Detach, DetachReason, EndReason, EndedEndpoint, Owner,
    Published, SubscribeCommand, TopicError, TopicRecord,
};
use crate::ids::{EndpointId, TopicRef};
use crate::sync_error::SyncFailure;

/// A node that answers from what it was sent, and fails the calls a test names.
#[derive(Debug)]
struct EchoNode;

#[tonic::async_trait]
impl HubNode for EchoNode {
    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<v1::SubscribeResponse>, Status> {
        let (_, command) = request.into_inner().into_parts(&key())?;
        let endpoint = command.endpoint.unwrap_or_else(EndpointId::generate);
        Ok(Response::new(endpoint.into()))
    }

    async fn unsubscribe(
        &self,
        request: Request<v1::UnsubscribeRequest>,
    ) -> Result<Response<v1::UnsubscribeResponse>, Status> {
        request.into_inner().into_parts(&key())?;
        Err(TopicError::UnknownEndpoint.into())
    }

    async fn resolve_endpoint(
        &self,
        request: Request<v1::ResolveEndpointRequest>,
    ) -> Result<Response<v1::ResolveEndpointResponse>, Status> {
        request.into_inner().into_parts()?;
        Ok(Response::new(topic().topic_ref().clone().into()))
    }

    async fn attach(
        &self,
        request: Request<v1::AttachRequest>,
    ) -> Result<Response<v1::AttachResponse>, Status> {
        request.into_inner().into_parts()?;
        Ok(Response::new(
            AttachOutcome::Ended {
                denial: Bytes::from_static(b"{}"),
                reason: EndReason::LeaseExpired,
            }
            .into(),
        ))
    }

    async fn publish(
        &self,
        request: Request<v1::PublishRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        request.into_inner().into_parts(&key())?;
        Ok(Response::new(Published::Accepted { seq: 7 }.into()))
    }

    async fn current_context(
        &self,
        request: Request<v1::CurrentContextRequest>,
    ) -> Result<Response<v1::CurrentContextResponse>, Status> {
        request.into_inner().into_parts(&key())?;
        Err(TopicError::NotOwner {
            holder: "hub-node-2".to_owned(),
        }
        .into())
    }

    async fn report_failure(
        &self,
        request: Request<v1::ReportFailureRequest>,
    ) -> Result<Response<v1::ReportFailureResponse>, Status> {
        request.into_inner().into_parts()?;
        Ok(Response::new(v1::ReportFailureResponse {}))
    }

    async fn detach(
        &self,
        request: Request<v1::DetachRequest>,
    ) -> Result<Response<v1::DetachResponse>, Status> {
        request.into_inner().into_parts()?;
        Ok(Response::new(v1::DetachResponse {}))
    }

    async fn revalidate(
        &self,
        request: Request<v1::RevalidateRequest>,
    ) -> Result<Response<v1::RevalidateResponse>, Status> {
        let (_, endpoints) = request.into_inner().into_parts()?;
        let ended: Vec<EndedEndpoint> = endpoints
            .into_iter()
            .map(|endpoint| EndedEndpoint {
                endpoint,
                denial: Bytes::from_static(b"{}"),
            })
            .collect();
        Ok(Response::new(ended.into()))
    }

    async fn mint_topic(
        &self,
        request: Request<v1::MintTopicRequest>,
    ) -> Result<Response<v1::MintTopicResponse>, Status> {
        let (topic, user) = request.into_inner().into_parts(&key())?;
        let record = TopicRecord {
            topic: topic.expose().to_owned(),
            user: Some(user),
            minted_at: Some(1),
            revoked_at: None,
        };
        Ok(Response::new(v1::MintTopicResponse {
            record: Some(record.into()),
        }))
    }

    async fn revoke_topic(
        &self,
        request: Request<v1::RevokeTopicRequest>,
    ) -> Result<Response<v1::RevokeTopicResponse>, Status> {
        request.into_inner().into_parts(&key())?;
        Err(TopicError::Unavailable.into())
    }

    async fn list_topics(
        &self,
        _request: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        Ok(Response::new(Vec::<TopicRecord>::new().into()))
    }
}

#[tokio::test]
async fn calls_and_failures_cross_a_real_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    let server = tokio::spawn(
        Server::builder()
            .add_service(HubNodeServer::new(EchoNode))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let mut client = HubNodeClient::connect(format!("http://{address}"))
        .await
        .expect("connect");

    let endpoint = EndpointId::generate();
    let command = SubscribeCommand {
        events: names(&["Patient-open"]),
        lease_seconds: 60,
        token_expires: 0,
        subscriber_name: None,
        endpoint: Some(endpoint.clone()),
        owner: Owner::default(),
        minted_for: None,
    };
    let response = client
        .subscribe(v1::SubscribeRequest::new(&topic(), command))
        .await
        .expect("subscribed");
    assert_eq!(
        EndpointId::try_from(response.into_inner()),
        Ok(endpoint.clone())
    );

    let status = client
        .unsubscribe(v1::UnsubscribeRequest::new(
            &topic(),
            &endpoint,
            Caller::default(),
        ))
        .await
        .expect_err("unknown endpoint");
    assert_eq!(TopicError::from(status), TopicError::UnknownEndpoint);

    let response = client
        .resolve_endpoint(v1::ResolveEndpointRequest::new(&endpoint))
        .await
        .expect("resolved");
    let topic_ref = TopicRef::try_from(response.into_inner()).expect("a ref");
    assert_eq!(&topic_ref, topic().topic_ref());

    let response = client
        .attach(v1::AttachRequest::new(&topic_ref, &endpoint, "gw-test"))
        .await
        .expect("attached");
    let outcome = response
        .into_inner()
        .into_domain(&key())
        .expect("an outcome");
    assert!(matches!(
        outcome,
        AttachOutcome::Ended {
            reason: EndReason::LeaseExpired,
            ..
        }
    ));

    let event = EventRequest {
        id: "e1".to_owned(),
        timestamp: "2018-01-08T01:37:05.14".to_owned(),
        topic: topic().expose().to_owned(),
        name: names(&["Home-open"]).remove(0),
        context: Vec::new(),
        version_id: None,
    };
    let response = client
        .publish(v1::PublishRequest::new(&topic(), event, Caller::default()))
        .await
        .expect("published");
    assert_eq!(
        Published::try_from(response.into_inner()),
        Ok(Published::Accepted { seq: 7 })
    );

    let status = client
        .current_context(v1::CurrentContextRequest::new(&topic(), Caller::default()))
        .await
        .expect_err("not the owner");
    assert_eq!(
        TopicError::from(status),
        TopicError::NotOwner {
            holder: "hub-node-2".to_owned()
        }
    );

    let report = DeliveryFailure {
        event_id: "e1".to_owned(),
        event_name: "Home-open".to_owned(),
        failure: SyncFailure::Timeout,
        consecutive_timeouts: 1,
    };
    client
        .report_failure(v1::ReportFailureRequest::new(&topic_ref, &endpoint, report))
        .await
        .expect("reported");
    let detach = Detach {
        generation: 1,
        reason: DetachReason::HubClosed,
        resume: None,
    };
    client
        .detach(v1::DetachRequest::new(&topic_ref, &endpoint, detach))
        .await
        .expect("detached");

    let response = client
        .revalidate(v1::RevalidateRequest::new(
            &topic_ref,
            std::slice::from_ref(&endpoint),
        ))
        .await
        .expect("revalidated");
    let ended = Vec::<EndedEndpoint>::try_from(response.into_inner()).expect("ended endpoints");
    assert_eq!(
        ended,
        vec![EndedEndpoint {
            endpoint: endpoint.clone(),
            denial: Bytes::from_static(b"{}"),
        }]
    );

    // A request the node cannot read is refused without a failure entry: unavailable.
    let status = client
        .attach(v1::AttachRequest::default())
        .await
        .expect_err("unreadable request");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(TopicError::from(status), TopicError::Unavailable);

    server.abort();
}
