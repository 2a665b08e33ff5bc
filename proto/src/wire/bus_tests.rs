use super::*;
use crate::ids::EndpointId;
use crate::wire::fixtures::{assert_same_deliveries, delivery, names, spellings, topic};

fn envelope(kind: EnvelopeKind) -> Envelope {
    Envelope {
        epoch: 3,
        seq: 1_000_001,
        topic: topic().topic_ref().clone(),
        kind,
    }
}

fn kinds() -> Vec<EnvelopeKind> {
    vec![
        EnvelopeKind::Event {
            deliveries: vec![
                delivery("e1", "DiagnosticReport-open", &[]),
                delivery("e2", "Patient-open", &["DiagnosticReport-open"]),
                delivery(
                    "e3",
                    "Encounter-open",
                    &["DiagnosticReport-open", "Patient-open"],
                ),
            ],
            exclude: vec![EndpointId::generate(), EndpointId::generate()],
        },
        EnvelopeKind::Event {
            deliveries: vec![delivery("e4", "SyncError", &[])],
            exclude: Vec::new(),
        },
        EnvelopeKind::Control {
            endpoint: EndpointId::generate(),
            action: ControlAction::Confirm {
                events: names(&["Patient-open", "org.example.Custom"]),
                lease_ends_unix_ms: 1_800_000_000_000,
                frame: Bytes::from_static(br#"{"hub.mode":"subscribe"}"#),
            },
        },
        EnvelopeKind::Control {
            endpoint: EndpointId::generate(),
            action: ControlAction::Deny {
                frame: Bytes::from_static(br#"{"hub.mode":"denied"}"#),
            },
        },
        EnvelopeKind::Control {
            endpoint: EndpointId::generate(),
            action: ControlAction::Deliver(delivery("e5", "SyncError", &[])),
        },
    ]
}

fn trace() -> Trace {
    Trace::from([
        (
            "traceparent".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        ),
        ("tracestate".to_owned(), "vendor=opaque".to_owned()),
    ])
}

fn assert_same_envelope(left: &Envelope, right: &Envelope) {
    assert_eq!(
        (left.epoch, left.seq, &left.topic),
        (right.epoch, right.seq, &right.topic)
    );
    match (&left.kind, &right.kind) {
        (
            EnvelopeKind::Event {
                deliveries: left_deliveries,
                exclude: left_exclude,
            },
            EnvelopeKind::Event {
                deliveries: right_deliveries,
                exclude: right_exclude,
            },
        ) => {
            assert_same_deliveries(left_deliveries, right_deliveries);
            assert_eq!(left_exclude, right_exclude);
        }
        (
            EnvelopeKind::Control {
                endpoint: left_endpoint,
                action: left_action,
            },
            EnvelopeKind::Control {
                endpoint: right_endpoint,
                action: right_action,
            },
        ) => {
            assert_eq!(left_endpoint, right_endpoint);
            assert_same_action(left_action, right_action);
        }
        (left, right) => panic!("{left:?} came back as {right:?}"),
    }
}

fn assert_same_action(left: &ControlAction, right: &ControlAction) {
    match (left, right) {
        (
            ControlAction::Confirm {
                events: left_events,
                lease_ends_unix_ms: left_lease,
                frame: left_frame,
            },
            ControlAction::Confirm {
                events: right_events,
                lease_ends_unix_ms: right_lease,
                frame: right_frame,
            },
        ) => {
            assert_eq!(spellings(left_events), spellings(right_events));
            assert_eq!((left_lease, left_frame), (right_lease, right_frame));
        }
        (ControlAction::Deny { frame: left }, ControlAction::Deny { frame: right }) => {
            assert_eq!(left, right);
        }
        (ControlAction::Deliver(left), ControlAction::Deliver(right)) => {
            assert_same_deliveries(std::slice::from_ref(left), std::slice::from_ref(right));
        }
        (left, right) => panic!("{left:?} came back as {right:?}"),
    }
}

#[test]
fn every_envelope_kind_round_trips_with_its_trace() {
    for kind in kinds() {
        let sent = envelope(kind);
        for trace in [Trace::new(), trace()] {
            let bytes = Bytes::from(sent.to_wire(trace.clone()));
            let (received, received_trace) = Envelope::from_wire(bytes).expect("valid envelope");
            assert_same_envelope(&received, &sent);
            assert_eq!(received_trace, trace);
            assert_eq!(received.frame_bytes(), sent.frame_bytes());
        }
    }
}

#[test]
fn frames_are_slices_of_the_received_buffer() {
    let bytes = Bytes::from(envelope(kinds().remove(0)).to_wire(trace()));
    let received_range = bytes.as_ptr_range();
    let (received, _) = Envelope::from_wire(bytes.clone()).expect("valid envelope");
    let EnvelopeKind::Event { deliveries, .. } = &received.kind else {
        panic!("an event envelope comes back as one");
    };
    for delivery in deliveries {
        let frame = delivery.frame.as_ptr_range();
        assert!(received_range.start <= frame.start && frame.end <= received_range.end);
    }
}

#[test]
fn malformed_bytes_are_refused_without_panicking() {
    let valid = envelope(kinds().remove(0)).to_wire(trace());
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![0xff; 16],
        vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
        b"{\"epoch\":1}".to_vec(),
        valid[..valid.len() / 2].to_vec(),
    ];
    // Every prefix and every single-byte corruption of a valid envelope.
    inputs.extend((0..valid.len()).map(|cut| valid[..cut].to_vec()));
    inputs.extend((0..valid.len()).map(|at| {
        let mut corrupt = valid.clone();
        corrupt[at] ^= 0xa5;
        corrupt
    }));
    let mut refused = 0;
    for input in inputs {
        if Envelope::from_wire(Bytes::from(input)).is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0);
    assert!(matches!(
        Envelope::from_wire(Bytes::from_static(&[0xff; 16])),
        Err(WireError::Malformed(_))
    ));
    assert!(matches!(
        Envelope::from_wire(Bytes::copy_from_slice(&valid[..valid.len() - 1])),
        Err(WireError::Malformed(_))
    ));
}

fn decode(message: &v1::BusEnvelope) -> Result<(Envelope, Trace), WireError> {
    Envelope::from_wire(Bytes::from(prost::Message::encode_to_vec(message)))
}

#[test]
fn envelopes_missing_or_bad_fields_are_refused() {
    let event = v1::BusEnvelope::new(&envelope(kinds().remove(0)), Trace::new());
    let control = v1::BusEnvelope::new(&envelope(kinds().remove(2)), Trace::new());

    let mut message = event.clone();
    message.kind = None;
    assert_eq!(
        decode(&message).err(),
        Some(WireError::Missing("BusEnvelope.kind"))
    );

    let mut message = event.clone();
    message.topic_ref = "not a ref".to_owned();
    assert!(matches!(
        decode(&message),
        Err(WireError::Invalid {
            field: "BusEnvelope.topic_ref",
            ..
        })
    ));

    let mut message = event.clone();
    if let Some(v1::bus_envelope::Kind::Event(batch)) = message.kind.as_mut() {
        batch.exclude.push("short".to_owned());
    }
    assert!(matches!(
        decode(&message),
        Err(WireError::Invalid {
            field: "EventBatch.exclude",
            ..
        })
    ));

    let mut message = event;
    if let Some(v1::bus_envelope::Kind::Event(batch)) = message.kind.as_mut() {
        batch.deliveries[0].name = "Patient-explode".to_owned();
    }
    assert!(matches!(
        decode(&message),
        Err(WireError::Invalid {
            field: "Delivery.name",
            ..
        })
    ));

    let mut message = control.clone();
    if let Some(v1::bus_envelope::Kind::Control(control)) = message.kind.as_mut() {
        control.action = None;
    }
    assert_eq!(
        decode(&message).err(),
        Some(WireError::Missing("Control.action"))
    );

    let mut message = control.clone();
    if let Some(v1::bus_envelope::Kind::Control(control)) = message.kind.as_mut() {
        control.endpoint.clear();
    }
    assert_eq!(
        decode(&message).err(),
        Some(WireError::Missing("Control.endpoint"))
    );

    let mut message = control;
    if let Some(v1::bus_envelope::Kind::Control(v1::Control {
        action: Some(v1::control::Action::Confirm(confirm)),
        ..
    })) = message.kind.as_mut()
    {
        confirm.events.push("nope".to_owned());
    }
    assert!(matches!(
        decode(&message),
        Err(WireError::Invalid {
            field: "Confirm.events",
            ..
        })
    ));
}
