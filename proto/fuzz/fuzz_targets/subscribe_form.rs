//! FUZ-2 `subscribe_form`: raw `application/x-www-form-urlencoded` bodies through
//! `SubscriptionRequest::from_form`, the parser behind `POST {hub.url}` with a form.
//!
//! Oracles, for every accepted body, against an independent decoding of the form (written
//! here from the WHATWG urlencoded rules): every name appears once; `hub.channel.type` is
//! `websocket` in some case and `hub.mode` is `subscribe` or `unsubscribe`; `hub.topic` is
//! 16 to 256 URL-safe characters; a lease is one to ten digits and positive; an
//! unsubscribe names an endpoint; the request holds what the form said. Then the request,
//! written back as the canonical form, parses to the same request with no leniency.

#![no_main]

use libfuzzer_sys::fuzz_target;

use fhircast_proto::limits::Limits;
use fhircast_proto::subscription::{Mode, SubscriptionRequest};

/// Decodes a form body the WHATWG way: `&`-separated, empty pieces skipped, split at the
/// first `=`, `+` is a space, `%XX` is a byte (a malformed escape stays as written), then
/// UTF-8 with replacement characters.
fn decode_form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(piece: &[u8]) -> String {
        let mut bytes = Vec::with_capacity(piece.len());
        let mut i = 0;
        while i < piece.len() {
            let hex = |at: usize| piece.get(at).and_then(|b| char::from(*b).to_digit(16));
            match piece[i] {
                b'+' => bytes.push(b' '),
                b'%' => match (hex(i + 1), hex(i + 2)) {
                    (Some(high), Some(low)) => {
                        bytes.push(u8::try_from(high * 16 + low).expect("two hex digits"));
                        i += 2;
                    }
                    _ => bytes.push(b'%'),
                },
                other => bytes.push(other),
            }
            i += 1;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
    body.split(|b| *b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.iter().position(|b| *b == b'=') {
            Some(at) => (decode(&piece[..at]), decode(&piece[at + 1..])),
            None => (decode(piece), String::new()),
        })
        .collect()
}

fn is_topic(topic: &str) -> bool {
    (16..=256).contains(&topic.len())
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
}

/// Writes the request as the plain STU3 form.
fn canonical_form(request: &SubscriptionRequest) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("hub.channel.type", "websocket");
    form.append_pair(
        "hub.mode",
        match request.mode {
            Mode::Subscribe => "subscribe",
            Mode::Unsubscribe => "unsubscribe",
        },
    );
    form.append_pair("hub.topic", &request.topic);
    if !request.events.is_empty() {
        let names: Vec<&str> = request.events.iter().map(|e| e.as_str()).collect();
        form.append_pair("hub.events", &names.join(","));
    }
    if let Some(lease) = request.lease_seconds {
        form.append_pair("hub.lease_seconds", &lease.to_string());
    }
    if let Some(endpoint) = &request.endpoint {
        form.append_pair("hub.channel.endpoint", endpoint);
    }
    if let Some(name) = &request.subscriber_name {
        form.append_pair("subscriber.name", name);
    }
    form.finish()
}

fuzz_target!(|body: &[u8]| {
    let Ok(request) = SubscriptionRequest::from_form(body, &Limits::DEFAULT) else {
        return;
    };
    assert!(
        std::str::from_utf8(body).is_ok(),
        "accepted a body that is not UTF-8"
    );
    let params = decode_form(body);
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    for (at, (name, value)) in params.iter().enumerate() {
        assert!(
            params[..at].iter().all(|(seen, _)| seen != name),
            "accepted {name:?} twice"
        );
        assert!(!format!("{name}{value}").contains('\u{FFFD}'));
    }
    let channel = get("hub.channel.type").expect("accepted without hub.channel.type");
    assert!(
        channel.eq_ignore_ascii_case("websocket"),
        "channel {channel:?}"
    );
    let mode = get("hub.mode").expect("accepted without hub.mode");
    let expected_mode = match mode {
        "subscribe" => Mode::Subscribe,
        "unsubscribe" => Mode::Unsubscribe,
        other => panic!("accepted hub.mode {other:?}"),
    };
    assert_eq!(request.mode, expected_mode);
    let topic = get("hub.topic").expect("accepted without hub.topic");
    assert!(is_topic(topic), "accepted hub.topic {topic:?}");
    assert_eq!(request.topic, topic);
    assert_eq!(request.subscriber_name.as_deref(), get("subscriber.name"));
    if let Some(name) = &request.subscriber_name {
        assert!(name.chars().count() <= 256 && !name.chars().any(char::is_control));
    }
    match request.mode {
        Mode::Subscribe => {
            assert!(get("hub.events").is_some());
            assert!((1..=64).contains(&request.events.len()));
            let lease = get("hub.lease_seconds");
            if let Some(text) = lease {
                assert!(
                    (1..=10).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()),
                    "accepted hub.lease_seconds {text:?}"
                );
            }
            assert_eq!(
                request.lease_seconds,
                lease.map(|t| t.parse().expect("digits"))
            );
            assert_ne!(request.lease_seconds, Some(0));
            let endpoint = get("hub.channel.endpoint")
                .map(str::trim)
                .filter(|e| !e.is_empty());
            assert_eq!(request.endpoint.as_deref(), endpoint);
        }
        Mode::Unsubscribe => {
            assert!(request.events.is_empty() && request.lease_seconds.is_none());
            let endpoint = [get("hub.channel.endpoint"), get("endpoint")]
                .into_iter()
                .flatten()
                .map(str::trim)
                .find(|e| !e.is_empty());
            assert!(endpoint.is_some(), "an unsubscribe without an endpoint");
            assert_eq!(request.endpoint.as_deref(), endpoint);
        }
    }

    let form = canonical_form(&request);
    let again = SubscriptionRequest::from_form(form.as_bytes(), &Limits::DEFAULT)
        .unwrap_or_else(|err| panic!("the canonical form {form:?} is refused: {err}"));
    assert!(again.leniencies.is_empty(), "{:?}", again.leniencies);
    let spellings = |r: &SubscriptionRequest| -> Vec<String> {
        r.events.iter().map(|e| e.as_str().to_owned()).collect()
    };
    assert_eq!(spellings(&again), spellings(&request));
    assert_eq!(
        SubscriptionRequest {
            leniencies: Vec::new(),
            ..request
        },
        again
    );
});
