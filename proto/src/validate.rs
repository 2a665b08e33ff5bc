//! Context validation (2-3 Events): which keys each event must and may carry, the shape of
//! each item, and the anchor resource the hub keys its state on.
//!
//! The hub is not a FHIR validator (2-10: it "need only parse enough to do its job"); it
//! checks what it relies on (keys, anchor `resourceType` and `id`, references, the update
//! Bundle's structure) and relays everything else untouched.

use serde_json::Value;

use crate::error::ValidationError;
use crate::event_name::{EventKind, EventName};
use crate::fhir::resource_type_for_key;
use crate::limits::Limits;

/// Most context items one event may carry by default ([`Limits::max_context_entries`]).
pub const MAX_CONTEXT_ITEMS: usize = 32;

/// The key reserved for extensions (2-8 Extensions); allowed in every event.
const EXTENSION_KEY: &str = "extension";

/// An anchor: the resource a context is about.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct AnchorKey {
    /// FHIR resource type, canonical case.
    pub resource_type: String,
    /// Logical id.
    pub id: String,
}

impl AnchorKey {
    /// Parses the `Type/id` form a store keeps anchors under.
    pub fn parse_field(raw: &str) -> Option<Self> {
        let (resource_type, id) = raw.split_once('/')?;
        (!resource_type.is_empty() && !id.is_empty()).then(|| Self {
            resource_type: resource_type.to_owned(),
            id: id.to_owned(),
        })
    }
}

struct KeyRules {
    required: &'static [&'static str],
    optional: &'static [&'static str],
    repeatable: &'static [&'static str],
    /// Any key naming a FHIR resource type is allowed (generic `<Resource>-open/close`).
    any_resource_key: bool,
    /// Any key at all is allowed (proprietary events are opaque).
    any_key: bool,
}

const fn rules(
    required: &'static [&'static str],
    optional: &'static [&'static str],
    repeatable: &'static [&'static str],
) -> KeyRules {
    KeyRules {
        required,
        optional,
        repeatable,
        any_resource_key: false,
        any_key: false,
    }
}

fn key_rules(name: &EventName) -> KeyRules {
    let resource = name.resource_type().unwrap_or_default();
    match (name.kind(), resource) {
        (EventKind::Open | EventKind::Close, "Patient") => rules(&["patient"], &[], &[]),
        (EventKind::Open | EventKind::Close, "Encounter") => {
            rules(&["encounter", "patient"], &[], &[])
        }
        (EventKind::Open | EventKind::Close, "ImagingStudy") => {
            rules(&["study"], &["encounter", "patient"], &[])
        }
        (EventKind::Open | EventKind::Close, "DiagnosticReport") => {
            rules(&["report", "patient"], &["encounter", "study"], &["study"])
        }
        (EventKind::Open | EventKind::Close, _) => KeyRules {
            any_resource_key: true,
            ..rules(&[], &[], &[])
        },
        (EventKind::Update, _) => rules(&["updates"], &["patient"], &[]),
        (EventKind::Select, _) => rules(&[], &["patient", "select"], &["select"]),
        (EventKind::SyncError, _) => rules(&["operationoutcome"], &[], &[]),
        (EventKind::UserLogout | EventKind::UserHibernate, _) => rules(&["parameters"], &[], &[]),
        (EventKind::HomeOpen, _) => rules(&[], &[], &[]),
        (EventKind::Proprietary, _) => KeyRules {
            any_key: true,
            ..rules(&[], &[], &[])
        },
    }
}

/// Validates an event's context items against its name, within `limits` (context items,
/// and the entries of an update Bundle).
pub fn validate_context(
    name: &EventName,
    context: &[Value],
    limits: &Limits,
) -> Result<(), ValidationError> {
    let max_items = limits.max_context_entries;
    if context.len() > max_items {
        return Err(ValidationError::new(format!(
            "context has more than {max_items} items"
        )));
    }
    let rules = key_rules(name);
    let anchor_key = name.anchor_key();
    let mut seen: Vec<&str> = Vec::with_capacity(context.len());
    for item in context {
        let key = item_key(item)?;
        let allowed = key == EXTENSION_KEY
            || rules.any_key
            || Some(key) == anchor_key
            || rules.required.contains(&key)
            || rules.optional.contains(&key)
            || (rules.any_resource_key && resource_type_for_key(key).is_some());
        if !allowed {
            return Err(ValidationError::new(format!(
                "context key {key:?} is not defined for {name}"
            )));
        }
        if seen.contains(&key) && key != EXTENSION_KEY && !rules.repeatable.contains(&key) {
            return Err(ValidationError::new(format!(
                "context key {key:?} appears more than once"
            )));
        }
        seen.push(key);
    }
    let anchor_required = matches!(
        name.kind(),
        EventKind::Open | EventKind::Close | EventKind::Update | EventKind::Select
    );
    for required in rules
        .required
        .iter()
        .copied()
        .chain(anchor_key.filter(|_| anchor_required))
    {
        if !seen.contains(&required) {
            return Err(ValidationError::new(format!(
                "{name} requires the context key {required:?}"
            )));
        }
    }
    for item in context {
        check_item_value(name, item, limits)?;
    }
    Ok(())
}

