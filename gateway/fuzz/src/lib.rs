//! What the gateway's fuzz targets share: arbitrary JSON values for structure-aware inputs,
//! and an independent reading of JSON text (nesting depth, duplicate members) that the
//! oracles compare the hub's strict parser against. Written apart from
//! `fhircast_proto::json` on purpose: an oracle that reused it would agree with any bug.

use std::collections::HashSet;
use std::fmt;

use arbitrary::Arbitrary;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Deepest [`Json`] turned into a [`Value`]; deeper parts become `null`.
const MAX_ARBITRARY_DEPTH: usize = 8;

/// Any JSON value, for claims and header members of random types.
#[derive(Arbitrary, Clone, Debug)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Returns the value (NaN and infinities, which JSON cannot hold, become `null`).
    pub fn to_value(&self) -> Value {
        self.to_value_within(MAX_ARBITRARY_DEPTH)
    }

    fn to_value_within(&self, depth: usize) -> Value {
        let Some(inner) = depth.checked_sub(1) else {
            return Value::Null;
        };
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(i) => Value::from(*i),
            Self::Uint(u) => Value::from(*u),
            Self::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Self::Str(s) => Value::String(s.clone()),
            Self::Array(items) => items.iter().map(|i| i.to_value_within(inner)).collect(),
            Self::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value_within(inner)))
                    .collect(),
            ),
        }
    }
}

/// What [`json_facts`] found in a JSON text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JsonFacts {
    /// Containers nested in the deepest place: 0 for a scalar, 1 for `[]` or `{"a":1}`.
    pub depth: usize,
    /// Whether some object names a member twice.
    pub duplicate_member: bool,
}

/// Reads `bytes` as one JSON text; `None` when it is not JSON (or nests beyond serde_json's
/// own recursion limit of 128).
pub fn json_facts(bytes: &[u8]) -> Option<JsonFacts> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let facts = FactsSeed.deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(facts)
}

struct FactsSeed;

impl<'de> DeserializeSeed<'de> for FactsSeed {
    type Value = JsonFacts;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<JsonFacts, D::Error> {
        deserializer.deserialize_any(FactsVisitor)
    }
}

struct FactsVisitor;

impl FactsVisitor {
    fn scalar<E>(self) -> Result<JsonFacts, E> {
        Ok(JsonFacts::default())
    }
}

impl<'de> Visitor<'de> for FactsVisitor {
    type Value = JsonFacts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<JsonFacts, E> {
        self.scalar()
    }

    fn visit_i64<E>(self, _: i64) -> Result<JsonFacts, E> {
        self.scalar()
    }

    fn visit_u64<E>(self, _: u64) -> Result<JsonFacts, E> {
        self.scalar()
    }

    fn visit_f64<E>(self, _: f64) -> Result<JsonFacts, E> {
        self.scalar()
    }

    fn visit_str<E>(self, _: &str) -> Result<JsonFacts, E> {
        self.scalar()
    }

    fn visit_unit<E>(self) -> Result<JsonFacts, E> {
        self.scalar()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonFacts, A::Error> {
        let mut inner = JsonFacts::default();
        while let Some(item) = seq.next_element_seed(FactsSeed)? {
            inner = merge(inner, item);
        }
        Ok(JsonFacts {
            depth: inner.depth + 1,
            ..inner
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonFacts, A::Error> {
        let mut names = HashSet::new();
        let mut inner = JsonFacts::default();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(FactsSeed)?;
            inner = merge(inner, value);
            inner.duplicate_member |= !names.insert(name);
        }
        Ok(JsonFacts {
            depth: inner.depth + 1,
            ..inner
        })
    }
}

fn merge(a: JsonFacts, b: JsonFacts) -> JsonFacts {
    JsonFacts {
        depth: a.depth.max(b.depth),
        duplicate_member: a.duplicate_member || b.duplicate_member,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_count_containers_and_duplicates() {
        let facts = |text: &str| json_facts(text.as_bytes());
        assert_eq!(facts("1").map(|f| f.depth), Some(0));
        assert_eq!(facts("[]").map(|f| f.depth), Some(1));
        assert_eq!(facts(r#"{"a":[{}]}"#).map(|f| f.depth), Some(3));
        assert_eq!(
            facts(r#"[{"a":1,"a":2}]"#).map(|f| f.duplicate_member),
            Some(true)
        );
        assert_eq!(facts("[1,]"), None);
    }
}
