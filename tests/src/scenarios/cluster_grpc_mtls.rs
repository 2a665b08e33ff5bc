//! TLS-03: gRPC between gateways and hub nodes over mutual TLS. A cluster whose gRPC hop is
//! mutually authenticated serves apps end to end; a hub node refuses at the handshake a
//! client without a certificate, a client whose certificate another CA signed, and a
//! plaintext client, and serves no gRPC reflection; a gateway that does not trust the
//! nodes' CA fails closed (503 with a reason, never a plaintext fallback); a partial or
//! unsafe configuration is refused at start-up (exit 64 with the reason). A node picks up a
//! rotated certificate for new connections without a restart (TLS-06 for the gRPC hop).
//!
//! The clients that probe a node are tonic's own (its TLS, not the gateway's connector),
//! so the node is checked against an independent implementation.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result, ensure};
use bytes::Buf as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

use fhircast_proto::wire::ERROR_METADATA_KEY;

use super::{MSG, expect_id, publish};
use crate::certs::{GrpcMtls, TlsPair};
use crate::cluster::{ClusterBuilder, Node, NodeBuilder};
use crate::eventually::eventually;
use crate::gateway::GatewayBuilder;
use crate::payloads::random_topic;
use crate::redis::{RedisOptions, RedisServer};
use crate::subscriber::Subscriber;

