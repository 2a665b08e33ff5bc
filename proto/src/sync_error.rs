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
    /// The subscriber answered with a 5xx status: the event was not delivered.
    NotDelivered(u16),
    /// The subscriber answered with a status outside 2xx, 4xx and 5xx (1xx, 3xx): not a
    /// success (2-5: anything but 2xx is a failure).
    UnexpectedStatus(u16),
    /// The subscriber did not answer in time.
    Timeout,
    /// The subscriber's connection closed abnormally (with this close code) and it did not
    /// reconnect within the reconnect grace.
    ConnectionLost(u16),
}

impl SyncFailure {
    /// Returns the failure an acknowledgement status stands for; `None` for 2xx.
    pub fn from_status(status: u16) -> Option<Self> {
        match status {
            200..=299 => None,
            400..=499 => Some(Self::Refused(status)),
            500..=599 => Some(Self::NotDelivered(status)),
            other => Some(Self::UnexpectedStatus(other)),
        }
    }

    /// Returns a short name for logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Refused(_) => "refused",
            Self::NotDelivered(_) => "not_delivered",
            Self::UnexpectedStatus(_) => "unexpected_status",
            Self::Timeout => "ack_timeout",
            Self::ConnectionLost(_) => "connection_lost",
        }
    }

    fn diagnostics(self, subscriber: &str, event_name: &str) -> String {
        match self {
            Self::Refused(status) => {
                format!("{subscriber} refused {event_name} (status {status})")
            }
            Self::NotDelivered(status) => format!(
                "{event_name} was not delivered: {subscriber} could not process it (status {status})"
            ),
            Self::UnexpectedStatus(status) => format!(
                "{subscriber} answered {event_name} with status {status}, which is not a success"
            ),
            Self::Timeout => {
                format!("{subscriber} did not acknowledge {event_name} in time")
            }
            Self::ConnectionLost(code) => format!(
                "{subscriber} lost its connection (close code {code}) and did not reconnect; \
                 {event_name} may not have been followed"
            ),
        }
    }
}

/// Returns the context of a hub-generated SyncError about event `event_id`/`event_name`
/// that failed at `subscriber`. Every coding the profile requires carries a non-empty code:
/// callers never pass an empty id or name (an empty subscriber name becomes a label).
pub fn sync_error_context(
    event_id: &str,
    event_name: &str,
    subscriber: &str,
    failure: SyncFailure,
) -> Vec<Value> {
    debug_assert!(!event_id.is_empty() && !event_name.is_empty());
    let subscriber = if subscriber.trim().is_empty() {
        "unnamed subscriber"
    } else {
        subscriber
    };
    vec![json!({
        "key": "operationoutcome",
        "resource": {
            "resourceType": "OperationOutcome",
            "issue": [{
                "severity": "warning",
                "code": "processing",
                "diagnostics": failure.diagnostics(subscriber, event_name),
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

    #[test]
    fn statuses_map_to_failures() {
        assert_eq!(SyncFailure::from_status(200), None);
        assert_eq!(SyncFailure::from_status(202), None);
        assert_eq!(
            SyncFailure::from_status(409),
            Some(SyncFailure::Refused(409))
        );
        assert_eq!(
            SyncFailure::from_status(503),
            Some(SyncFailure::NotDelivered(503))
        );
        for other in [100, 102, 301, 304] {
            assert_eq!(
                SyncFailure::from_status(other),
                Some(SyncFailure::UnexpectedStatus(other))
            );
        }
    }

    #[test]
    fn refused_and_not_delivered_read_differently() {
        let diagnostics = |failure| {
            sync_error_context("e1", "Patient-open", "Acme", failure)[0]["resource"]["issue"][0]
                ["diagnostics"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_default()
        };
        let refused = diagnostics(SyncFailure::Refused(409));
        let failed = diagnostics(SyncFailure::NotDelivered(500));
        assert!(
            refused.contains("refused") && refused.contains("409"),
            "{refused}"
        );
        assert!(
            failed.contains("not delivered") && failed.contains("500"),
            "{failed}"
        );
    }
}
