use super::*;
use crate::wire::fixtures::{through_bytes, topic};

const FAILURES: [SyncFailure; 5] = [
    SyncFailure::Refused(409),
    SyncFailure::NotDelivered(503),
    SyncFailure::UnexpectedStatus(302),
    SyncFailure::Timeout,
    SyncFailure::ConnectionLost(1006),
];

fn detach_reasons() -> Vec<DetachReason> {
    vec![
        DetachReason::ClientClosed {
            code: 1006,
            last_event: Some(("e1".to_owned(), "Patient-open".to_owned())),
        },
        DetachReason::ClientClosed {
            code: 1005,
            last_event: None,
        },
        DetachReason::HubClosed,
    ]
}

#[test]
fn every_sync_failure_round_trips() {
    for failure in FAILURES {
        let back = SyncFailure::try_from(through_bytes(&v1::SyncFailure::from(failure)));
        assert_eq!(back, Ok(failure));
    }
}

#[test]
fn sync_failures_out_of_range_or_unset_are_refused() {
    use v1::sync_failure::Kind;
    let too_big = u32::from(u16::MAX) + 1;
    for (kind, field) in [
        (Kind::Refused(too_big), "SyncFailure.refused"),
        (Kind::NotDelivered(too_big), "SyncFailure.not_delivered"),
        (
            Kind::UnexpectedStatus(too_big),
            "SyncFailure.unexpected_status",
        ),
        (Kind::ConnectionLost(too_big), "SyncFailure.connection_lost"),
    ] {
        let failure = v1::SyncFailure { kind: Some(kind) };
        assert!(matches!(
            SyncFailure::try_from(failure),
            Err(WireError::Invalid { field: got, .. }) if got == field
        ));
    }
    assert_eq!(
        SyncFailure::try_from(v1::SyncFailure::default()),
        Err(WireError::Missing("SyncFailure.kind"))
    );
}

#[test]
fn report_failure_requests_round_trip() {
    let topic_ref = topic().topic_ref().clone();
    let endpoint = EndpointId::generate();
    for (consecutive_timeouts, failure) in (0..).zip(FAILURES) {
        let report = DeliveryFailure {
            event_id: format!("e{consecutive_timeouts}"),
            event_name: "Patient-open".to_owned(),
            failure,
            consecutive_timeouts,
        };
        let request = through_bytes(&v1::ReportFailureRequest::new(
            &topic_ref,
            &endpoint,
            report.clone(),
        ));
        assert_eq!(
            request.into_parts(),
            Ok((topic_ref.clone(), endpoint.clone(), report))
        );
    }
}

#[test]
fn report_failure_requests_missing_or_bad_fields_are_refused() {
    let valid = v1::ReportFailureRequest::new(
        topic().topic_ref(),
        &EndpointId::generate(),
        DeliveryFailure {
            event_id: "e1".to_owned(),
            event_name: "Patient-open".to_owned(),
            failure: SyncFailure::Timeout,
            consecutive_timeouts: 1,
        },
    );

    let mut request = valid.clone();
    request.report = None;
    assert_eq!(
        request.into_parts(),
        Err(WireError::Missing("ReportFailureRequest.report"))
    );

    let mut request = valid.clone();
    if let Some(report) = request.report.as_mut() {
        report.failure = None;
    }
    assert_eq!(
        request.into_parts(),
        Err(WireError::Missing("DeliveryFailure.failure"))
    );

    let mut request = valid;
    request.endpoint = "e:abcdefgh".to_owned();
    assert!(matches!(
        request.into_parts(),
        Err(WireError::Invalid {
            field: "ReportFailureRequest.endpoint",
            ..
        })
    ));
}

#[test]
fn every_detach_reason_round_trips() {
    for resume in [None, Some(crate::hub::Position { epoch: 2, seq: 17 })] {
        for (generation, reason) in (1..).zip(detach_reasons()) {
            let detach = Detach {
                generation,
                reason,
                resume,
            };
            let topic_ref = topic().topic_ref().clone();
            let endpoint = EndpointId::generate();
            let request = through_bytes(&v1::DetachRequest::new(
                &topic_ref,
                &endpoint,
                detach.clone(),
            ));
            assert_eq!(request.into_parts(), Ok((topic_ref, endpoint, detach)));
        }
    }
}

#[test]
fn detach_requests_missing_or_bad_fields_are_refused() {
    let valid = v1::DetachRequest::new(
        topic().topic_ref(),
        &EndpointId::generate(),
        Detach {
            generation: 1,
            reason: DetachReason::HubClosed,
            resume: None,
        },
    );

    let mut request = valid.clone();
    request.detach = None;
    assert_eq!(
        request.into_parts(),
        Err(WireError::Missing("DetachRequest.detach"))
    );

    let mut request = valid.clone();
    if let Some(detach) = request.detach.as_mut() {
        detach.reason = None;
    }
    assert_eq!(
        request.into_parts(),
        Err(WireError::Missing("Detach.reason"))
    );

    let mut request = valid.clone();
    if let Some(detach) = request.detach.as_mut() {
        detach.reason = Some(v1::DetachReason::default());
    }
    assert_eq!(
        request.into_parts(),
        Err(WireError::Missing("DetachReason.kind"))
    );

    let mut request = valid.clone();
    if let Some(detach) = request.detach.as_mut() {
        detach.reason = Some(v1::DetachReason {
            kind: Some(v1::detach_reason::Kind::ClientClosed(v1::ClientClosed {
                code: 70_000,
                last_event: None,
            })),
        });
    }
    assert!(matches!(
        request.into_parts(),
        Err(WireError::Invalid {
            field: "ClientClosed.code",
            ..
        })
    ));

    let mut request = valid;
    request.topic_ref = topic().expose().to_owned();
    assert!(matches!(
        request.into_parts(),
        Err(WireError::Invalid {
            field: "DetachRequest.topic_ref",
            ..
        })
    ));
}
