//! Strict JSON parsing for untrusted bodies: duplicate object keys are refused (a second
//! `hub.topic` or `id` must not silently win) and nesting is capped, so a hostile body can
//! neither smuggle a value past validation nor exhaust the stack.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::ValidationError;

/// Deepest nesting accepted in a request body by default, and the highest depth a hub may
/// be configured with ([`crate::limits::Limits::max_json_depth`]).
pub const MAX_JSON_DEPTH: usize = 64;

/// Parses `bytes` as one JSON value, refusing duplicate keys and nesting deeper than
/// `max_depth`.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, ValidationError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue {
        depth_left: max_depth,
    }
    .deserialize(&mut deserializer)
    .map_err(|err| ValidationError::new(format!("invalid JSON: {err}")))?;
    deserializer
        .end()
        .map_err(|err| ValidationError::new(format!("invalid JSON: {err}")))?;
    Ok(value)
}

#[derive(Clone, Copy)]
pub(crate) struct StrictValue {
    pub(crate) depth_left: usize,
}

impl StrictValue {
    fn nested<E: de::Error>(&self) -> Result<Self, E> {
        match self.depth_left.checked_sub(1) {
            Some(depth_left) => Ok(Self { depth_left }),
            None => Err(E::custom("JSON is nested too deeply")),
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let nested = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(nested)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        // A container is a level of nesting even when empty, for objects as for arrays.
        let nested = self.nested()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(nested)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_json_and_keeps_key_order() {
        let value = parse_strict(br#"{"b":1,"a":[true,null,"x",1.5]}"#, 8).expect("valid");
        assert_eq!(value.to_string(), r#"{"b":1,"a":[true,null,"x",1.5]}"#);
    }

    #[test]
    fn refuses_duplicate_keys_at_any_depth() {
        assert!(parse_strict(br#"{"id":1,"id":2}"#, 8).is_err());
        assert!(parse_strict(br#"{"a":{"x":1,"x":1}}"#, 8).is_err());
    }

    #[test]
    fn refuses_deep_nesting_without_overflowing() {
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(parse_strict(ok.as_bytes(), MAX_JSON_DEPTH).is_ok());
        let too_deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(parse_strict(too_deep.as_bytes(), MAX_JSON_DEPTH).is_err());
        let hostile = "[".repeat(100_000);
        assert!(parse_strict(hostile.as_bytes(), MAX_JSON_DEPTH).is_err());
    }

    #[test]
    fn an_empty_object_counts_as_a_level_of_nesting() {
        // Found by the event_envelope fuzz target: an empty object one level beyond the
        // cap was accepted, an empty array was not.
        let at_cap = format!("{}{{}}{}", "[".repeat(63), "]".repeat(63));
        assert!(parse_strict(at_cap.as_bytes(), MAX_JSON_DEPTH).is_ok());
        let beyond = format!("{}{{}}{}", "[".repeat(64), "]".repeat(64));
        assert!(parse_strict(beyond.as_bytes(), MAX_JSON_DEPTH).is_err());
        assert!(parse_strict(b"{}", 0).is_err());
        assert!(parse_strict(b"{}", 1).is_ok());
    }

    #[test]
    fn refuses_broken_input() {
        for bad in [
            &b"{"[..],
            b"[1,]",
            b"\"\\uD800\"",
            b"1e309",
            b"{} {}",
            b"\xff",
        ] {
            assert!(parse_strict(bad, 8).is_err(), "{bad:?}");
        }
    }
}
