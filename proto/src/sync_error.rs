//! Hub-generated SyncError events (3-2-1 SyncError, profile
//! `fhircast-hub-operation-outcome-syncerror`): an OperationOutcome with one `warning` /
//! `processing` issue whose codings name the failed event and the failing subscriber.

use serde_json::{Value, json};

/// Coding system of the failed event's id.
pub const EVENT_ID_SYSTEM: &str = "https://fhircast.hl7.org/events/syncerror/eventid";
/// Coding system of the failed event's name.
pub const EVENT_NAME_SYSTEM: &str = "https://fhircast.hl7.org/events/syncerror/eventname";
/// Coding system of the failing subscriber's name (the profile's spelling, not the
/// example's `.../subscriber`).
pub const SUBSCRIBER_NAME_SYSTEM: &str = "https://fhircast.hl7.org/events/syncerror/subscribername";

/// What went wrong, for the `diagnostics` text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncFailure {
    /// The subscriber answered with a 4xx status: it refused the event.
    Refused(u16),
    /// The subscriber answered with a 5xx status: it could not process the event.
    NotDelivered(u16),
    /// The subscriber did not answer in time.
    Timeout,
    /// The subscriber's connection closed abnormally (with this close code).
    ConnectionLost(u16),
}

impl SyncFailure {
    fn diagnostics(self, subscriber: &str) -> String {
        match self {
            Self::Refused(status) => {
                format!("{subscriber} refused the event (status {status})")
            }
            Self::NotDelivered(status) => {
                format!("{subscriber} could not process the event (status {status})")
            }
            Self::Timeout => format!("{subscriber} did not acknowledge the event in time"),
            Self::ConnectionLost(code) => {
                format!("{subscriber} lost its connection (close code {code})")
            }
        }
    }
}

/// Returns the context of a hub-generated SyncError about event `event_id`/`event_name`
/// that failed at `subscriber`.
pub fn sync_error_context(
    event_id: &str,
    event_name: &str,
    subscriber: &str,
    failure: SyncFailure,
) -> Vec<Value> {
    vec![json!({
        "key": "operationoutcome",
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "warning",
                "code": "processing",
                "diagnostics": failure.diagnostics(subscriber),
                "details": {
                    "coding": [
                        {"system": EVENT_ID_SYSTEM, "code": event_id},
                        {"system": EVENT_NAME_SYSTEM, "code": event_name},
                        {"system": SUBSCRIBER_NAME_SYSTEM, "code": subscriber},
                    ]
                }
            }]
        }
    })]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_hub_syncerror_profile() {
        let context = sync_error_context("e1", "Patient-open", "Acme", SyncFailure::Refused(409));
        let issue = &context[0]["resource"]["issue"][0];
        assert_eq!(context[0]["key"], "operationoutcome");
        assert_eq!(issue["severity"], "warning");
        assert_eq!(issue["code"], "processing");
        assert!(
            issue["diagnostics"]
                .as_str()
                .is_some_and(|d| d.contains("Acme"))
        );
        let codings = issue["details"]["coding"].as_array().expect("codings");
        assert_eq!(codings.len(), 3);
        assert_eq!(codings[0]["code"], "e1");
        assert_eq!(codings[2]["system"], SUBSCRIBER_NAME_SYSTEM);
    }
}
