//! Input limits: how deep, how long and how many an untrusted request may be, in one value
//! the parsers take ([`Limits`]) so a deployment can lower them.
//!
//! The defaults are the constants the parsers have always applied
//! ([`crate::json::MAX_JSON_DEPTH`], [`crate::subscription::MAX_EVENTS_PER_SUBSCRIPTION`],
//! [`crate::validate::MAX_CONTEXT_ITEMS`], [`crate::bundle::MAX_BUNDLE_ENTRIES`]). Each
//! limit is at least 1 and at most its [`Limits::CEILING`]; a value outside is refused at
//! start-up ([`Limits::check`]), never clamped. The ceilings exist because each check is
//! paid for in the request path:
//!
//! - JSON depth: the strict parser recurses once per level, and the cluster's own JSON
//!   (the gRPC wire, the Redis store) is read by `serde_json`, which refuses beyond 128;
//!   the default, 64, is therefore also the ceiling. Only lowering is possible.
//! - Events per subscription and context items: each new name or key is compared with
//!   those before it (quadratic), and every notification is matched against the events.
//! - Bundle entries: each entry is compared with those before it (duplicates are refused),
//!   inside the topic actor, which serves nothing else meanwhile.

use crate::bundle::MAX_BUNDLE_ENTRIES;
use crate::json::MAX_JSON_DEPTH;
use crate::subscription::MAX_EVENTS_PER_SUBSCRIPTION;
use crate::validate::MAX_CONTEXT_ITEMS;

/// The input limits one hub applies to requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting accepted in a JSON request body.
    pub max_json_depth: usize,
    /// Most events one subscription (`hub.events`) may name.
    pub max_events_per_subscription: usize,
    /// Most context items one event may carry.
    pub max_context_entries: usize,
    /// Most entries one content-sharing update Bundle may carry.
    pub max_bundle_entries: usize,
}

impl Limits {
    /// The limits a hub applies unless configured otherwise.
    pub const DEFAULT: Self = Self {
        max_json_depth: MAX_JSON_DEPTH,
        max_events_per_subscription: MAX_EVENTS_PER_SUBSCRIPTION,
        max_context_entries: MAX_CONTEXT_ITEMS,
        max_bundle_entries: MAX_BUNDLE_ENTRIES,
    };

    /// The highest value each limit may be given (see the module docs for why).
    pub const CEILING: Self = Self {
        max_json_depth: MAX_JSON_DEPTH,
        max_events_per_subscription: 256,
        max_context_entries: 256,
        max_bundle_entries: 1000,
    };

    /// Checks every limit lies within 1 and its ceiling; names the first that does not.
    pub fn check(&self) -> Result<(), LimitError> {
        let named = [
            (
                "max-json-depth",
                self.max_json_depth,
                Self::CEILING.max_json_depth,
            ),
            (
                "max-events-per-subscription",
                self.max_events_per_subscription,
                Self::CEILING.max_events_per_subscription,
            ),
            (
                "max-context-entries",
                self.max_context_entries,
                Self::CEILING.max_context_entries,
            ),
            (
                "max-bundle-entries",
                self.max_bundle_entries,
                Self::CEILING.max_bundle_entries,
            ),
        ];
        match named
            .into_iter()
            .find(|(_, value, ceiling)| !(1..=*ceiling).contains(value))
        {
            Some((name, value, ceiling)) => Err(LimitError {
                name,
                value,
                ceiling,
            }),
            None => Ok(()),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A limit outside its range; `name` is the limit's kebab-case name (its flag without
/// the leading `--`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name} must be between 1 and {ceiling}, not {value}")]
pub struct LimitError {
    /// The limit's kebab-case name.
    pub name: &'static str,
    /// The refused value.
    pub value: usize,
    /// The limit's ceiling.
    pub ceiling: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_constants_and_lie_within_range() {
        assert_eq!(Limits::default(), Limits::DEFAULT);
        assert_eq!(Limits::DEFAULT.max_json_depth, 64);
        assert_eq!(Limits::DEFAULT.max_events_per_subscription, 64);
        assert_eq!(Limits::DEFAULT.max_context_entries, 32);
        assert_eq!(Limits::DEFAULT.max_bundle_entries, 200);
        assert_eq!(Limits::DEFAULT.check(), Ok(()));
        assert_eq!(Limits::CEILING.check(), Ok(()));
    }

    #[test]
    fn zero_and_values_beyond_the_ceiling_are_refused_by_name() {
        let zero_depth = Limits {
            max_json_depth: 0,
            ..Limits::DEFAULT
        };
        let err = zero_depth.check().expect_err("depth 0");
        assert_eq!(err.name, "max-json-depth");
        assert_eq!(
            err.to_string(),
            "max-json-depth must be between 1 and 64, not 0"
        );
        let deep = Limits {
            max_json_depth: 65,
            ..Limits::DEFAULT
        };
        assert_eq!(deep.check().map_err(|e| e.name), Err("max-json-depth"));
        let bundle = Limits {
            max_bundle_entries: 1001,
            ..Limits::DEFAULT
        };
        assert_eq!(
            bundle.check().map_err(|e| e.name),
            Err("max-bundle-entries")
        );
        let lowest = Limits {
            max_json_depth: 1,
            max_events_per_subscription: 1,
            max_context_entries: 1,
            max_bundle_entries: 1,
        };
        assert_eq!(lowest.check(), Ok(()));
    }
}
