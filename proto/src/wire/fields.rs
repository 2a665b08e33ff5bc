//! The field shapes every message repeats (ids, event names, JSON items, required
//! messages), converted in one place each so every message checks them alike.

use bytes::Bytes;
use serde_json::Value;

use crate::event_name::EventName;
use crate::ids::{EndpointId, TopicId, TopicKey, TopicRef};

use super::WireError;

/// Returns a required message field, or names it as missing.
pub(super) fn required<T>(field: &'static str, value: Option<T>) -> Result<T, WireError> {
    value.ok_or(WireError::Missing(field))
}

/// Returns a text field the contract requires to be non-empty.
pub(super) fn required_text(field: &'static str, value: String) -> Result<String, WireError> {
    if value.is_empty() {
        return Err(WireError::Missing(field));
    }
    Ok(value)
}

/// Parses an endpoint id. The value is a credential: the error never repeats it.
pub(super) fn endpoint(field: &'static str, raw: &str) -> Result<EndpointId, WireError> {
    if raw.is_empty() {
        return Err(WireError::Missing(field));
    }
    EndpointId::parse(raw).ok_or_else(|| WireError::invalid(field, "not an endpoint id"))
}

/// Parses an optional endpoint id.
pub(super) fn optional_endpoint(
    field: &'static str,
    raw: Option<String>,
) -> Result<Option<EndpointId>, WireError> {
    raw.map(|raw| endpoint(field, &raw)).transpose()
}

/// Parses a list of endpoint ids.
pub(super) fn endpoints(
    field: &'static str,
    raw: Vec<String>,
) -> Result<Vec<EndpointId>, WireError> {
    raw.iter().map(|raw| endpoint(field, raw)).collect()
}

/// Returns endpoint ids as they travel.
pub(super) fn endpoints_to_wire(endpoints: &[EndpointId]) -> Vec<String> {
    endpoints
        .iter()
        .map(|endpoint| endpoint.expose().to_owned())
        .collect()
}

/// Parses a topic ref.
pub(super) fn topic_ref(field: &'static str, raw: &str) -> Result<TopicRef, WireError> {
    if raw.is_empty() {
        return Err(WireError::Missing(field));
    }
    TopicRef::parse(raw).ok_or_else(|| WireError::invalid(field, "not a topic ref"))
}

/// Validates a raw topic and computes its ref with the deployment's key. The value is a
/// secret: the error says what rule it broke, never what it is.
pub(super) fn topic(field: &'static str, raw: &str, key: &TopicKey) -> Result<TopicId, WireError> {
    if raw.is_empty() {
        return Err(WireError::Missing(field));
    }
    TopicId::parse(raw, key).map_err(|err| WireError::invalid(field, err.reason()))
}

/// Validates a raw topic and checks that the ref carried with it is the topic's.
pub(super) fn topic_with_ref(
    (topic_field, raw): (&'static str, &str),
    (ref_field, carried): (&'static str, &str),
    key: &TopicKey,
) -> Result<TopicId, WireError> {
    let carried = topic_ref(ref_field, carried)?;
    let topic = topic(topic_field, raw, key)?;
    if *topic.topic_ref() != carried {
        return Err(WireError::TopicRefMismatch(ref_field));
    }
    Ok(topic)
}

/// Parses an event name.
pub(super) fn event_name(field: &'static str, raw: &str) -> Result<EventName, WireError> {
    EventName::parse(raw).map_err(|err| WireError::invalid(field, err.reason()))
}

/// Parses a list of event names.
pub(super) fn event_names(
    field: &'static str,
    raw: Vec<String>,
) -> Result<Vec<EventName>, WireError> {
    raw.iter().map(|raw| event_name(field, raw)).collect()
}

/// Returns event names as they travel: spelled as subscribers receive them.
pub(super) fn event_names_to_wire(names: &[EventName]) -> Vec<String> {
    names.iter().map(|name| name.as_str().to_owned()).collect()
}

/// Parses context items: a JSON array.
pub(super) fn json_items(field: &'static str, raw: &[u8]) -> Result<Vec<Value>, WireError> {
    if raw.is_empty() {
        return Err(WireError::Missing(field));
    }
    serde_json::from_slice(raw)
        .map_err(|err| WireError::invalid(field, format!("not a JSON array: {err}")))
}

/// Returns context items as they travel: a JSON array.
pub(super) fn json_items_to_wire(items: &[Value]) -> Bytes {
    // Serialising JSON values cannot fail: their map keys are strings.
    Bytes::from(serde_json::to_vec(items).unwrap_or_default())
}

/// Narrows a status or close code to the `u16` it is.
pub(super) fn code_u16(field: &'static str, raw: u32) -> Result<u16, WireError> {
    u16::try_from(raw).map_err(|_| WireError::invalid(field, format!("{raw} is not a 16-bit code")))
}

/// Parses the address of an endpoint-addressed request: its topic's ref and the endpoint.
pub(super) fn endpoint_address(
    (ref_field, topic_ref_raw): (&'static str, &str),
    (endpoint_field, endpoint_raw): (&'static str, &str),
) -> Result<(TopicRef, EndpointId), WireError> {
    Ok((
        topic_ref(ref_field, topic_ref_raw)?,
        endpoint(endpoint_field, endpoint_raw)?,
    ))
}

/// Reads an enumeration field as the generated enum; values this build does not know are
/// refused (the caller refuses the unspecified value).
pub(super) fn enumeration<E: TryFrom<i32>>(field: &'static str, raw: i32) -> Result<E, WireError> {
    E::try_from(raw).map_err(|_| WireError::invalid(field, format!("unknown value {raw}")))
}