/// A method every hub node serves.
const HUB_NODE_METHOD: &str = "/fhircast.hub.v1.HubNode/CurrentContext";
/// gRPC reflection (v1 and v1alpha): no node may serve it.
const REFLECTION_METHODS: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];
/// Most topics subscribed to before both nodes own one.
const TOPICS_TO_SPREAD: usize = 24;
/// What a node logs when it refuses a handshake.
const NODE_REFUSED: &str = "refused a gRPC connection: TLS handshake failed";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_03_a_cluster_over_mutual_tls_serves_apps_end_to_end() -> Result<()> {
    let certs = GrpcMtls::generate()?;
    let cluster = ClusterBuilder::new()
        .nodes(2)
        .gateways(1)
        .grpc_mtls(&certs)
        .start()
        .await?;

    // Subscribe until both nodes own a topic: both listeners served the gateway.
    let mut owners = BTreeSet::new();
    let mut last = None;
    for _ in 0..TOPICS_TO_SPREAD {
        let client = cluster.client(0, &random_topic())?;
        let endpoint = client.subscribe("Patient-open").await?;
        owners.extend(cluster.owner(client.topic()).await?);
        last = Some((client, endpoint));
        if owners.len() == 2 {
            break;
        }
    }
    ensure!(
        owners.len() == 2,
        "{TOPICS_TO_SPREAD} topics all landed on {owners:?}"
    );
    let (client, endpoint) = last.context("no topic subscribed")?;
    let mut app = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    let id = publish(&client, "over mutual tls").await?;
    expect_id(
        &mut app,
        &id,
        "an event committed and fanned out over mutual TLS",
    )
    .await?;
    drop(app);
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_03_a_client_without_a_certificate_is_refused_at_the_handshake() -> Result<()> {
    let rig = MtlsNode::start().await?;
    let anonymous = rig.endpoint(ClientTlsConfig::new().ca_certificate(rig.ca()?))?;
    expect_refused(
        call(anonymous, HUB_NODE_METHOD).await,
        "no client certificate",
    )?;
    rig.expect_logged("peer sent no certificates").await?;

    let plaintext = Endpoint::from_shared(format!("http://{}", rig.node.grpc_address()))?
        .connect_timeout(MSG)
        .timeout(MSG);
    expect_refused(call(plaintext, HUB_NODE_METHOD).await, "plaintext gRPC")?;
    rig.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_03_a_client_certificate_from_another_ca_is_refused_at_the_handshake() -> Result<()> {
    let rig = MtlsNode::start().await?;
    let stranger = GrpcMtls::generate()?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(rig.ca()?)
        .identity(identity(&stranger.gateway)?);
    expect_refused(
        call(rig.endpoint(tls)?, HUB_NODE_METHOD).await,
        "a certificate from another CA",
    )?;
    rig.expect_logged("invalid peer certificate: UnknownIssuer")
        .await?;
    rig.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_03_an_authenticated_client_reaches_the_hub_node_service_and_no_reflection()
-> Result<()> {
    let rig = MtlsNode::start().await?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(rig.ca()?)
        .identity(identity(&rig.certs.gateway)?);
    let endpoint = rig.endpoint(tls)?;
    // The service answers (an empty request is refused by the service itself, not by the
    // transport).
    if let Err(status) = call(endpoint.clone(), HUB_NODE_METHOD).await {
        ensure!(
            !matches!(
                status.code(),
                Code::Unimplemented | Code::Unavailable | Code::Unknown | Code::Cancelled
            ),
            "the HubNode service did not answer an authenticated client: {status:?}"
        );
    }
    for method in REFLECTION_METHODS {
        match call(endpoint.clone(), method).await {
            Err(status) if status.code() == Code::Unimplemented => {}
            other => anyhow::bail!("{method} answered {other:?}: a reflection service is served"),
        }
    }
    rig.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_03_a_rotated_node_certificate_serves_new_connections() -> Result<()> {
    let rig = MtlsNode::start_with(&["--tls-reload-check-ms=200"]).await?;
    // The next certificate comes from another CA, so a client trusting only that CA tells
    // the old certificate from the new one.
    let next = GrpcMtls::generate()?;
    let next_ca = Certificate::from_pem(
        std::fs::read(&next.ca).with_context(|| format!("reading {}", next.ca.display()))?,
    );
    let trusting_next = rig.endpoint(
        ClientTlsConfig::new()
            .ca_certificate(next_ca)
            .identity(identity(&rig.certs.gateway)?),
    )?;
    expect_refused(
        call(trusting_next.clone(), REFLECTION_METHODS[0]).await,
        "a client trusting only the next CA, before the rotation",
    )?;
    for (from, to) in [
        (&next.node.cert, &rig.certs.node.cert),
        (&next.node.key, &rig.certs.node.key),
    ] {
        std::fs::copy(from, to).with_context(|| format!("rotating {}", to.display()))?;
    }
    eventually("the node presents the rotated certificate", MSG, || async {
        Ok(
            match call(trusting_next.clone(), REFLECTION_METHODS[0]).await {
                Err(status) if status.code() == Code::Unimplemented => Some(()),
                _ => None,
            },
        )
    })
    .await
    .map_err(|error| error.context(rig.node.logs_tail()))?;
    rig.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_03_a_gateway_that_does_not_trust_the_nodes_fails_closed() -> Result<()> {
    let certs = GrpcMtls::generate()?;
    let other = GrpcMtls::generate()?;
    let node_args = certs.node_args();
    let gateway_args = certs.gateway_args_trusting(&other.ca);
    let cluster = ClusterBuilder::new()
        .nodes(1)
        .gateways(1)
        .configure_nodes(|node| node_args.into_iter().fold(node, NodeBuilder::arg))
        .configure_gateways(|gateway| gateway_args.into_iter().fold(gateway, GatewayBuilder::arg))
        .start()
        .await?;

    let client = cluster.client(0, &random_topic())?;
    let reply = client
        .subscribe_with("Patient-open", &[])
        .await
        .context("subscribing through the misconfigured gateway")?;
    reply.expect_error(503, "a subscribe the nodes could not be reached for")?;
    ensure!(
        reply.headers.contains_key("retry-after"),
        "503 without Retry-After: {:?}",
        reply.headers
    );
    ensure!(
        cluster.owner(client.topic()).await?.is_none(),
        "a node took the topic: a command reached it"
    );
    let gateway_log = cluster
        .gateways()
        .first()
        .map(|gateway| gateway.process().stderr_text())
        .unwrap_or_default();
    ensure!(
        gateway_log.contains("TLS handshake with a hub node failed")
            && gateway_log.contains("UnknownIssuer"),
        "the gateway does not say why the nodes are unreachable\n{}",
        cluster.logs_tail()
    );
    ensure!(
        cluster.node_log(0).contains(NODE_REFUSED),
        "the node does not log the refused handshake\n{}",
        cluster.logs_tail()
    );
    cluster.stop().await
}

#[tokio::test]
async fn tls_03_a_partial_or_unsafe_grpc_tls_configuration_is_refused_at_start_up() -> Result<()> {
    let certs = GrpcMtls::generate()?;
    let node = || {
        NodeBuilder::new()
            .redis_url("redis://127.0.0.1:1/")
            .topic_key(&fhircast_proto::ids::random_token())
            .node_id("hub-refused")
    };
    let [cert, key, client_ca] = <[String; 3]>::try_from(certs.node_args())
        .map_err(|args| anyhow::anyhow!("unexpected node flags {args:?}"))?;
    node()
        .arg(cert.clone())
        .expect_refused("missing --grpc-tls-key, --grpc-client-ca")
        .await?;
    node()
        .arg(cert.clone())
        .arg(key.clone())
        .expect_refused("missing --grpc-client-ca")
        .await?;
    let full = || {
        node()
            .arg(cert.clone())
            .arg(key.clone())
            .arg(client_ca.clone())
    };
    full()
        .arg("--grpc-insecure-allow")
        .expect_refused("exclude each other")
        .await?;
    full()
        .arg("--advertise-address=hub-0.hub.example.org:50051")
        .expect_refused("does not name hub-0.hub.example.org")
        .await?;
    node()
        .grpc_listen("0.0.0.0:0")
        .arg("--advertise-address=127.0.0.1:50051")
        .expect_refused("refusing plaintext gRPC on 0.0.0.0:0")
        .await?;

    let gateway = |args: Vec<String>| {
        args.into_iter().fold(
            GatewayBuilder::new()
                .arg("--issuer=http://127.0.0.1:1/issuer")
                .arg("--audience=fhircast-hub-test"),
            GatewayBuilder::arg,
        )
    };
    let in_cluster = |args: Vec<String>| {
        gateway(args)
            .arg("--redis-url=redis://127.0.0.1:1/")
            .arg(format!(
                "--topic-key={}",
                fhircast_proto::ids::random_token()
            ))
    };
    let [ca, ..] = <[String; 3]>::try_from(certs.gateway_args())
        .map_err(|args| anyhow::anyhow!("unexpected gateway flags {args:?}"))?;
    in_cluster(vec![ca])
        .expect_refused("missing --grpc-client-cert, --grpc-client-key")
        .await?;
    gateway(certs.gateway_args())
        .expect_refused("apply only in a cluster")
        .await
}

/// Redis and one hub node serving gRPC over mutual TLS, without gateways: a target for
/// clients the test builds itself.
#[derive(Debug)]
struct MtlsNode {
    certs: GrpcMtls,
    redis: RedisServer,
    node: Node,
}

impl MtlsNode {
    async fn start() -> Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts the node with `extra` flags besides its TLS flags.
    async fn start_with(extra: &[&str]) -> Result<Self> {
        let certs = GrpcMtls::generate()?;
        let redis = RedisServer::start(RedisOptions::ephemeral()).await?;
        let node = certs
            .node_args()
            .into_iter()
            .chain(extra.iter().map(|arg| (*arg).to_owned()))
            .fold(NodeBuilder::new(), NodeBuilder::arg)
            .redis_url(&redis.url())
            .topic_key(&fhircast_proto::ids::random_token())
            .node_id("hub-0")
            .start()
            .await?;
        Ok(Self { certs, redis, node })
    }

    /// The CA that signed the node's certificate.
    fn ca(&self) -> Result<Certificate> {
        let pem = std::fs::read(&self.certs.ca)
            .with_context(|| format!("reading {}", self.certs.ca.display()))?;
        Ok(Certificate::from_pem(pem))
    }

    /// An `https://` endpoint for the node with this client TLS.
    fn endpoint(&self, tls: ClientTlsConfig) -> Result<Endpoint> {
        Ok(
            Endpoint::from_shared(format!("https://{}", self.node.grpc_address()))?
                .tls_config(tls)?
                .connect_timeout(MSG)
                .timeout(MSG),
        )
    }

    /// Waits until the node logs a refused handshake saying `reason`.
    async fn expect_logged(&self, reason: &str) -> Result<()> {
        let found = eventually(
            &format!("the node logs a refused handshake: {reason}"),
            MSG,
            || async {
                let log = self
                    .node
                    .process()
                    .map(crate::process::Process::stderr_text);
                Ok(log.filter(|log| {
                    log.lines()
                        .any(|line| line.contains(NODE_REFUSED) && line.contains(reason))
                }))
            },
        )
        .await;
        found
            .map(drop)
            .map_err(|error| error.context(self.node.logs_tail()))
    }

    async fn stop(self) -> Result<()> {
        self.node.stop().await?;
        self.redis.stop().await
    }
}

/// A client identity from a PEM pair.
fn identity(pair: &TlsPair) -> Result<Identity> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    };
    Ok(Identity::from_pem(read(&pair.cert)?, read(&pair.key)?))
}

/// Calls `method` with an empty message; a failed connection is a status whose source is
/// the transport error.
async fn call(endpoint: Endpoint, method: &'static str) -> Result<(), Status> {
    let transport = |error: tonic::transport::Error| Status::from_error(Box::new(error));
    let channel = endpoint.connect().await.map_err(transport)?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(transport)?;
    grpc.unary(
        tonic::Request::new(()),
        PathAndQuery::from_static(method),
        Empty,
    )
    .await
    .map(drop)
}

/// Fails unless the call was refused by the transport (a connection that failed or was
/// closed), never answered by a service.
fn expect_refused(result: Result<(), Status>, what: &str) -> Result<()> {
    let from_transport = |status: &Status| {
        std::error::Error::source(status)
            .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some())
            && status.metadata().get_bin(ERROR_METADATA_KEY).is_none()
    };
    match result {
        Err(status) if from_transport(&status) => Ok(()),
        other => anyhow::bail!("{what}: expected a refused connection, got {other:?}"),
    }
}

/// A codec for empty messages: enough to call any method by path.
#[derive(Debug, Clone, Copy, Default)]
struct Empty;

impl Codec for Empty {
    type Encode = ();
    type Decode = ();
    type Encoder = Empty;
    type Decoder = Empty;

    fn encoder(&mut self) -> Self::Encoder {
        Empty
    }

    fn decoder(&mut self) -> Self::Decoder {
        Empty
    }
}

impl Encoder for Empty {
    type Item = ();
    type Error = Status;

    fn encode(&mut self, _item: (), _dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        Ok(())
    }
}

impl Decoder for Empty {
    type Item = ();
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, Status> {
        src.advance(src.remaining());
        Ok(Some(()))
    }
}
