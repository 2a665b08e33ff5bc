use tonic::codegen::http::HeaderMap;
use tonic::metadata::MetadataValue;

use super::*;

const CODES: [ErrorCode; 10] = [
    ErrorCode::BadRequest,
    ErrorCode::Unauthorized,
    ErrorCode::Forbidden,
    ErrorCode::NotFound,
    ErrorCode::Conflict,
    ErrorCode::PayloadTooLarge,
    ErrorCode::UnsupportedMediaType,
    ErrorCode::Overloaded,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];

/// Every failure, with the status code it travels as.
fn failures() -> Vec<(TopicError, Code)> {
    let rejected = |code, status| {
        (
            TopicError::Rejected(ValidationError::with_code(
                code,
                "ünïcode reason: \"quoted\"\n",
            )),
            status,
        )
    };
    vec![
        rejected(ErrorCode::BadRequest, Code::InvalidArgument),
        rejected(ErrorCode::Unauthorized, Code::Unauthenticated),
        rejected(ErrorCode::Forbidden, Code::PermissionDenied),
        rejected(ErrorCode::NotFound, Code::NotFound),
        rejected(ErrorCode::Conflict, Code::FailedPrecondition),
        rejected(ErrorCode::PayloadTooLarge, Code::InvalidArgument),
        rejected(ErrorCode::UnsupportedMediaType, Code::InvalidArgument),
        rejected(ErrorCode::Overloaded, Code::ResourceExhausted),
        rejected(ErrorCode::Unavailable, Code::Unavailable),
        rejected(ErrorCode::Internal, Code::Internal),
        (TopicError::UnknownEndpoint, Code::NotFound),
        (TopicError::EndpointInUse, Code::AlreadyExists),
        (TopicError::Overloaded, Code::ResourceExhausted),
        (TopicError::Stopped, Code::Unavailable),
        (TopicError::Unavailable, Code::Unavailable),
        (
            TopicError::NotOwner {
                holder: "hub-node-2".to_owned(),
            },
            Code::FailedPrecondition,
        ),
    ]
}

/// Sends a status through the HTTP/2 trailers it travels in.
fn through_trailers(status: &Status) -> Status {
    let mut trailers = HeaderMap::new();
    status
        .add_header(&mut trailers)
        .expect("a status fits in trailers");
    Status::from_header_map(&trailers).expect("trailers hold a status")
}

#[test]
fn every_failure_survives_the_status_round_trip() {
    let failures = failures();
    assert_eq!(
        failures
            .iter()
            .filter(|(err, _)| matches!(err, TopicError::Rejected(_)))
            .count(),
        CODES.len()
    );
    for (err, code) in failures {
        let status = Status::from(err.clone());
        assert_eq!(status.code(), code, "{err:?}");
        assert_eq!(status.code(), status_code(&err));
        assert_eq!(status.message(), err.to_string());
        assert_eq!(TopicError::from(&status), err);
        assert_eq!(TopicError::from(through_trailers(&status)), err);
    }
}

#[test]
fn not_owner_is_unavailable_to_apps() {
    let err = TopicError::NotOwner {
        holder: "hub-node-2".to_owned(),
    };
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert_eq!(err.to_string(), "another hub node owns the topic");
}

#[test]
fn foreign_statuses_are_unavailable() {
    let mut garbage = Status::internal("boom");
    garbage.metadata_mut().insert_bin(
        ERROR_METADATA_KEY,
        MetadataValue::from_bytes(&[0xff, 0xff, 0xff]),
    );
    let mut empty_detail = Status::not_found("gone");
    empty_detail
        .metadata_mut()
        .insert_bin(ERROR_METADATA_KEY, MetadataValue::from_bytes(&[]));
    let mut unset_code = Status::invalid_argument("bad");
    let detail = v1::TopicErrorDetail {
        kind: Some(v1::topic_error_detail::Kind::Rejected(v1::Rejected {
            code: 0,
            reason: "no code".to_owned(),
        })),
    };
    unset_code.metadata_mut().insert_bin(
        ERROR_METADATA_KEY,
        MetadataValue::from_bytes(&detail.encode_to_vec()),
    );
    let mut ascii_entry = Status::not_found("gone");
    ascii_entry.metadata_mut().insert(
        "x-fhircast-error",
        MetadataValue::from_static("unknown-endpoint"),
    );

    for status in [
        Status::unavailable("connection refused"),
        Status::deadline_exceeded("deadline"),
        Status::not_found("a proxy's 404"),
        Status::unknown("transport error"),
        Status::from(WireError::Missing("SubscribeRequest.command")),
        garbage,
        empty_detail,
        unset_code,
        ascii_entry,
    ] {
        assert_eq!(
            TopicError::from(&status),
            TopicError::Unavailable,
            "{status:?}"
        );
        assert_eq!(
            TopicError::from(through_trailers(&status)),
            TopicError::Unavailable
        );
    }
}

#[test]
fn error_details_refuse_unset_and_unknown_values() {
    assert_eq!(
        TopicError::try_from(v1::TopicErrorDetail::default()),
        Err(WireError::Missing("TopicErrorDetail.kind"))
    );
    let rejected = |code| v1::TopicErrorDetail {
        kind: Some(v1::topic_error_detail::Kind::Rejected(v1::Rejected {
            code,
            reason: String::new(),
        })),
    };
    assert_eq!(
        TopicError::try_from(rejected(0)),
        Err(WireError::Missing("Rejected.code"))
    );
    assert!(matches!(
        TopicError::try_from(rejected(42)),
        Err(WireError::Invalid {
            field: "Rejected.code",
            ..
        })
    ));
}
