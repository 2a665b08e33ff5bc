//! The discovery document served at `{hub.url}/.well-known/fhircast-configuration`
//! (2-7 Conformance).

use serde_json::{Value, json};

use crate::event_name::CATALOG;

/// The FHIRcast version the hub implements.
pub const FHIRCAST_VERSION: &str = "3.0.0";
/// The FHIR version of the resources the hub relays.
pub const FHIR_VERSION: &str = "4.0.1";

/// What a hub advertises beyond the fixed members.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    /// `capabilities.supportsNonCurrentContextUpdates`.
    pub non_current_context_updates: bool,
    /// Proprietary events to list in `eventsSupported` besides the catalog.
    pub extra_events: Vec<String>,
}

/// Returns the discovery document.
pub fn discovery_document(capabilities: &Capabilities) -> Value {
    let events: Vec<&str> = CATALOG
        .iter()
        .copied()
        .chain(capabilities.extra_events.iter().map(String::as_str))
        .collect();
    json!({
        "eventsSupported": events,
        "websocketSupport": true,
        "webhookSupport": false,
        "fhircastVersion": FHIRCAST_VERSION,
        "fhirVersion": FHIR_VERSION,
        "getCurrentSupport": true,
        "capabilities": {
            "supportsGetCurrentContext": true,
            "supportsNonCurrentContextUpdates": capabilities.non_current_context_updates,
        }
    })
}
