//! Messages of the WebSocket channel other than event notifications (2-4 Subscribing,
//! 2-5 Receive Event Notification): the hub's confirmation and denial, and the
//! subscriber's acknowledgement `{"id","status"}`.

use bytes::Bytes;
use serde::Serialize;

use crate::event_name::EventName;

mod ack;

pub use ack::{AckRef, parse_ack_ref};

/// Joins event names as `hub.events` spells them.
pub fn join_events(events: &[EventName]) -> String {
    events
        .iter()
        .map(EventName::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Serialize)]
struct Confirmation<'a> {
    #[serde(rename = "hub.mode")]
    mode: &'a str,
    #[serde(rename = "hub.topic")]
    topic: &'a str,
    #[serde(rename = "hub.events")]
    events: String,
    #[serde(rename = "hub.lease_seconds")]
    lease_seconds: u64,
}

/// Encodes a subscription confirmation.
pub fn confirmation(topic: &str, events: &[EventName], lease_seconds: u64) -> Bytes {
    encode(&Confirmation {
        mode: "subscribe",
        topic,
        events: join_events(events),
        lease_seconds,
    })
}

#[derive(Serialize)]
struct Denial<'a> {
    #[serde(rename = "hub.mode")]
    mode: &'a str,
    #[serde(rename = "hub.topic")]
    topic: &'a str,
    #[serde(rename = "hub.events")]
    events: String,
    #[serde(rename = "hub.reason")]
    reason: &'a str,
}

/// Encodes a subscription denial.
pub fn denial(topic: &str, events: &[EventName], reason: &str) -> Bytes {
    encode(&Denial {
        mode: "denied",
        topic,
        events: join_events(events),
        reason,
    })
}

fn encode<T: Serialize>(message: &T) -> Bytes {
    // Plain structs of strings and integers always serialise.
    Bytes::from(serde_json::to_vec(message).unwrap_or_default())
}

/// A subscriber's answer to a notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The notification's id.
    pub id: String,
    /// The HTTP-like status (number, or numeric string on the wire).
    pub status: u16,
    /// True when the frame carried no `status` and 200 was assumed (the Medplum SDK
    /// answers `{"id","timestamp"}`): a leniency, logged at debug by the caller.
    pub status_implied: bool,
}

impl Ack {
    /// Returns true for a 2xx status: the subscriber took the event (2-5: "2xx = success,
    /// anything else = failure"; 202 means it will decide later and send a SyncError if
    /// it refuses).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Parses an acknowledgement frame; anything else is `None` (2-5 allows only responses
/// on the channel, so other frames are ignored). A frame with an `id` and no `status`
/// counts as 200; a `status` that is not a number from 100 to 599 (or such a number in a
/// string) makes the frame malformed.
pub fn parse_ack(frame: &[u8]) -> Option<Ack> {
    parse_ack_ref(frame).map(AckRef::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_accept_numbers_and_numeric_strings() {
        let expected = Some(Ack {
            id: "e1".into(),
            status: 409,
            status_implied: false,
        });
        assert_eq!(parse_ack(br#"{"id":"e1","status":409}"#), expected);
        assert_eq!(parse_ack(br#"{"id":"e1","status":"409"}"#), expected);
        for bogus in [
            &br#"{"id":"e1","status":"abc"}"#[..],
            b"not json",
            br#"{"status":200}"#,
            br#"{"id":"e","status":99999}"#,
            br#"{"id":"e","status":null}"#,
            br#"{"id":7,"status":200}"#,
        ] {
            assert_eq!(parse_ack(bogus), None);
        }
    }

    #[test]
    fn an_ack_without_status_counts_as_200() {
        // What the Medplum SDK sends.
        let ack =
            parse_ack(br#"{"id":"e1","timestamp":"2024-01-01T00:00:00Z"}"#).expect("lenient ack");
        assert_eq!(ack.status, 200);
        assert!(ack.status_implied && ack.is_success());
    }

    #[test]
    fn only_2xx_is_success() {
        let status = |status: u16| Ack {
            id: "e".into(),
            status,
            status_implied: false,
        };
        for ok in [200, 202, 204, 299] {
            assert!(status(ok).is_success(), "{ok}");
        }
        for failure in [100, 101, 199, 300, 302, 399, 400, 409, 500, 599] {
            assert!(!status(failure).is_success(), "{failure}");
        }
    }

    #[test]
    fn confirmation_has_the_spec_members() {
        let events = [EventName::parse("Patient-open").expect("valid")];
        let frame = confirmation("t", &events, 7200);
        assert_eq!(
            std::str::from_utf8(&frame).expect("utf8"),
            r#"{"hub.mode":"subscribe","hub.topic":"t","hub.events":"Patient-open","hub.lease_seconds":7200}"#
        );
    }
}
