use super::*;
use crate::wire::fixtures::{key, names, other_topic, spellings, through_bytes, topic};

fn owners() -> Vec<Owner> {
    let some = |value: &str| Some(value.to_owned());
    vec![
        Owner::default(),
        Owner {
            client_id: some("acme-viewer"),
            subject: None,
        },
        Owner {
            client_id: None,
            subject: some("dr-who"),
        },
        Owner {
            client_id: some("acme-viewer"),
            subject: some("dr-who"),
        },
    ]
}

fn command(endpoint: Option<EndpointId>, owner: Owner) -> SubscribeCommand {
    SubscribeCommand {
        events: names(&["Patient-open", "patient-CLOSE", "org.Example.My_event"]),
        lease_seconds: 3600,
        token_expires: 1_800_000_000_123,
        subscriber_name: owner.client_id.as_ref().map(|_| "Acme Viewer".to_owned()),
        endpoint,
        minted_for: owner.subject.clone(),
        owner,
    }
}

#[test]
fn owners_round_trip() {
    for owner in owners() {
        let back = Owner::from(through_bytes(&v1::Owner::from(owner.clone())));
        assert_eq!(back, owner);
    }
}

#[test]
fn subscribe_requests_round_trip() {
    for (endpoint, owner) in [None, Some(EndpointId::generate())]
        .into_iter()
        .zip(owners())
    {
        let sent = command(endpoint, owner);
        let request = through_bytes(&v1::SubscribeRequest::new(&topic(), sent.clone()));
        let (received_topic, received) = request.into_parts(&key()).expect("valid request");
        assert_eq!(received_topic, topic());
        assert_eq!(received_topic.expose(), topic().expose());
        assert_eq!(received, sent);
        // A proprietary name keeps the spelling it was published with.
        assert_eq!(spellings(&received.events), spellings(&sent.events));
    }
}

#[test]
fn subscribe_requests_missing_or_bad_fields_are_refused() {
    let valid = v1::SubscribeRequest::new(&topic(), command(None, Owner::default()));

    let mut request = valid.clone();
    request.command = None;
    assert_eq!(
        request.into_parts(&key()).expect_err("no command"),
        WireError::Missing("SubscribeRequest.command")
    );

    let mut request = valid.clone();
    if let Some(command) = request.command.as_mut() {
        command.owner = None;
    }
    assert_eq!(
        request.into_parts(&key()).expect_err("no owner"),
        WireError::Missing("SubscribeCommand.owner")
    );

    let mut request = valid.clone();
    if let Some(command) = request.command.as_mut() {
        command.events.push("Patient-explode".to_owned());
    }
    assert!(matches!(
        request.into_parts(&key()),
        Err(WireError::Invalid {
            field: "SubscribeCommand.events",
            ..
        })
    ));

    let mut request = valid.clone();
    if let Some(command) = request.command.as_mut() {
        command.endpoint = Some("../../etc/passwd".to_owned());
    }
    assert!(matches!(
        request.into_parts(&key()),
        Err(WireError::Invalid {
            field: "SubscribeCommand.endpoint",
            ..
        })
    ));

    let mut request = valid.clone();
    request.topic = "short".to_owned();
    assert!(matches!(
        request.into_parts(&key()),
        Err(WireError::Invalid {
            field: "SubscribeRequest.topic",
            ..
        })
    ));

    let mut request = valid;
    request.topic.clear();
    assert_eq!(
        request.into_parts(&key()).expect_err("no topic"),
        WireError::Missing("SubscribeRequest.topic")
    );
}

#[test]
fn subscribe_responses_round_trip_and_bad_endpoints_are_refused() {
    let endpoint = EndpointId::generate();
    let response = through_bytes(&v1::SubscribeResponse::from(endpoint.clone()));
    assert_eq!(EndpointId::try_from(response), Ok(endpoint.clone()));

    for bad in [
        "not-an-id",
        "../../etc/passwd",
        &format!("{}=", endpoint.expose()),
    ] {
        let response = v1::SubscribeResponse {
            endpoint: bad.to_owned(),
        };
        let err = EndpointId::try_from(response).expect_err("bad endpoint id");
        assert!(matches!(
            err,
            WireError::Invalid {
                field: "SubscribeResponse.endpoint",
                ..
            }
        ));
        assert!(!err.to_string().contains(bad), "{err}");
    }
    assert_eq!(
        EndpointId::try_from(v1::SubscribeResponse::default()),
        Err(WireError::Missing("SubscribeResponse.endpoint"))
    );
}

#[test]
fn unsubscribe_requests_round_trip() {
    let endpoint = EndpointId::generate();
    let caller = Caller {
        owner: Owner {
            client_id: Some("acme-viewer".to_owned()),
            subject: None,
        },
        minted_for: None,
    };
    let request = through_bytes(&v1::UnsubscribeRequest::new(
        &topic(),
        &endpoint,
        caller.clone(),
    ));
    assert_eq!(request.into_parts(&key()), Ok((topic(), endpoint, caller)));
}

#[test]
fn unsubscribe_requests_with_a_foreign_ref_are_refused() {
    let endpoint = EndpointId::generate();
    let valid = v1::UnsubscribeRequest::new(&topic(), &endpoint, Caller::default());

    let mut request = valid.clone();
    request.topic_ref = other_topic().topic_ref().as_str().to_owned();
    assert_eq!(
        request.into_parts(&key()),
        Err(WireError::TopicRefMismatch("UnsubscribeRequest.topic_ref"))
    );

    // A gateway configured with another deployment's key derives other refs.
    assert_eq!(
        valid
            .clone()
            .into_parts(&TopicKey::new(b"another deployment")),
        Err(WireError::TopicRefMismatch("UnsubscribeRequest.topic_ref"))
    );

    let mut request = valid.clone();
    request.topic_ref = "t:not-a-ref".to_owned();
    assert!(matches!(
        request.into_parts(&key()),
        Err(WireError::Invalid {
            field: "UnsubscribeRequest.topic_ref",
            ..
        })
    ));

    let mut request = valid;
    request.endpoint = "x".repeat(43);
    assert_eq!(
        request.clone().into_parts(&key()),
        Ok((
            topic(),
            EndpointId::parse(&"x".repeat(43)).expect("well formed"),
            Caller::default()
        ))
    );
    request.endpoint = "x".repeat(44);
    assert!(matches!(
        request.into_parts(&key()),
        Err(WireError::Invalid {
            field: "UnsubscribeRequest.endpoint",
            ..
        })
    ));
}

#[test]
fn resolve_endpoint_round_trips() {
    let endpoint = EndpointId::generate();
    let request = through_bytes(&v1::ResolveEndpointRequest::new(&endpoint));
    assert_eq!(request.into_parts(), Ok(endpoint));
    assert_eq!(
        v1::ResolveEndpointRequest::default().into_parts(),
        Err(WireError::Missing("ResolveEndpointRequest.endpoint"))
    );

    let topic_ref = topic().topic_ref().clone();
    let response = through_bytes(&v1::ResolveEndpointResponse::from(topic_ref.clone()));
    assert_eq!(TopicRef::try_from(response), Ok(topic_ref));
    let response = v1::ResolveEndpointResponse {
        topic_ref: topic().expose().to_owned(),
    };
    assert!(matches!(
        TopicRef::try_from(response),
        Err(WireError::Invalid {
            field: "ResolveEndpointResponse.topic_ref",
            ..
        })
    ));
}
