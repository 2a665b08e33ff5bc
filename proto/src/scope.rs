//! SMART scopes for FHIRcast (2-2 FHIRcast Scopes):
//! `fhircast/<event|*>.<read|write|*>`. The `fhircast/` prefix is exact, the event part
//! case-insensitive; scopes of other systems (`launch`, `openid`, `patient/*.read`) are
//! ignored here.

use std::collections::BTreeSet;

use crate::event_name::EventName;

/// What a scope permits on an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Subscribe to, receive and read the context of the event.
    Read,
    /// Publish the event.
    Write,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Grants {
    all_events: bool,
    events: BTreeSet<EventName>,
}

impl Grants {
    fn allows(&self, event: &EventName) -> bool {
        self.all_events || self.events.contains(event)
    }

    fn is_empty(&self) -> bool {
        !self.all_events && self.events.is_empty()
    }
}

/// The fhircast scopes of one token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeSet {
    read: Grants,
    write: Grants,
}

impl ScopeSet {
    /// Parses a space-separated scope string; malformed fhircast scopes grant nothing.
    pub fn parse(scopes: &str) -> Self {
        Self::from_iter(scopes.split_ascii_whitespace())
    }

    /// Returns true if the scopes allow `access` to `event`.
    pub fn allows(&self, event: &EventName, access: Access) -> bool {
        match access {
            Access::Read => self.read.allows(event),
            Access::Write => self.write.allows(event),
        }
    }

    /// Returns true if at least one fhircast read scope is present.
    pub fn can_read_anything(&self) -> bool {
        !self.read.is_empty()
    }

    fn add(&mut self, scope: &str) {
        let Some(rest) = scope.strip_prefix("fhircast/") else {
            return;
        };
        let Some((event, permission)) = rest.rsplit_once('.') else {
            return;
        };
        let (read, write) = match permission {
            "read" => (true, false),
            "write" => (false, true),
            "*" => (true, true),
            _ => return,
        };
        let event = if event == "*" {
            None
        } else {
            match EventName::parse(event) {
                Ok(name) => Some(name),
                Err(_) => return,
            }
        };
        for (wanted, grants) in [(read, &mut self.read), (write, &mut self.write)] {
            if !wanted {
                continue;
            }
            match &event {
                None => grants.all_events = true,
                Some(name) => {
                    grants.events.insert(name.clone());
                }
            }
        }
    }
}

impl<'a> FromIterator<&'a str> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = &'a str>>(scopes: I) -> Self {
        let mut set = Self::default();
        for scope in scopes {
            set.add(scope);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(raw: &str) -> EventName {
        EventName::parse(raw).expect("valid event")
    }

    #[test]
    fn exact_scopes_grant_one_event_one_way() {
        let scopes = ScopeSet::parse("launch fhircast/Patient-open.read openid");
        assert!(scopes.allows(&event("patient-open"), Access::Read));
        assert!(!scopes.allows(&event("Patient-open"), Access::Write));
        assert!(!scopes.allows(&event("Patient-close"), Access::Read));
    }

    #[test]
    fn wildcards_cover_events_and_permissions() {
        let scopes = ScopeSet::parse("fhircast/*.read fhircast/ImagingStudy-open.*");
        assert!(scopes.allows(&event("Encounter-close"), Access::Read));
        assert!(scopes.allows(&event("imagingstudy-OPEN"), Access::Write));
        assert!(!scopes.allows(&event("Patient-open"), Access::Write));
        let all = ScopeSet::parse("fhircast/*.*");
        assert!(all.allows(&event("SyncError"), Access::Write));
    }

    #[test]
    fn malformed_scopes_grant_nothing() {
        for bad in [
            "FHIRCAST/*.read",
            "fhircast/*.READ",
            "fhircast/Foo-open.read",
            "fhircast/*",
            "fhircast/.read",
            "user/*.read",
        ] {
            let scopes = ScopeSet::parse(bad);
            assert!(!scopes.can_read_anything(), "{bad}");
            assert!(
                !scopes.allows(&event("Patient-open"), Access::Write),
                "{bad}"
            );
        }
    }
}
