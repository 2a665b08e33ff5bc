//! Reading a subscriber's acknowledgement `{"id","status"}` (2-5) straight off the frame:
//! one pass over the bytes with no JSON tree, the id borrowed from the frame unless it
//! has escapes. This runs once per delivered notification, so it is on the hot path.
//!
//! It is as strict as the rest of the hub's JSON: an object only, no key twice, other
//! members nested at most [`MAX_DEPTH`] deep (they are read and dropped).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::Ack;
use crate::json::StrictValue;

/// How deep an acknowledgement may nest, counting the object itself.
const MAX_DEPTH: usize = 8;

/// An acknowledgement as read, its id borrowed from the frame where possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckRef<'a> {
    /// The notification's id.
    pub id: Cow<'a, str>,
    /// The HTTP-like status.
    pub status: u16,
    /// True when the frame carried no `status` and 200 was assumed.
    pub status_implied: bool,
}

impl AckRef<'_> {
    /// Returns true for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Returns the acknowledgement with an id of its own.
    pub fn into_owned(self) -> Ack {
        Ack {
            id: self.id.into_owned(),
            status: self.status,
            status_implied: self.status_implied,
        }
    }
}

/// Parses an acknowledgement frame without building a JSON tree; `None` for anything
/// else (see [`super::parse_ack`] for the rules).
pub fn parse_ack_ref(frame: &[u8]) -> Option<AckRef<'_>> {
    let mut deserializer = serde_json::Deserializer::from_slice(frame);
    let (id, status) = deserializer.deserialize_map(AckVisitor).ok()?;
    deserializer.end().ok()?;
    let id = id?;
    let (status, status_implied) = match status {
        None => (200, true),
        Some(status) => (status, false),
    };
    Some(AckRef {
        id,
        status,
        status_implied,
    })
}

struct AckVisitor;

impl<'de> Visitor<'de> for AckVisitor {
    type Value = (Option<Cow<'de, str>>, Option<u16>);

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an acknowledgement object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        let mut status = None;
        // Other members' names, to refuse a repeated one (rare: most acks have none).
        let mut others: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key_seed(Text)? {
            match key.as_ref() {
                "id" if id.is_none() => id = Some(map.next_value_seed(Text)?),
                "status" if status.is_none() => status = Some(map.next_value_seed(Status)?),
                "id" | "status" => return Err(de::Error::custom("duplicate key")),
                _ => {
                    if others.contains(&key) {
                        return Err(de::Error::custom("duplicate key"));
                    }
                    others.push(key);
                    map.next_value_seed(StrictValue {
                        depth_left: MAX_DEPTH - 1,
                    })?;
                }
            }
        }
        Ok((id, status))
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
struct Text;

impl<'de> DeserializeSeed<'de> for Text {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_owned()))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text))
    }
}

/// A status: a number from 100 to 599, or such a number in a string (spaces around it
/// allowed).
struct Status;

impl<'de> DeserializeSeed<'de> for Status {
    type Value = u16;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u16, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for Status {
    type Value = u16;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a status from 100 to 599")
    }

    fn visit_u64<E: de::Error>(self, status: u64) -> Result<u16, E> {
        u16::try_from(status)
            .ok()
            .filter(|status| (100..600).contains(status))
            .ok_or_else(|| E::custom("status out of range"))
    }

    fn visit_i64<E: de::Error>(self, status: i64) -> Result<u16, E> {
        let status = u64::try_from(status).map_err(|_| E::custom("status out of range"))?;
        self.visit_u64(status)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u16, E> {
        let status = text
            .trim()
            .parse::<u64>()
            .map_err(|_| E::custom("status is not a number"))?;
        self.visit_u64(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_borrowed_from_the_frame_unless_escaped() {
        let frame = br#"{"id":"e1","status":200}"#;
        let ack = parse_ack_ref(frame).expect("an ack");
        assert!(matches!(ack.id, Cow::Borrowed("e1")));
        let escaped = parse_ack_ref(br#"{"id":"e\u0031","status":200}"#).expect("an ack");
        assert_eq!(escaped.id, "e1");
    }

    #[test]
    fn only_objects_without_repeats_and_shallow_members_are_acks() {
        for bogus in [
            &br#"["e1",200]"#[..],
            br#"{"id":"e1","id":"e2","status":200}"#,
            br#"{"id":"e1","status":200,"status":201}"#,
            br#"{"id":"e1","status":200,"x":1,"x":2}"#,
            br#"{"id":"e1","status":200,"x":[[[[[[[[1]]]]]]]]}"#,
            br#"{"id":"e1","status":200} trailing"#,
            br#"{"id":"e1","status":true}"#,
            br#"{"id":"e1","status":-200}"#,
            br#"{"id":"e1","status":200.0}"#,
        ] {
            assert_eq!(
                parse_ack_ref(bogus),
                None,
                "{}",
                String::from_utf8_lossy(bogus)
            );
        }
        let nested = br#"{"id":"e1","status":" 201 ","x":[[[[[[1]]]]]]}"#;
        assert_eq!(parse_ack_ref(nested).map(|ack| ack.status), Some(201));
    }
}
