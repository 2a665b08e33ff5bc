use bytes::Bytes;
use serde_json::{Value, json};

use super::*;
use crate::event_name::EventName;
use crate::hub::Owner;
use crate::wire::fixtures::{key, through_bytes, topic};

fn patient_open(version_id: Option<&str>) -> EventRequest {
    EventRequest {
        id: "q9v3jubddqt63n1".to_owned(),
        timestamp: "2018-01-08T01:37:05.14".to_owned(),
        topic: topic().expose().to_owned(),
        name: EventName::parse("patient-OPEN").expect("valid name"),
        // Key order is kept exactly as sent: `resource` before `key`.
        context: vec![json!({
            "resource": {"resourceType": "Patient", "id": "p1", "name": [{"text": "Ünïcode"}]},
            "key": "patient"
        })],
        version_id: version_id.map(str::to_owned),
    }
}

fn poster() -> Caller {
    Caller {
        owner: Owner {
            client_id: Some("acme-viewer".to_owned()),
            subject: None,
        },
        minted_for: Some("dr-who".to_owned()),
    }
}

#[test]
fn publish_requests_round_trip() {
    for version_id in [None, Some("v7")] {
        let event = patient_open(version_id);
        let request = through_bytes(&v1::PublishRequest::new(&topic(), event.clone(), poster()));
        let (received_topic, received, received_poster) =
            request.into_parts(&key()).expect("valid request");
        assert_eq!(received_topic, topic());
        assert_eq!(received, event);
        assert_eq!(received.name.as_str(), "Patient-open");
        assert_eq!(
            serde_json::to_string(&received.context).expect("json"),
            serde_json::to_string(&event.context).expect("json")
        );
        assert_eq!(received_poster, poster());
    }
}

#[test]
fn publish_requests_missing_or_bad_fields_are_refused() {
    let valid = v1::PublishRequest::new(&topic(), patient_open(None), poster());
    let refused = |edit: &dyn Fn(&mut v1::PublishRequest)| {
        let mut request = valid.clone();
        edit(&mut request);
        request.into_parts(&key()).expect_err("refused")
    };
    let edit_event = |edit: &dyn Fn(&mut v1::EventRequest)| {
        refused(&|request: &mut v1::PublishRequest| {
            if let Some(event) = request.event.as_mut() {
                edit(event);
            }
        })
    };

    assert_eq!(
        refused(&|r| r.event = None),
        WireError::Missing("PublishRequest.event")
    );
    assert_eq!(
        refused(&|r| r.poster = None),
        WireError::Missing("PublishRequest.poster")
    );
    assert_eq!(
        edit_event(&|e| e.id.clear()),
        WireError::Missing("EventRequest.id")
    );
    assert_eq!(
        edit_event(&|e| e.timestamp.clear()),
        WireError::Missing("EventRequest.timestamp")
    );
    assert_eq!(
        edit_event(&|e| e.topic.clear()),
        WireError::Missing("EventRequest.topic")
    );
    assert_eq!(
        edit_event(&|e| e.context = Bytes::new()),
        WireError::Missing("EventRequest.context")
    );
    for context in [&b"{\"key\":\"patient\"}"[..], b"[{", b"\xff\xfe", b"null"] {
        assert!(matches!(
            edit_event(&|e| e.context = Bytes::copy_from_slice(context)),
            WireError::Invalid {
                field: "EventRequest.context",
                ..
            }
        ));
    }
    assert!(matches!(
        edit_event(&|e| e.name = "patient".to_owned()),
        WireError::Invalid {
            field: "EventRequest.name",
            ..
        }
    ));
}

#[test]
fn publish_outcomes_round_trip() {
    for published in [
        Published::Accepted { seq: 0 },
        Published::Accepted { seq: 42 },
        Published::Duplicate,
    ] {
        let response = through_bytes(&v1::PublishResponse::from(published));
        assert_eq!(Published::try_from(response), Ok(published));
    }
    assert_eq!(
        Published::try_from(v1::PublishResponse::default()),
        Err(WireError::Missing("PublishResponse.outcome"))
    );
}

#[test]
fn current_contexts_round_trip() {
    let open = CurrentContext {
        event_name: Some(EventName::parse("Patient-open").expect("valid name")),
        version_id: "v3".to_owned(),
        context: patient_open(None).context,
    };
    for current in [open.emptied(), open] {
        let request = through_bytes(&v1::CurrentContextRequest::new(&topic(), poster()));
        assert_eq!(request.into_parts(&key()), Ok((topic(), poster())));
        let response = through_bytes(&v1::CurrentContextResponse::from(current.clone()));
        assert_eq!(CurrentContext::try_from(response), Ok(current));
    }
}

#[test]
fn current_contexts_missing_or_bad_fields_are_refused() {
    let valid = v1::CurrentContextResponse::from(CurrentContext {
        event_name: None,
        version_id: String::new(),
        context: Vec::<Value>::new(),
    });
    assert_eq!(valid.context, Bytes::from_static(b"[]"));

    let mut response = valid.clone();
    response.event_name = Some("Patient-reopen".to_owned());
    assert!(matches!(
        CurrentContext::try_from(response),
        Err(WireError::Invalid {
            field: "CurrentContextResponse.event_name",
            ..
        })
    ));
    let mut response = valid;
    response.context = Bytes::new();
    assert_eq!(
        CurrentContext::try_from(response),
        Err(WireError::Missing("CurrentContextResponse.context"))
    );
    assert_eq!(
        v1::CurrentContextRequest::default().into_parts(&key()),
        Err(WireError::Missing("CurrentContextRequest.topic"))
    );
}
