//! The fan-out's pre-filter: a socket is offered only events its attachment (or a later
//! confirmation) grants, while control envelopes for its endpoint always reach it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use fhircast_proto::bus::{ControlAction, Delivery, Envelope, EnvelopeKind};
use fhircast_proto::{EndpointId, EventName, TopicKey, TopicRef};
use hub_node::bus::MemoryBus;

use super::{Fanout, Registration};

fn name(raw: &str) -> EventName {
    EventName::parse(raw).expect("a valid event name")
}

fn event(topic: &TopicRef, seq: u64, event: &str) -> Envelope {
    Envelope {
        epoch: 1,
        seq,
        topic: topic.clone(),
        kind: EnvelopeKind::Event {
            deliveries: vec![Delivery {
                event_id: format!("evt-{seq}").into(),
                name: name(event),
                suppressed_by: Vec::new(),
                frame: Bytes::from_static(b"{}"),
            }],
            exclude: Vec::new(),
        },
    }
}

fn confirm(topic: &TopicRef, seq: u64, endpoint: &EndpointId, events: &[&str]) -> Envelope {
    Envelope {
        epoch: 1,
        seq,
        topic: topic.clone(),
        kind: EnvelopeKind::Control {
            endpoint: endpoint.clone(),
            action: ControlAction::Confirm {
                events: events.iter().map(|raw| name(raw)).collect(),
                lease_ends_unix_ms: u64::MAX / 2,
                frame: Bytes::from_static(b"{}"),
            },
        },
    }
}

async fn next_seq(registration: &mut Registration) -> u64 {
    tokio::time::timeout(Duration::from_secs(5), registration.outbox.recv())
        .await
        .expect("an envelope within 5 s")
        .expect("the outbox is open")
        .seq
}

/// A fan-out over an in-memory bus with one socket registered on a fresh topic.
async fn registered_socket() -> (Arc<MemoryBus>, Fanout, TopicRef, EndpointId, Registration) {
    let bus = Arc::new(MemoryBus::new());
    let fanout = Fanout::new(bus.clone(), TaskTracker::new(), CancellationToken::new());
    let topic = TopicKey::random().topic_ref("prefilter-topic-0123456789abcdef");
    let endpoint = EndpointId::parse(&"e".repeat(43)).expect("a well-formed endpoint");
    let registration = fanout
        .register(&topic, &endpoint, 16)
        .await
        .expect("registered");
    (bus, fanout, topic, endpoint, registration)
}

#[tokio::test]
async fn a_socket_is_offered_only_the_events_it_is_granted() {
    let (bus, fanout, topic, endpoint, mut registration) = registered_socket().await;
    registration.note_attached(1, 0, &[name("Patient-open")]);
    // A round trip through the topic's commands: the grant is applied once it returns.
    assert_eq!(fanout.endpoints(&topic).await, vec![endpoint.clone()]);

    bus.publish(event(&topic, 1, "ImagingStudy-open"));
    bus.publish(event(&topic, 2, "Patient-open"));
    assert_eq!(next_seq(&mut registration).await, 2, "seq 1 is not granted");

    // A new confirmation switches the grant from its seq on.
    bus.publish(confirm(&topic, 3, &endpoint, &["ImagingStudy-open"]));
    bus.publish(event(&topic, 4, "Patient-open"));
    bus.publish(event(&topic, 5, "ImagingStudy-open"));
    assert_eq!(
        next_seq(&mut registration).await,
        3,
        "control envelopes always"
    );
    assert_eq!(next_seq(&mut registration).await, 5);

    // A late report of an older grant does not undo the newer one.
    registration.note_attached(1, 0, &[name("Patient-open")]);
    assert_eq!(fanout.endpoints(&topic).await, vec![endpoint.clone()]);
    bus.publish(event(&topic, 6, "Patient-open"));
    bus.publish(event(&topic, 7, "ImagingStudy-open"));
    assert_eq!(next_seq(&mut registration).await, 7);
}

#[tokio::test]
async fn until_the_attachment_reports_its_grant_every_event_is_offered() {
    let (bus, _fanout, topic, _endpoint, mut registration) = registered_socket().await;
    bus.publish(event(&topic, 1, "ImagingStudy-open"));
    assert_eq!(next_seq(&mut registration).await, 1);
}
