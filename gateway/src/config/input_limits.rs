//! The input-limit flags: how deep, how many and how long an app's request may be. Each
//! defaults to the constant the parsers always applied and may only be set within 1 and
//! its ceiling ([`Limits::CEILING`]); the gateway refuses to start otherwise.
//!
//! They apply where requests enter: the gateway parses and checks every body before a
//! topic sees it. A hub node re-reads an update Bundle only against the ceiling, so in a
//! cluster the gateways' values govern (give every gateway the same ones).

use clap::Args;

use fhircast_proto::limits::{LimitError, Limits};

/// `--max-json-depth` and the other input limits.
#[derive(Clone, Debug, Args)]
pub struct InputLimitArgs {
    /// Deepest nesting of a JSON request body (objects and arrays each count), at most 64.
    #[arg(long, env = "FHIRCAST_MAX_JSON_DEPTH", default_value_t = Limits::DEFAULT.max_json_depth)]
    pub max_json_depth: usize,

    /// Most events one subscription's hub.events may name, at most 256.
    #[arg(
        long,
        env = "FHIRCAST_MAX_EVENTS_PER_SUBSCRIPTION",
        default_value_t = Limits::DEFAULT.max_events_per_subscription
    )]
    pub max_events_per_subscription: usize,

    /// Most context items one event may carry, at most 256.
    #[arg(
        long,
        env = "FHIRCAST_MAX_CONTEXT_ENTRIES",
        default_value_t = Limits::DEFAULT.max_context_entries
    )]
    pub max_context_entries: usize,

    /// Most entries one content-sharing update Bundle may carry (beyond: 413), at most 1000.
    #[arg(
        long,
        env = "FHIRCAST_MAX_BUNDLE_ENTRIES",
        default_value_t = Limits::DEFAULT.max_bundle_entries
    )]
    pub max_bundle_entries: usize,
}

impl InputLimitArgs {
    /// Returns the limits these flags describe, or names the first out of its range.
    pub fn limits(&self) -> Result<Limits, LimitError> {
        let limits = Limits {
            max_json_depth: self.max_json_depth,
            max_events_per_subscription: self.max_events_per_subscription,
            max_context_entries: self.max_context_entries,
            max_bundle_entries: self.max_bundle_entries,
        };
        limits.check().map(|()| limits)
    }
}
