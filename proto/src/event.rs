//! The FHIRcast event envelope (2-3 Events, 2-6 Send Event Notification): parsing an
//! event request from a subscriber, and encoding the notification the hub delivers.
//!
//! A request is parsed once at the edge into an [`EventRequest`] whose name is canonical
//! and whose context passed [`crate::validate`]; the context items themselves are kept as
//! the JSON the sender wrote, because the hub relays them unchanged (2-9: the context is
//! returned "as the open event supplied it").

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ValidationError;
use crate::event_name::EventName;
use crate::limits::Limits;
use crate::validate::validate_context;

/// Longest accepted event `id`.
pub const EVENT_ID_MAX_LEN: usize = 256;
/// How far in the future a `timestamp` may lie before it is refused as poisoned.
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(120);

/// A validated event request.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRequest {
    /// The sender's id, reused in the broadcast.
    pub id: String,
    /// The sender's timestamp, relayed as sent.
    pub timestamp: String,
    /// `event.hub.topic` as sent; the caller checks it against the route and the token.
    pub topic: String,
    /// The canonical event name.
    pub name: EventName,
    /// The context items, as sent.
    pub context: Vec<Value>,
    /// `context.versionId`, required on `*-update`.
    pub version_id: Option<String>,
}

impl EventRequest {
    /// Parses and validates an event request body (already parsed strictly as JSON) within
    /// `limits`.
    pub fn from_json(
        body: &Value,
        now: SystemTime,
        limits: &Limits,
    ) -> Result<Self, ValidationError> {
        let envelope = body
            .as_object()
            .ok_or_else(|| ValidationError::new("the event request must be a JSON object"))?;
        let id = required_string(envelope, "id")?;
        if id.len() > EVENT_ID_MAX_LEN {
            return Err(ValidationError::new(format!(
                "id is longer than {EVENT_ID_MAX_LEN} characters"
            )));
        }
        let timestamp = required_string(envelope, "timestamp")?;
        check_timestamp(&timestamp, now)?;
        let event = envelope
            .get("event")
            .ok_or_else(|| ValidationError::new("missing member \"event\""))?
            .as_object()
            .ok_or_else(|| ValidationError::new("\"event\" must be an object"))?;
        let topic = required_string(event, "hub.topic")?;
        let name = EventName::parse(&required_string(event, "hub.event")?)?;
        let context = match event.get("context") {
            Some(Value::Array(items)) => items.clone(),
            Some(_) => return Err(ValidationError::new("event.context must be an array")),
            None => return Err(ValidationError::new("missing member \"event.context\"")),
        };
        let version_id = match event.get("context.versionId") {
            None => None,
            Some(Value::String(version)) if !version.is_empty() => Some(version.clone()),
            Some(_) => {
                return Err(ValidationError::new(
                    "context.versionId must be a non-empty string",
                ));
            }
        };
        validate_context(&name, &context, limits)?;
        Ok(Self {
            id,
            timestamp,
            topic,
            name,
            context,
            version_id,
        })
    }
}

fn required_string(object: &Map<String, Value>, member: &str) -> Result<String, ValidationError> {
    match object.get(member) {
        Some(Value::String(value)) if !value.trim().is_empty() => Ok(value.clone()),
        Some(Value::String(_)) => Err(ValidationError::new(format!("{member} is empty"))),
        Some(_) => Err(ValidationError::new(format!("{member} must be a string"))),
        None => Err(ValidationError::new(format!("missing member {member:?}"))),
    }
}

/// Refuses timestamps far in the future (they would poison "latest" ordering); relays
/// every other timestamp as an opaque string, since the spec's own examples are not
/// valid ISO 8601.
fn check_timestamp(timestamp: &str, now: SystemTime) -> Result<(), ValidationError> {
    if timestamp.len() > 64 {
        return Err(ValidationError::new(
            "timestamp is longer than 64 characters",
        ));
    }
    let parsed = humantime::parse_rfc3339_weak(timestamp.trim_end_matches('Z'))
        .or_else(|_| humantime::parse_rfc3339(timestamp));
    match parsed {
        Ok(at) if at > now + MAX_FUTURE_SKEW => Err(ValidationError::new(
            "timestamp is more than 120 seconds in the future",
        )),
        _ => Ok(()),
    }
}

