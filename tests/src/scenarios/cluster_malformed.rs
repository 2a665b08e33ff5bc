//! Malformed messages between the cluster's processes are logged and dropped; they never
//! take a process down or reach a client. Garbage published on a topic's Redis channel
//! (or an envelope naming another topic) is dropped by the gateway, which keeps delivering
//! the topic's real notifications; a malformed gRPC request is refused `INVALID_ARGUMENT`
//! and changes nothing; raw garbage on the gRPC port leaves the node serving.

use anyhow::{Context as _, Result, bail, ensure};
use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;
use tonic::Code;

use fhircast_proto::EventName;
use fhircast_proto::bus::{Delivery, Envelope, EnvelopeKind};
use fhircast_proto::wire::v1;
use fhircast_proto::wire::v1::hub_node_client::HubNodeClient;

use super::{MSG, expect_id, publish};
use crate::cluster::ClusterBuilder;
use crate::payloads::random_topic;
use crate::subscriber::Subscriber;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_topic_channel_is_dropped_and_real_notifications_keep_flowing() -> Result<()> {
    let cluster = ClusterBuilder::new().nodes(1).gateways(1).start().await?;
    let topic = random_topic();
    let client = cluster.client(0, &topic)?;
    let endpoint = client.subscribe("Patient-open").await?;
    let mut app = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    let first = publish(&client, "first").await?;
    expect_id(&mut app, &first, "the first event").await?;

    let channel = cluster.keys_of(&topic).channel;
    for payload in [b"not protobuf at all".to_vec(), Vec::new(), vec![0xff; 64]] {
        let mut command = ::redis::cmd("PUBLISH");
        command.arg(&channel).arg(payload);
        let receivers: i64 = cluster.deployment().query(&command).await?;
        ensure!(
            receivers >= 1,
            "the gateway is not subscribed to the topic's channel"
        );
    }
    // A well-formed envelope of another topic, published on this topic's channel (a bug or
    // a forgery elsewhere): it must not reach this topic's subscriber.
    let forged = Envelope {
        epoch: 1,
        seq: 1_000_000,
        topic: cluster.key().topic_ref(&random_topic()),
        kind: EnvelopeKind::Event {
            deliveries: vec![Delivery {
                event_id: "forged".into(),
                name: EventName::parse("Patient-open").map_err(anyhow::Error::msg)?,
                suppressed_by: Vec::new(),
                frame: Bytes::from_static(br#"{"id":"forged"}"#),
            }],
            exclude: Vec::new(),
        },
    };
    let mut command = ::redis::cmd("PUBLISH");
    command
        .arg(&channel)
        .arg(forged.to_wire(Default::default()));
    let _: i64 = cluster.deployment().query(&command).await?;

    // The very next message is the next real event: nothing of the above got through.
    let second = publish(&client, "second").await?;
    expect_id(&mut app, &second, "the event after the garbage").await?;
    let log = cluster.gateways()[0].process().stderr_text();
    ensure!(
        log.contains("dropped an undecodable bus message")
            && log.contains("dropped a bus message naming another topic than its channel"),
        "the gateway did not log the dropped messages"
    );
    drop(app);
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_grpc_request_is_refused_and_garbage_on_the_port_leaves_the_node_up()
-> Result<()> {
    let cluster = ClusterBuilder::new().nodes(1).gateways(1).start().await?;
    let address = cluster.nodes()[0].grpc_address();
    let mut node = HubNodeClient::connect(format!("http://{address}"))
        .await
        .context("connecting to the node's gRPC port")?;

    let bad_requests = [
        v1::AttachRequest {
            topic_ref: "not a ref".into(),
            endpoint: "x".into(),
            gateway: "gw-x".into(),
        },
        v1::AttachRequest {
            topic_ref: String::new(),
            endpoint: String::new(),
            gateway: String::new(),
        },
    ];
    for request in bad_requests {
        match node.attach(request).await {
            Err(status) if status.code() == Code::InvalidArgument => {}
            other => bail!("a malformed attach was answered {other:?}"),
        }
    }
    match node
        .subscribe(v1::SubscribeRequest {
            topic: "short".into(),
            command: None,
        })
        .await
    {
        Err(status) if status.code() == Code::InvalidArgument => {}
        other => bail!("a malformed subscribe was answered {other:?}"),
    }

    // Not HTTP/2 at all.
    let mut raw = tokio::net::TcpStream::connect(address).await?;
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\x01\x02garbage")
        .await?;
    drop(raw);

    // The node still serves: the cluster works end to end through it.
    let topic = random_topic();
    let client = cluster.client(0, &topic)?;
    let endpoint = client.subscribe("Patient-open").await?;
    let mut app = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    let id = publish(&client, "after the garbage").await?;
    expect_id(&mut app, &id, "an event after the garbage").await?;
    drop(app);
    cluster.stop().await
}
