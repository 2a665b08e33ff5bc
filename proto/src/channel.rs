//! Messages of the WebSocket channel other than event notifications (2-4 Subscribing,
//! 2-5 Receive Event Notification): the hub's confirmation and denial, and the
//! subscriber's acknowledgement `{"id","status"}`.

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::event_name::EventName;

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
}

/// Parses an acknowledgement frame; anything else is `None` (2-5 allows only responses
/// on the channel, so other frames are ignored).
pub fn parse_ack(frame: &[u8]) -> Option<Ack> {
    let value = crate::json::parse_strict(frame, 8).ok()?;
    let id = value.get("id")?.as_str()?.to_owned();
    let status = match value.get("status")? {
        Value::Number(number) => number.as_u64()?,
        Value::String(text) => text.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    let status = u16::try_from(status)
        .ok()
        .filter(|s| (100..600).contains(s))?;
    Some(Ack { id, status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_accept_numbers_and_numeric_strings() {
        let expected = Some(Ack {
            id: "e1".into(),
            status: 409,
        });
        assert_eq!(parse_ack(br#"{"id":"e1","status":409}"#), expected);
        assert_eq!(parse_ack(br#"{"id":"e1","status":"409"}"#), expected);
        for bogus in [
            &br#"{"id":"e1","status":"abc"}"#[..],
            b"not json",
            br#"{"status":200}"#,
            br#"{"id":"e","status":99999}"#,
        ] {
            assert_eq!(parse_ack(bogus), None);
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
