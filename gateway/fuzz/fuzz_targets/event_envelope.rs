//! FUZ-3 `event_envelope`: event request bodies, as JSON bytes, through the gateway's real
//! path up to the publish: `parse_strict` (depth cap, duplicate members), then
//! `check_event` (envelope, context, topic strength and binding by claim, write scope) for a
//! token bound to one topic, without a URL topic, with the same one, and with another.
//!
//! Oracles: no panic; the strict parse accepts exactly what an independent reading calls
//! JSON without duplicate members and within the depth cap; an accepted event carries the
//! authorised topic (and never passes under another URL topic), and keeps the size caps on
//! `id`, `timestamp`, the event name and the context.

#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

use fhircast_proto::event::EVENT_ID_MAX_LEN;
use fhircast_proto::event_name::EVENT_NAME_MAX_LEN;
use fhircast_proto::json::{MAX_JSON_DEPTH, parse_strict};
use fhircast_proto::limits::Limits;
use fhircast_proto::scope::ScopeSet;
use fhircast_proto::validate::MAX_CONTEXT_ITEMS;
use gateway::auth::Principal;
use gateway::http::{TopicBinding, check_event};
use gateway_fuzz::json_facts;

const AUTHORISED_TOPIC: &str = "fdb2f928-5546-4f52-87a0-0648e9ded065";
const OTHER_TOPIC: &str = "0f3c7a3e-8a1b-4c55-9d57-2b8e5e6b1a77";
const MAX_TIMESTAMP_LEN: usize = 64;

fuzz_target!(|bytes: &[u8]| {
    let strict = parse_strict(bytes, MAX_JSON_DEPTH);
    let facts = json_facts(bytes);
    let acceptable =
        facts.is_some_and(|facts| !facts.duplicate_member && facts.depth <= MAX_JSON_DEPTH);
    match (&strict, acceptable) {
        (Ok(_), false) => panic!("the strict parse accepts what the reference reads as {facts:?}"),
        (Err(err), true) => panic!("the strict parse refuses ({err}) JSON read as {facts:?}"),
        _ => {}
    }
    let Ok(body) = strict else {
        return;
    };

    let principal = Principal {
        subject: None,
        client_id: None,
        scopes: ScopeSet::parse("fhircast/*.write"),
        topics: vec![AUTHORISED_TOPIC.to_owned()],
        expires_at: SystemTime::now() + Duration::from_secs(3600),
    };
    let now = SystemTime::now();
    for route in [None, Some(AUTHORISED_TOPIC), Some(OTHER_TOPIC)] {
        let Ok((event, _)) = check_event(
            &body,
            &principal,
            TopicBinding::default(),
            route,
            &Limits::DEFAULT,
            now,
        ) else {
            continue;
        };
        assert_ne!(route, Some(OTHER_TOPIC), "accepted under another URL topic");
        assert_eq!(event.topic, AUTHORISED_TOPIC);
        assert_eq!(
            body.pointer("/event/hub.topic"),
            Some(&Value::from(AUTHORISED_TOPIC))
        );
        assert_eq!(body.get("id"), Some(&Value::from(event.id.as_str())));
        assert!(event.id.len() <= EVENT_ID_MAX_LEN);
        assert!(event.timestamp.len() <= MAX_TIMESTAMP_LEN);
        assert!(event.name.as_str().len() <= EVENT_NAME_MAX_LEN);
        assert!(event.context.len() <= MAX_CONTEXT_ITEMS);
    }
});