/// Returns the current time as RFC 3339 UTC with milliseconds, for hub-generated events.
pub fn timestamp_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// A notification as delivered on the WebSocket (2-5 Receive Event Notification).
#[derive(Clone, Debug, Serialize)]
pub struct Notification<'a> {
    /// When the event happened (the sender's timestamp for relayed events).
    pub timestamp: &'a str,
    /// The event id.
    pub id: &'a str,
    /// The event body.
    pub event: NotificationEvent<'a>,
}

/// The `event` member of a notification.
#[derive(Clone, Debug, Serialize)]
pub struct NotificationEvent<'a> {
    /// The topic.
    #[serde(rename = "hub.topic")]
    pub topic: &'a str,
    /// The canonical event name.
    #[serde(rename = "hub.event")]
    pub name: &'a str,
    /// The context items.
    pub context: &'a [Value],
    /// The anchor's version after this event, when it has one.
    #[serde(rename = "context.versionId", skip_serializing_if = "Option::is_none")]
    pub version_id: Option<&'a str>,
    /// The version an update was based on.
    #[serde(
        rename = "context.priorVersionId",
        skip_serializing_if = "Option::is_none"
    )]
    pub prior_version_id: Option<&'a str>,
}

impl Notification<'_> {
    /// Encodes the notification as a JSON text frame payload.
    pub fn encode(&self) -> bytes::Bytes {
        // Serialising borrowed strings and already-parsed JSON cannot fail.
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patient_open() -> Value {
        json!({
            "timestamp": "2018-01-08T01:37:05.14",
            "id": "q9v3jubddqt63n1",
            "event": {
                "hub.topic": "fdb2f928-5546-4f52-87a0-0648e9ded065",
                "hub.event": "patient-OPEN",
                "context": [{"key": "patient", "resource": {"resourceType": "Patient", "id": "p1"}}]
            }
        })
    }

    #[test]
    fn parses_a_valid_request_into_canonical_form() {
        let request = EventRequest::from_json(&patient_open(), SystemTime::now(), &Limits::DEFAULT)
            .expect("valid");
        assert_eq!(request.name.as_str(), "Patient-open");
        assert_eq!(request.id, "q9v3jubddqt63n1");
        assert_eq!(request.context.len(), 1);
    }

    #[test]
    fn refuses_missing_members_and_future_timestamps() {
        let mut body = patient_open();
        body["event"]
            .as_object_mut()
            .expect("object")
            .remove("hub.topic");
        assert!(EventRequest::from_json(&body, SystemTime::now(), &Limits::DEFAULT).is_err());

        let mut body = patient_open();
        body["timestamp"] = json!("2999-01-01T00:00:00Z");
        let err = EventRequest::from_json(&body, SystemTime::now(), &Limits::DEFAULT)
            .expect_err("future");
        assert!(err.reason().contains("future"));

        let mut body = patient_open();
        body["timestamp"] = json!("2019-11-25T13:16:00.00");
        assert!(EventRequest::from_json(&body, SystemTime::now(), &Limits::DEFAULT).is_ok());
    }

    #[test]
    fn encodes_the_spec_shape() {
        let context = [json!({"key": "patient"})];
        let frame = Notification {
            timestamp: "t",
            id: "i",
            event: NotificationEvent {
                topic: "top",
                name: "Patient-open",
                context: &context,
                version_id: Some("v1"),
                prior_version_id: None,
            },
        }
        .encode();
        assert_eq!(
            std::str::from_utf8(&frame).expect("utf8"),
            r#"{"timestamp":"t","id":"i","event":{"hub.topic":"top","hub.event":"Patient-open","context":[{"key":"patient"}],"context.versionId":"v1"}}"#
        );
    }
}
