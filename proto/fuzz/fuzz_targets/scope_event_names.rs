//! FUZ-4 `scope_event_names`: scope strings × event names, differential between
//! `ScopeSet` and [`reference_allows`], a matcher written here from the documented grammar
//! `fhircast/<event|*>.<read|write|*>` (docs/api.md "Authorization"): the `fhircast/` prefix
//! and the permission are exact, the event part is case-insensitive (2-3: event names are
//! case-insensitive), a scope that does not fit grants nothing, and other scopes are
//! ignored.
//!
//! Scope strings are built from tokens that are mostly near-misses of real scopes
//! (prefix case, permission case, event case flips, wildcards, separators) or raw text.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

use fhircast_proto::EventName;
use fhircast_proto::event_name::CATALOG;
use fhircast_proto::scope::{Access, ScopeSet};

/// What separates scopes. RFC 6749 3.3 says one space; the hub splits on any ASCII
/// whitespace (space, tab, LF, FF, CR), a documented leniency the reference follows.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{c}' | '\r')
}

/// Names beyond the catalog: generic resource events, proprietary, lower-cased ones.
const MORE_NAMES: &[&str] = &[
    "Observation-update",
    "Medication-select",
    "org.example.my_event",
    "Org.Example.My_Event",
    "com.vendor.x",
    "patient-open",
];

const SEPARATORS: &[&str] = &[
    " ", "  ", "\t", "\n", "\r\n", "\u{c}", "\u{b}", "\u{a0}", "",
];

/// One scope token, the separator after it, and one event name to ask about: interleaved,
/// so that both the scope string and the questions grow with the input.
#[derive(Arbitrary, Debug)]
struct Item {
    token: Token,
    separator: u8,
    event: Name,
}

#[derive(Arbitrary, Debug)]
enum Token {
    Scope {
        prefix: Prefix,
        event: EventPart,
        permission: Permission,
    },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Prefix {
    Exact,
    Upper,
    Missing,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum EventPart {
    Name(Name),
    Wildcard,
    Empty,
}

#[derive(Arbitrary, Debug)]
enum Permission {
    Read,
    Write,
    Both,
    UpperRead,
    Missing,
    Other(String),
}

/// An event name: a known one with some letters' case flipped, or any text.
#[derive(Arbitrary, Debug)]
enum Name {
    Known { index: u8, flips: u64 },
    Raw(String),
}

impl Name {
    fn text(&self) -> String {
        match self {
            Self::Known { index, flips } => {
                let known = CATALOG.len() + MORE_NAMES.len();
                let at = usize::from(*index) % known;
                let name = CATALOG
                    .get(at)
                    .copied()
                    .unwrap_or_else(|| MORE_NAMES[at - CATALOG.len()]);
                name.chars()
                    .enumerate()
                    .map(
                        |(i, c)| match flips.checked_shr(u32::try_from(i).unwrap_or(u32::MAX)) {
                            Some(bits) if bits & 1 == 1 && c.is_ascii_uppercase() => {
                                c.to_ascii_lowercase()
                            }
                            Some(bits) if bits & 1 == 1 => c.to_ascii_uppercase(),
                            _ => c,
                        },
                    )
                    .collect()
            }
            Self::Raw(raw) => raw.clone(),
        }
    }
}

impl Token {
    fn text(&self) -> String {
        match self {
            Self::Scope {
                prefix,
                event,
                permission,
            } => {
                let prefix = match prefix {
                    Prefix::Exact => "fhircast/",
                    Prefix::Upper => "FHIRCAST/",
                    Prefix::Missing => "",
                    Prefix::Other(other) => other,
                };
                let event = match event {
                    EventPart::Name(name) => name.text(),
                    EventPart::Wildcard => "*".to_owned(),
                    EventPart::Empty => String::new(),
                };
                let permission = match permission {
                    Permission::Read => ".read",
                    Permission::Write => ".write",
                    Permission::Both => ".*",
                    Permission::UpperRead => ".READ",
                    Permission::Missing => "",
                    Permission::Other(other) => other,
                };
                format!("{prefix}{event}{permission}")
            }
            Self::Raw(raw) => raw.clone(),
        }
    }
}

/// The scopes of `scopes` that fit the grammar, as (event part, permission).
fn fhircast_scopes(scopes: &str) -> impl Iterator<Item = (&str, &str)> {
    scopes
        .split(is_separator)
        .filter_map(|scope| scope.strip_prefix("fhircast/"))
        .filter_map(|rest| {
            let dot = rest.rfind('.')?;
            Some((&rest[..dot], &rest[dot + 1..]))
        })
}

fn permits(permission: &str, access: Access) -> bool {
    matches!(
        (permission, access),
        ("*", _) | ("read", Access::Read) | ("write", Access::Write)
    )
}

/// Whether `scopes` grant `access` to the event spelled `event` (a valid name).
fn reference_allows(scopes: &str, event: &str, access: Access) -> bool {
    fhircast_scopes(scopes).any(|(scope_event, permission)| {
        permits(permission, access)
            && (scope_event == "*" || scope_event.eq_ignore_ascii_case(event))
    })
}

/// Whether `scopes` grant reading of some event: a read scope whose event part is `*` or an
/// event name (the event grammar itself is `EventName`'s, fuzzed elsewhere).
fn reference_reads_anything(scopes: &str) -> bool {
    fhircast_scopes(scopes).any(|(scope_event, permission)| {
        permits(permission, Access::Read)
            && (scope_event == "*" || EventName::parse(scope_event).is_ok())
    })
}

fuzz_target!(|items: Vec<Item>| {
    let mut scopes = String::new();
    for item in &items {
        scopes.push_str(&item.token.text());
        scopes.push_str(SEPARATORS[usize::from(item.separator) % SEPARATORS.len()]);
    }
    let set = ScopeSet::parse(&scopes);
    assert_eq!(
        set.can_read_anything(),
        reference_reads_anything(&scopes),
        "can_read_anything for {scopes:?}"
    );
    for item in &items {
        let raw = item.event.text();
        let Ok(event) = EventName::parse(&raw) else {
            continue;
        };
        for access in [Access::Read, Access::Write] {
            assert_eq!(
                set.allows(&event, access),
                reference_allows(&scopes, &raw, access),
                "{access:?} of {raw:?} under {scopes:?}"
            );
        }
    }
});
