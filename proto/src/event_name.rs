//! Event names: the grammar of FHIRcast STU3 (2-3 Events), canonical case, and what each
//! name means to the hub (context change, content sharing, selection, infrastructure,
//! proprietary).
//!
//! Names compare case-insensitively (2-3: "Event names are unique and case-insensitive");
//! the hub parses every name once, at the edge. Catalog and `<Resource>-<suffix>` names are
//! spelled canonically from then on; proprietary names keep the spelling they arrived with
//! (a notification carries the name exactly as its sender published it) and compare by
//! their lowercase form.

use std::fmt;
use std::sync::Arc;

use crate::error::ValidationError;
use crate::fhir::{RESOURCE_TYPES, anchor_key_for};

/// Longest event name accepted in `hub.events` or `hub.event`.
pub const EVENT_NAME_MAX_LEN: usize = 128;

/// What kind of event a name denotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// `<Resource>-open`: a context change that opens an anchor.
    Open,
    /// `<Resource>-close`: a context change that closes an anchor.
    Close,
    /// `<Resource>-update`: content sharing.
    Update,
    /// `<Resource>-select`: selection within the anchor's content.
    Select,
    /// `SyncError`.
    SyncError,
    /// `UserLogout`.
    UserLogout,
    /// `UserHibernate`.
    UserHibernate,
    /// `Home-open`: the user went to a home screen with no clinical context.
    HomeOpen,
    /// A reverse-domain proprietary event (`org.example.my_event`).
    Proprietary,
}

/// A validated event name. Equality, ordering and hashing use the case-insensitive key;
/// [`EventName::as_str`] returns the spelling to send.
#[derive(Clone)]
pub struct EventName {
    /// How the name is spelled on the wire: canonical, or as published for proprietary
    /// names.
    spelling: Arc<str>,
    /// What the name is compared by: the canonical spelling, or the lowercase form of a
    /// proprietary name.
    key: Arc<str>,
    kind: EventKind,
    resource: Option<&'static str>,
}

impl PartialEq for EventName {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for EventName {}

impl std::hash::Hash for EventName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl PartialOrd for EventName {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EventName {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// The events the hub lists in its discovery document: the STU3 catalog. Any other
/// `<Resource>-<open|close|update|select>` name and proprietary names are accepted too.
pub const CATALOG: &[&str] = &[
    "Patient-open",
    "Patient-close",
    "Encounter-open",
    "Encounter-close",
    "ImagingStudy-open",
    "ImagingStudy-close",
    "DiagnosticReport-open",
    "DiagnosticReport-close",
    "DiagnosticReport-update",
    "DiagnosticReport-select",
    "SyncError",
    "UserLogout",
    "UserHibernate",
    "Home-open",
];

impl EventName {
    /// Parses a name case-insensitively into its canonical form, or says why it is not one.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() {
            return Err(ValidationError::new("event name is empty"));
        }
        if raw.len() > EVENT_NAME_MAX_LEN {
            return Err(ValidationError::new(format!(
                "event name is longer than {EVENT_NAME_MAX_LEN} characters"
            )));
        }
        let lower = raw.to_ascii_lowercase();
        let infrastructure = match lower.as_str() {
            "syncerror" => Some(("SyncError", EventKind::SyncError)),
            "userlogout" => Some(("UserLogout", EventKind::UserLogout)),
            "userhibernate" => Some(("UserHibernate", EventKind::UserHibernate)),
            "home-open" => Some(("Home-open", EventKind::HomeOpen)),
            _ => None,
        };
        if let Some((canonical, kind)) = infrastructure {
            return Ok(Self::canonical(canonical, kind, None));
        }
        if let Some((resource, suffix)) = lower.rsplit_once('-') {
            let kind = match suffix {
                "open" => EventKind::Open,
                "close" => EventKind::Close,
                "update" => EventKind::Update,
                "select" => EventKind::Select,
                _ => {
                    return Err(ValidationError::new(format!(
                        "unknown event {raw:?}: the suffix must be -open, -close, -update or -select"
                    )));
                }
            };
            let resource = RESOURCE_TYPES
                .iter()
                .find(|name| name.eq_ignore_ascii_case(resource))
                .ok_or_else(|| {
                    ValidationError::new(format!(
                        "unknown event {raw:?}: {resource:?} is not a FHIR R4 resource type"
                    ))
                })?;
            return Ok(Self::canonical(
                &format!("{resource}-{suffix}"),
                kind,
                Some(resource),
            ));
        }
        if is_reverse_domain(&lower) {
            return Ok(Self {
                spelling: Arc::from(raw),
                key: Arc::from(lower),
                kind: EventKind::Proprietary,
                resource: None,
            });
        }
        Err(ValidationError::new(format!(
            "unknown event {raw:?}: not a catalog event, <Resource>-<open|close|update|select>, \
             or a reverse-domain proprietary name"
        )))
    }

