use bytes::Bytes;

use super::*;
use crate::wire::fixtures::{
    assert_same_deliveries, delivery, key, names, other_topic, spellings, through_bytes, topic,
};

const END_REASONS: [EndReason; 7] = [
    EndReason::Unsubscribed,
    EndReason::LeaseExpired,
    EndReason::Unresponsive,
    EndReason::AttachWindowPassed,
    EndReason::ReattachWindowPassed,
    EndReason::ConnectionClosed,
    EndReason::Revoked,
];

fn attachment(resume: Option<Position>) -> Attachment {
    Attachment {
        topic: topic(),
        events: names(&[
            "Patient-open",
            "DiagnosticReport-update",
            "org.example.Custom",
        ]),
        lease_ends: 1_800_000_000_000,
        confirmation: Bytes::from_static(br#"{"hub.mode":"subscribe"}"#),
        replay: vec![
            delivery("e1", "Patient-open", &[]),
            delivery("e2", "Encounter-open", &["Patient-open"]),
        ],
        epoch: 7,
        seq: 41,
        generation: 3,
        resume,
    }
}

fn assert_same_attachment(left: &Attachment, right: &Attachment) {
    assert_eq!(left.topic, right.topic);
    assert_eq!(left.topic.expose(), right.topic.expose());
    assert_eq!(spellings(&left.events), spellings(&right.events));
    assert_eq!(left.lease_ends, right.lease_ends);
    assert_eq!(left.confirmation, right.confirmation);
    assert_same_deliveries(&left.replay, &right.replay);
    assert_eq!(
        (left.epoch, left.seq, left.generation, left.resume),
        (right.epoch, right.seq, right.generation, right.resume)
    );
}

fn attach_round_trip(outcome: AttachOutcome) -> AttachOutcome {
    through_bytes(&v1::AttachResponse::from(outcome))
        .into_domain(&key())
        .expect("valid attach response")
}

#[test]
fn positions_round_trip() {
    for position in [
        Position { epoch: 0, seq: 0 },
        Position {
            epoch: 9,
            seq: u64::MAX,
        },
    ] {
        assert_eq!(
            Position::from(through_bytes(&v1::Position::from(position))),
            position
        );
    }
}

#[test]
fn attachments_round_trip() {
    for resume in [None, Some(Position { epoch: 7, seq: 40 })] {
        let sent = attachment(resume);
        let AttachOutcome::Attached(received) =
            attach_round_trip(AttachOutcome::Attached(sent.clone()))
        else {
            panic!("an attachment comes back as one");
        };
        assert_same_attachment(&received, &sent);
    }
}

#[test]
fn every_end_reason_round_trips() {
    for reason in END_REASONS {
        let denial = Bytes::from(format!(r#"{{"hub.reason":"{}"}}"#, reason.denial_reason()));
        let outcome = attach_round_trip(AttachOutcome::Ended {
            denial: denial.clone(),
            reason,
        });
        let AttachOutcome::Ended {
            denial: received_denial,
            reason: received_reason,
        } = outcome
        else {
            panic!("an ended outcome comes back as one");
        };
        assert_eq!((received_denial, received_reason), (denial, reason));
    }
}

#[test]
fn attach_responses_missing_or_bad_fields_are_refused() {
    assert_eq!(
        v1::AttachResponse::default()
            .into_domain(&key())
            .expect_err("no outcome"),
        WireError::Missing("AttachResponse.outcome")
    );

    let ended = |reason: i32| v1::AttachResponse {
        outcome: Some(v1::attach_response::Outcome::Ended(v1::Ended {
            denial: Bytes::new(),
            reason,
        })),
    };
    assert_eq!(
        ended(0).into_domain(&key()).expect_err("unset reason"),
        WireError::Missing("Ended.reason")
    );
    assert!(matches!(
        ended(99).into_domain(&key()),
        Err(WireError::Invalid {
            field: "Ended.reason",
            ..
        })
    ));

    let attached = v1::Attachment::from(attachment(None));

    let mut foreign = attached.clone();
    foreign.topic_ref = other_topic().topic_ref().as_str().to_owned();
    assert_eq!(
        foreign.into_domain(&key()).expect_err("foreign ref"),
        WireError::TopicRefMismatch("Attachment.topic_ref")
    );
    assert_eq!(
        attached
            .clone()
            .into_domain(&TopicKey::new(b"another deployment"))
            .expect_err("other key"),
        WireError::TopicRefMismatch("Attachment.topic_ref")
    );

    let mut bad_replay = attached.clone();
    bad_replay.replay[1]
        .suppressed_by
        .push("Nonsense-open".to_owned());
    assert!(matches!(
        bad_replay.into_domain(&key()),
        Err(WireError::Invalid {
            field: "Delivery.suppressed_by",
            ..
        })
    ));

    let mut bad_events = attached;
    bad_events.events = vec![String::new()];
    assert!(matches!(
        bad_events.into_domain(&key()),
        Err(WireError::Invalid {
            field: "Attachment.events",
            ..
        })
    ));
}

#[test]
fn attach_requests_round_trip_and_bad_addresses_are_refused() {
    let topic_ref = topic().topic_ref().clone();
    let endpoint = EndpointId::generate();
    let request = through_bytes(&v1::AttachRequest::new(&topic_ref, &endpoint, "gw-1"));
    assert_eq!(
        request.clone().into_parts(),
        Ok((topic_ref, endpoint, "gw-1".to_owned()))
    );

    let mut anonymous = request.clone();
    anonymous.gateway.clear();
    assert!(matches!(
        anonymous.into_parts(),
        Err(WireError::Invalid {
            field: "AttachRequest.gateway",
            ..
        })
    ));

    let mut bad = request.clone();
    bad.endpoint.pop();
    assert!(matches!(
        bad.into_parts(),
        Err(WireError::Invalid {
            field: "AttachRequest.endpoint",
            ..
        })
    ));
    let mut bad = request;
    bad.topic_ref.clear();
    assert_eq!(
        bad.into_parts(),
        Err(WireError::Missing("AttachRequest.topic_ref"))
    );
}
