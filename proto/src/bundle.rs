//! The content-sharing update Bundle (2-10 Content Sharing, profile
//! `fhircast-content-update-bundle`): a `transaction` Bundle whose entries are `PUT`
//! (add or replace a resource) or `DELETE` (remove one), each resource at most once.
//!
//! The spec's own examples omit `request.url` and use relative `fullUrl`s, so a `PUT` is
//! identified by its resource's `resourceType`/`id` and a `DELETE` by `fullUrl` or
//! `request.url` in `Type/id`, absolute or `_history` form.

use serde_json::Value;

use crate::error::{ErrorCode, ValidationError};
use crate::limits::Limits;
use crate::validate::{AnchorKey, parse_reference};

/// Most entries one update Bundle may carry by default ([`Limits::max_bundle_entries`]).
pub const MAX_BUNDLE_ENTRIES: usize = 200;

/// One change of an update Bundle, in Bundle order.
#[derive(Clone, Debug, PartialEq)]
pub enum ContentChange {
    /// Add or replace this resource.
    Put {
        /// The resource's key.
        key: AnchorKey,
        /// The Bundle entry as sent (kept to rebuild the content Bundle).
        resource: Value,
        /// The entry's `fullUrl`, if any.
        full_url: Option<String>,
    },
    /// Remove the resource with this key.
    Delete {
        /// The resource's key.
        key: AnchorKey,
    },
}

impl ContentChange {
    /// Returns the key of the resource this change touches.
    pub fn key(&self) -> &AnchorKey {
        match self {
            Self::Put { key, .. } | Self::Delete { key } => key,
        }
    }
}

/// Parses an update Bundle into its changes, or says why the whole Bundle is refused
/// (413 beyond `limits.max_bundle_entries`).
pub fn parse_update_bundle(
    bundle: &Value,
    limits: &Limits,
) -> Result<Vec<ContentChange>, ValidationError> {
    if bundle["type"].as_str() != Some("transaction") {
        return Err(ValidationError::new(
            "the updates Bundle must have type \"transaction\"",
        ));
    }
    let entries = match bundle.get("entry") {
        None => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(ValidationError::new("Bundle.entry must be an array")),
    };
    let max_entries = limits.max_bundle_entries;
    if entries.len() > max_entries {
        return Err(ValidationError::with_code(
            ErrorCode::PayloadTooLarge,
            format!("the updates Bundle has more than {max_entries} entries"),
        ));
    }
    let mut changes: Vec<ContentChange> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let change = parse_entry(entry)
            .map_err(|reason| ValidationError::new(format!("Bundle entry {index}: {reason}")))?;
        if changes.iter().any(|seen| seen.key() == change.key()) {
            return Err(ValidationError::new(format!(
                "Bundle entry {index}: {}/{} appears more than once in the Bundle",
                change.key().resource_type,
                change.key().id
            )));
        }
        changes.push(change);
    }
    Ok(changes)
}

fn parse_entry(entry: &Value) -> Result<ContentChange, String> {
    let method = entry["request"]["method"]
        .as_str()
        .ok_or("request.method is missing")?;
    let full_url = entry["fullUrl"].as_str().map(str::to_owned);
    match method {
        "PUT" => {
            let resource = entry
                .get("resource")
                .filter(|r| r.is_object())
                .ok_or("a PUT needs a resource")?;
            let resource_type = resource["resourceType"]
                .as_str()
                .ok_or("the resource has no resourceType")?;
            if !crate::fhir::RESOURCE_TYPES.contains(&resource_type) {
                return Err(format!("{resource_type:?} is not a FHIR R4 resource type"));
            }
            let id = resource["id"]
                .as_str()
                .filter(|id| !id.is_empty())
                .ok_or("a PUT resource needs an id")?;
            Ok(ContentChange::Put {
                key: AnchorKey {
                    resource_type: resource_type.to_owned(),
                    id: id.to_owned(),
                },
                resource: resource.clone(),
                full_url,
            })
        }
        "DELETE" => {
            if entry.get("resource").is_some() {
                return Err("a DELETE carries no resource".into());
            }
            let key = full_url
                .as_deref()
                .and_then(parse_reference)
                .or_else(|| entry["request"]["url"].as_str().and_then(parse_reference))
                .ok_or("a DELETE needs fullUrl or request.url of the form Type/id")?;
            Ok(ContentChange::Delete { key })
        }
        "POST" => Err("POST is not allowed: a POST cannot state the new resource's id".into()),
        other => Err(format!(
            "request.method {other:?} is not allowed (PUT or DELETE)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(id: &str) -> Value {
        json!({"request": {"method": "PUT"}, "resource": {"resourceType": "Observation", "id": id}})
    }

    #[test]
    fn parses_puts_and_deletes_in_order() {
        let bundle = json!({"resourceType": "Bundle", "id": "b1", "type": "transaction", "entry": [
            put("o1"),
            {"fullUrl": "Observation/o2", "request": {"method": "DELETE"}},
        ]});
        let changes = parse_update_bundle(&bundle, &Limits::DEFAULT).expect("valid bundle");
        assert_eq!(changes.len(), 2);
        assert!(matches!(&changes[1], ContentChange::Delete { key } if key.id == "o2"));
    }

    #[test]
    fn refuses_post_duplicates_and_other_bundle_types() {
        let post = json!({"type": "transaction", "entry": [
            {"request": {"method": "POST"}, "resource": {"resourceType": "Observation"}}
        ]});
        assert!(parse_update_bundle(&post, &Limits::DEFAULT).is_err());
        let dup = json!({"type": "transaction", "entry": [put("o1"), put("o1")]});
        assert!(parse_update_bundle(&dup, &Limits::DEFAULT).is_err());
        let batch = json!({"type": "batch", "entry": [put("o1")]});
        assert!(parse_update_bundle(&batch, &Limits::DEFAULT).is_err());
    }

    #[test]
    fn refuses_oversized_bundles_with_413() {
        let entries: Vec<Value> = (0..=MAX_BUNDLE_ENTRIES)
            .map(|i| put(&format!("o{i}")))
            .collect();
        let bundle = json!({"type": "transaction", "entry": entries});
        let err = parse_update_bundle(&bundle, &Limits::DEFAULT).expect_err("too many entries");
        assert_eq!(err.code().http_status(), 413);
    }

    #[test]
    fn a_lowered_limit_refuses_what_the_default_accepts() {
        let bundle = json!({"type": "transaction", "entry": [put("o1"), put("o2"), put("o3")]});
        let two = Limits {
            max_bundle_entries: 2,
            ..Limits::DEFAULT
        };
        let err = parse_update_bundle(&bundle, &two).expect_err("3 entries over 2");
        assert_eq!(err.code().http_status(), 413);
        assert!(err.reason().contains("more than 2 entries"), "{err}");
        assert!(parse_update_bundle(&bundle, &Limits::DEFAULT).is_ok());
    }
}