    fn canonical(spelling: &str, kind: EventKind, resource: Option<&'static str>) -> Self {
        let spelling: Arc<str> = Arc::from(spelling);
        Self {
            key: Arc::clone(&spelling),
            spelling,
            kind,
            resource,
        }
    }

    /// Returns the `-open` event of a FHIR resource type.
    pub fn open_of(resource: &'static str) -> Self {
        Self::canonical(&format!("{resource}-open"), EventKind::Open, Some(resource))
    }

    /// Returns the spelling to send: canonical, or as published for a proprietary name.
    pub fn as_str(&self) -> &str {
        &self.spelling
    }

    /// Returns what kind of event this is.
    pub fn kind(&self) -> EventKind {
        self.kind
    }

    /// Returns the FHIR resource type of a `<Resource>-<suffix>` event.
    pub fn resource_type(&self) -> Option<&'static str> {
        self.resource
    }

    /// Returns the context key of this event's anchor resource (`patient`, `study`, …).
    pub fn anchor_key(&self) -> Option<&'static str> {
        self.resource.map(anchor_key_for)
    }

    /// Returns true for `SyncError`.
    pub fn is_sync_error(&self) -> bool {
        self.kind == EventKind::SyncError
    }
}

/// Reverse-domain notation without `-` (2-3: proprietary events "SHALL NOT contain -"):
/// at least two dot-separated labels of letters, digits and underscores.
fn is_reverse_domain(lower: &str) -> bool {
    let mut labels = 0;
    for label in lower.split('.') {
        if label.is_empty()
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return false;
        }
        labels += 1;
    }
    labels >= 2
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spelling)
    }
}

impl fmt::Debug for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.spelling)
    }
}

impl serde::Serialize for EventName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.spelling)
    }
}

impl<'de> serde::Deserialize<'de> for EventName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(raw: &str) -> String {
        EventName::parse(raw).expect("valid event name").to_string()
    }

    #[test]
    fn names_are_case_insensitive_and_canonicalised() {
        assert_eq!(canonical("patient-OPEN"), "Patient-open");
        assert_eq!(canonical("IMAGINGSTUDY-close"), "ImagingStudy-close");
        assert_eq!(canonical("syncerror"), "SyncError");
        assert_eq!(canonical("userLogout"), "UserLogout");
        assert_eq!(canonical("home-open"), "Home-open");
        assert_eq!(canonical("Observation-update"), "Observation-update");
    }

    #[test]
    fn proprietary_names_keep_their_spelling_and_match_case_insensitively() {
        use std::hash::BuildHasher as _;
        let published = EventName::parse("Org.Example.My_Event").expect("valid");
        let subscribed = EventName::parse("org.example.MY_EVENT").expect("valid");
        assert_eq!(published.as_str(), "Org.Example.My_Event");
        assert_eq!(published.kind(), EventKind::Proprietary);
        assert_eq!(published, subscribed);
        let hasher = std::hash::RandomState::new();
        assert_eq!(hasher.hash_one(&published), hasher.hash_one(&subscribed));
        assert!(std::slice::from_ref(&subscribed).contains(&published));
    }

    #[test]
    fn unknown_names_are_refused() {
        for bad in [
            "",
            "Foo-open",
            "Patient-opened",
            "Patient",
            "*-open",
            "org.example.with-dash",
            "org..example",
            "nodots",
        ] {
            assert!(EventName::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn anchor_keys_follow_the_legacy_exceptions() {
        let key = |raw: &str| EventName::parse(raw).ok().and_then(|n| n.anchor_key());
        assert_eq!(key("ImagingStudy-open"), Some("study"));
        assert_eq!(key("DiagnosticReport-update"), Some("report"));
        assert_eq!(key("Encounter-close"), Some("encounter"));
        assert_eq!(key("SyncError"), None);
    }

    #[test]
    fn every_catalog_name_is_canonical() {
        for name in CATALOG {
            assert_eq!(&canonical(name), name);
        }
    }
}