fn item_key(item: &Value) -> Result<&str, ValidationError> {
    let object = item
        .as_object()
        .ok_or_else(|| ValidationError::new("every context item must be an object"))?;
    let key = match object.get("key") {
        Some(Value::String(key)) if !key.is_empty() => key.as_str(),
        _ => {
            return Err(ValidationError::new(
                "every context item needs a non-empty string \"key\"",
            ));
        }
    };
    if key.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ValidationError::new(format!(
            "context key {key:?} must be lowercase (keys are case-sensitive)"
        )));
    }
    if object.len() < 2 {
        return Err(ValidationError::new(format!(
            "context item {key:?} has no value member"
        )));
    }
    Ok(key)
}

/// Checks the value member of the items the hub relies on.
fn check_item_value(
    name: &EventName,
    item: &Value,
    limits: &Limits,
) -> Result<(), ValidationError> {
    let key = item["key"].as_str().unwrap_or_default();
    let is_anchor = Some(key) == name.anchor_key();
    match (name.kind(), key) {
        (EventKind::Update | EventKind::Select, _) if is_anchor || key == "patient" => {
            reference_target(item, key).map(|_| ())
        }
        (EventKind::Select, "select") => item
            .get("reference")
            .filter(|r| r.is_object())
            .map(|_| ())
            .ok_or_else(|| ValidationError::new("each select item needs a reference object")),
        (EventKind::Update, "updates") => {
            let bundle = typed_resource(item, key, "Bundle")?;
            crate::bundle::parse_update_bundle(bundle, limits).map(|_| ())
        }
        (EventKind::SyncError, "operationoutcome") => {
            typed_resource(item, key, "OperationOutcome").map(|_| ())
        }
        (EventKind::UserLogout | EventKind::UserHibernate, "parameters") => {
            typed_resource(item, key, "Parameters").map(|_| ())
        }
        (EventKind::Open | EventKind::Close, _) if key != EXTENSION_KEY => {
            let Some(resource_type) = resource_type_for_key(key) else {
                return Ok(());
            };
            let resource = typed_resource(item, key, resource_type)?;
            resource_id(resource, key).map(|_| ())
        }
        _ => Ok(()),
    }
}

fn typed_resource<'a>(
    item: &'a Value,
    key: &str,
    resource_type: &str,
) -> Result<&'a Value, ValidationError> {
    let resource = item
        .get("resource")
        .filter(|r| r.is_object())
        .ok_or_else(|| ValidationError::new(format!("context item {key:?} needs a resource")))?;
    if resource["resourceType"].as_str() != Some(resource_type) {
        return Err(ValidationError::new(format!(
            "context item {key:?} must hold a {resource_type} resource"
        )));
    }
    Ok(resource)
}

fn resource_id<'a>(resource: &'a Value, key: &str) -> Result<&'a str, ValidationError> {
    match resource.get("id") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 256 => Ok(id),
        _ => Err(ValidationError::new(format!(
            "the {key:?} resource needs a string id"
        ))),
    }
}

/// Returns the `Type/id` a context item's `reference` points at.
fn reference_target(item: &Value, key: &str) -> Result<AnchorKey, ValidationError> {
    let reference = item
        .get("reference")
        .and_then(|r| r.get("reference"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ValidationError::new(format!(
                "context item {key:?} needs a reference {{\"reference\": \"Type/id\"}}"
            ))
        })?;
    parse_reference(reference).ok_or_else(|| {
        ValidationError::new(format!("context item {key:?} has a malformed reference"))
    })
}

