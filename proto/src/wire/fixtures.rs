//! Values the wire tests share: a deployment key, a topic, event names, deliveries, and
//! the checks that compare domain values without `PartialEq`.

use bytes::Bytes;
use prost::Message;

use crate::bus::Delivery;
use crate::event_name::EventName;
use crate::ids::{TopicId, TopicKey};

/// The deployment key every test node and gateway shares.
pub(super) fn key() -> TopicKey {
    TopicKey::new(b"wire-tests")
}

/// A topic valid under [`key`].
pub(super) fn topic() -> TopicId {
    TopicId::parse("fdb2f928-5546-4f52-87a0-0648e9ded065", &key()).expect("valid topic")
}

/// Another topic valid under [`key`].
pub(super) fn other_topic() -> TopicId {
    TopicId::parse("another-topic-0123456789", &key()).expect("valid topic")
}

/// Parses event names.
pub(super) fn names(raw: &[&str]) -> Vec<EventName> {
    raw.iter()
        .map(|name| EventName::parse(name).expect("valid event name"))
        .collect()
}

/// A delivery of `name` suppressed by `suppressed_by`.
pub(super) fn delivery(event_id: &str, name: &str, suppressed_by: &[&str]) -> Delivery {
    Delivery {
        event_id: event_id.into(),
        name: EventName::parse(name).expect("valid event name"),
        suppressed_by: names(suppressed_by),
        frame: Bytes::from(format!(r#"{{"id":"{event_id}","event":"{name}"}}"#)),
    }
}

/// Sends a message through its encoding, as the transport does.
pub(super) fn through_bytes<M: Message + Default>(message: &M) -> M {
    M::decode(message.encode_to_vec().as_slice()).expect("a message decodes from its encoding")
}

/// Asserts that two delivery lists are the same, field by field (including the name's
/// spelling, which `EventName` equality ignores).
pub(super) fn assert_same_deliveries(left: &[Delivery], right: &[Delivery]) {
    assert_eq!(left.len(), right.len());
    for (left, right) in left.iter().zip(right) {
        assert_eq!(left.event_id, right.event_id);
        assert_eq!(left.name.as_str(), right.name.as_str());
        assert_eq!(
            spellings(&left.suppressed_by),
            spellings(&right.suppressed_by)
        );
        assert_eq!(left.frame, right.frame);
    }
}

/// Returns names as spelled.
pub(super) fn spellings(names: &[EventName]) -> Vec<&str> {
    names.iter().map(EventName::as_str).collect()
}