/// Parses `Type/id`, `https://server/fhir/Type/id` or `Type/id/_history/n` into a key.
pub fn parse_reference(reference: &str) -> Option<AnchorKey> {
    let path = reference.split(['?', '#']).next()?;
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.len() >= 4 && segments[segments.len() - 2] == "_history" {
        segments.truncate(segments.len() - 2);
    }
    let id = segments.pop()?;
    let resource_type = segments.pop()?;
    let known = crate::fhir::RESOURCE_TYPES.contains(&resource_type);
    (known && !id.is_empty()).then(|| AnchorKey {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
    })
}

/// Returns the anchor of a validated open or close event (its anchor resource).
pub fn anchor_of(name: &EventName, context: &[Value]) -> Option<AnchorKey> {
    let key = name.anchor_key()?;
    let item = context.iter().find(|item| item["key"] == key)?;
    match name.kind() {
        EventKind::Open | EventKind::Close => Some(AnchorKey {
            resource_type: name.resource_type()?.to_owned(),
            id: item["resource"]["id"].as_str()?.to_owned(),
        }),
        EventKind::Update | EventKind::Select => reference_target(item, key).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(name: &str, context: Value) -> Result<(), ValidationError> {
        let name = EventName::parse(name).expect("valid name");
        let items = context.as_array().cloned().expect("array");
        validate_context(&name, &items, &Limits::DEFAULT)
    }

    fn patient() -> Value {
        json!({"key": "patient", "resource": {"resourceType": "Patient", "id": "p1"}})
    }

    #[test]
    fn a_lowered_context_limit_refuses_what_the_default_accepts() {
        let name = EventName::parse("Patient-open").expect("valid name");
        let extension = json!({"key": "extension", "data": {}});
        let items = [patient(), extension.clone(), extension];
        let two = Limits {
            max_context_entries: 2,
            ..Limits::DEFAULT
        };
        let err = validate_context(&name, &items, &two).expect_err("3 items over 2");
        assert!(err.reason().contains("more than 2 items"), "{err}");
        assert!(validate_context(&name, &items, &Limits::DEFAULT).is_ok());
    }

    #[test]
    fn required_keys_must_be_present() {
        assert!(check("Patient-open", json!([patient()])).is_ok());
        assert!(check("Patient-open", json!([])).is_err());
        let encounter =
            json!({"key": "encounter", "resource": {"resourceType": "Encounter", "id": "e1"}});
        assert!(check("Encounter-open", json!([encounter.clone(), patient()])).is_ok());
        assert!(check("Encounter-open", json!([encounter])).is_err());
    }

    #[test]
    fn keys_are_case_sensitive_and_lowercase() {
        let upper =
            json!([{"key": "Patient", "resource": {"resourceType": "Patient", "id": "p1"}}]);
        let err = check("Patient-open", upper).expect_err("upper-case key");
        assert!(err.reason().contains("lowercase"));
    }

    #[test]
    fn undefined_and_repeated_keys_are_refused() {
        let extra = json!([patient(), {"key": "observation", "resource": {}}]);
        assert!(check("Patient-open", extra).is_err());
        assert!(check("Patient-open", json!([patient(), patient()])).is_err());
        let with_extension = json!([patient(), {"key": "extension", "data": {"a": 1}}]);
        assert!(check("Patient-open", with_extension).is_ok());
    }

    #[test]
    fn anchor_resources_need_type_and_id() {
        let no_id = json!([{"key": "patient", "resource": {"resourceType": "Patient"}}]);
        assert!(check("Patient-open", no_id).is_err());
        let wrong_type =
            json!([{"key": "patient", "resource": {"resourceType": "Encounter", "id": "x"}}]);
        assert!(check("Patient-open", wrong_type).is_err());
    }

    #[test]
    fn home_open_takes_no_context_and_proprietary_is_opaque() {
        assert!(check("Home-open", json!([])).is_ok());
        assert!(check("Home-open", json!([patient()])).is_err());
        assert!(check("org.example.thing", json!([{"key": "anything", "x": 1}])).is_ok());
    }

    #[test]
    fn references_parse_in_every_form() {
        let key = |r: &str| parse_reference(r).map(|k| format!("{}/{}", k.resource_type, k.id));
        assert_eq!(
            key("DiagnosticReport/2402d3bd"),
            Some("DiagnosticReport/2402d3bd".into())
        );
        assert_eq!(
            key("https://fhir.example/r4/Observation/o1/_history/2"),
            Some("Observation/o1".into())
        );
        assert_eq!(key("urn:uuid:1234"), None);
        assert_eq!(key("Nope/1"), None);
    }
}
