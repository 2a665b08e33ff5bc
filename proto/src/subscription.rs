//! Subscription requests (2-4 Subscribing): parsing the form-encoded body (or the JSON
//! object some clients send instead), with every rule the hub applies before a request
//! reaches a topic: each parameter at most once, `websocket` channel only, topic alphabet,
//! event grammar with set semantics, a positive integer lease.
//!
//! Where widely used clients deviate from the letter of STU3 and no security property
//! suffers, the parser accepts the deviation and records it as a [`Leniency`] (the
//! gateway logs each at debug; docs/api.md lists them): `hub.channel.type` in any case,
//! `endpoint` for `hub.channel.endpoint` on unsubscribe (Medplum SDK 4.x), spaces and a
//! trailing comma in `hub.events`, and `hub.events` as a JSON array.

use serde_json::{Map, Value};

use crate::error::ValidationError;
use crate::event_name::EventName;
use crate::ids::validate_topic;
use crate::limits::Limits;

/// Most events one subscription may name by default
/// ([`Limits::max_events_per_subscription`]).
pub const MAX_EVENTS_PER_SUBSCRIPTION: usize = 64;
/// Longest accepted `subscriber.name`.
pub const SUBSCRIBER_NAME_MAX_LEN: usize = 256;
/// Longest accepted `hub.channel.endpoint`.
const ENDPOINT_MAX_LEN: usize = 2048;

/// `hub.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Create or re-request a subscription.
    Subscribe,
    /// Cancel a subscription.
    Unsubscribe,
}

/// A deviation from the letter of STU3 that the parser accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leniency {
    /// `hub.channel.type` not spelled exactly `websocket` (e.g. `WebSocket`).
    ChannelTypeCase,
    /// `endpoint` instead of `hub.channel.endpoint` on an unsubscribe (Medplum SDK 4.x).
    EndpointAlias,
    /// Spaces around the names in `hub.events`.
    EventsSpaces,
    /// A trailing comma in `hub.events`.
    EventsTrailingComma,
    /// `hub.events` as a JSON array of names instead of a comma-separated string.
    EventsArray,
}

impl Leniency {
    /// Returns a short description for the debug log.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ChannelTypeCase => "hub.channel.type accepted case-insensitively",
            Self::EndpointAlias => "endpoint accepted as hub.channel.endpoint",
            Self::EventsSpaces => "spaces around hub.events names ignored",
            Self::EventsTrailingComma => "trailing comma in hub.events ignored",
            Self::EventsArray => "hub.events accepted as a JSON array",
        }
    }
}

/// A validated subscription request.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionRequest {
    /// Subscribe or unsubscribe.
    pub mode: Mode,
    /// The topic, validated for alphabet and length.
    pub topic: String,
    /// Requested events, canonical, duplicates removed, in request order (empty on
    /// unsubscribe).
    pub events: Vec<EventName>,
    /// Requested lease in seconds.
    pub lease_seconds: Option<u64>,
    /// `hub.channel.endpoint`, trimmed.
    pub endpoint: Option<String>,
    /// `subscriber.name`.
    pub subscriber_name: Option<String>,
    /// The deviations from STU3 this request relied on.
    pub leniencies: Vec<Leniency>,
}

impl SubscriptionRequest {
    /// Parses an `application/x-www-form-urlencoded` body within `limits`.
    pub fn from_form(body: &[u8], limits: &Limits) -> Result<Self, ValidationError> {
        std::str::from_utf8(body)
            .map_err(|_| ValidationError::new("the form body is not valid UTF-8"))?;
        let mut params: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(body) {
            if value.contains('\u{FFFD}') || name.contains('\u{FFFD}') {
                return Err(ValidationError::new(
                    "a form parameter is not valid UTF-8 after decoding",
                ));
            }
            if params.iter().any(|(seen, _)| *seen == name) {
                return Err(ValidationError::new(format!(
                    "parameter {name:?} appears more than once"
                )));
            }
            params.push((name.into_owned(), value.into_owned()));
        }
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        Self::from_params(&get, limits)
    }

    /// Parses a JSON object with the same member names (string values; the lease may also
    /// be a number, `hub.events` an array of names), within `limits`.
    pub fn from_json(body: &Map<String, Value>, limits: &Limits) -> Result<Self, ValidationError> {
        let mut lease_text = None;
        let mut events_text = None;
        for (name, value) in body {
            match (name.as_str(), value) {
                (_, Value::String(_)) => {}
                ("hub.lease_seconds", Value::Number(number)) => {
                    lease_text = Some(number.to_string());
                }
                ("hub.events", Value::Array(items)) => {
                    events_text = Some(join_event_array(items)?);
                }
                _ => {
                    return Err(ValidationError::new(format!("{name} must be a string")));
                }
            }
        }
        let get = |name: &str| match (name, &lease_text, &events_text) {
            ("hub.lease_seconds", Some(text), _) | ("hub.events", _, Some(text)) => {
                Some(text.as_str())
            }
            _ => body.get(name).and_then(Value::as_str),
        };
        let mut request = Self::from_params(&get, limits)?;
        if events_text.is_some() {
            request.leniencies.push(Leniency::EventsArray);
        }
        Ok(request)
    }

    fn from_params<'a>(
        get: &dyn Fn(&str) -> Option<&'a str>,
        limits: &Limits,
    ) -> Result<Self, ValidationError> {
        let mut leniencies = Vec::new();
        let channel = get("hub.channel.type")
            .ok_or_else(|| ValidationError::new("missing parameter hub.channel.type"))?;
        if !channel.eq_ignore_ascii_case("websocket") {
            return Err(ValidationError::new(format!(
                "hub.channel.type {channel:?} is not supported: only \"websocket\""
            )));
        }
        if channel != "websocket" {
            leniencies.push(Leniency::ChannelTypeCase);
        }
        let mode = match get("hub.mode") {
            Some("subscribe") => Mode::Subscribe,
            Some("unsubscribe") => Mode::Unsubscribe,
            Some(other) => {
                return Err(ValidationError::new(format!(
                    "hub.mode {other:?} is not \"subscribe\" or \"unsubscribe\""
                )));
            }
            None => return Err(ValidationError::new("missing parameter hub.mode")),
        };
        let topic =
            get("hub.topic").ok_or_else(|| ValidationError::new("missing parameter hub.topic"))?;
        validate_topic(topic)?;
        let mut endpoint_param = get("hub.channel.endpoint");
        if mode == Mode::Unsubscribe && endpoint_param.is_none_or(|url| url.trim().is_empty()) {
            endpoint_param = get("endpoint");
            if endpoint_param.is_some() {
                leniencies.push(Leniency::EndpointAlias);
            }
        }
        let endpoint = match endpoint_param.map(str::trim) {
            Some("") | None => None,
            Some(url) if url.len() > ENDPOINT_MAX_LEN => {
                return Err(ValidationError::new("hub.channel.endpoint is too long"));
            }
            Some(url) => Some(url.to_owned()),
        };
        let subscriber_name = match get("subscriber.name") {
            None => None,
            Some(name) if name.chars().count() > SUBSCRIBER_NAME_MAX_LEN => {
                return Err(ValidationError::new(format!(
                    "subscriber.name is longer than {SUBSCRIBER_NAME_MAX_LEN} characters"
                )));
            }
            Some(name) if name.chars().any(char::is_control) => {
                return Err(ValidationError::new(
                    "subscriber.name contains control characters",
                ));
            }
            Some(name) => Some(name.to_owned()),
        };
        let (events, lease_seconds) = match mode {
            Mode::Subscribe => {
                let events = get("hub.events")
                    .ok_or_else(|| ValidationError::new("missing parameter hub.events"))?;
                let lease = get("hub.lease_seconds").map(parse_lease).transpose()?;
                (
                    parse_events_lenient(events, limits, &mut leniencies)?,
                    lease,
                )
            }
            // STU2: hub.events SHALL NOT and hub.lease_seconds MUST be ignored on an
            // unsubscribe; both are ignored, whatever they hold.
            Mode::Unsubscribe => {
                if endpoint.is_none() {
                    return Err(ValidationError::new(
                        "unsubscribe requires hub.channel.endpoint",
                    ));
                }
                (Vec::new(), None)
            }
        };
        Ok(Self {
            mode,
            topic: topic.to_owned(),
            events,
            lease_seconds,
            endpoint,
            subscriber_name,
            leniencies,
        })
    }
}

/// Joins a JSON array of event names into the comma-separated form.
fn join_event_array(items: &[Value]) -> Result<String, ValidationError> {
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str() {
            Some(name) if !name.contains(',') => names.push(name),
            _ => {
                return Err(ValidationError::new(
                    "hub.events as an array must hold event names (strings without commas)",
                ));
            }
        }
    }
    Ok(names.join(","))
}

/// Parses `hub.events` like [`parse_events`], also accepting one trailing comma, and
/// records the leniencies it relied on.
fn parse_events_lenient(
    list: &str,
    limits: &Limits,
    leniencies: &mut Vec<Leniency>,
) -> Result<Vec<EventName>, ValidationError> {
    let trimmed = list.trim_end();
    let without_comma = trimmed.strip_suffix(',').unwrap_or(trimmed);
    if without_comma.len() != trimmed.len() {
        leniencies.push(Leniency::EventsTrailingComma);
    }
    if without_comma
        .split(',')
        .any(|raw| raw.len() != raw.trim().len())
    {
        leniencies.push(Leniency::EventsSpaces);
    }
    parse_events(without_comma, limits)
}

/// Parses `hub.events`: comma-separated, whitespace around names ignored, duplicates
/// collapse (2-4: "the Hub SHALL treat duplicates as one"), empty entries refused, at most
/// `limits.max_events_per_subscription` distinct names.
pub fn parse_events(list: &str, limits: &Limits) -> Result<Vec<EventName>, ValidationError> {
    let max_events = limits.max_events_per_subscription;
    let mut events: Vec<EventName> = Vec::new();
    for raw in list.split(',').map(str::trim) {
        if raw.is_empty() {
            return Err(ValidationError::new("hub.events has an empty entry"));
        }
        let name = EventName::parse(raw)?;
        if !events.contains(&name) {
            events.push(name);
        }
        if events.len() > max_events {
            return Err(ValidationError::new(format!(
                "hub.events names more than {max_events} events"
            )));
        }
    }
    Ok(events)
}

/// Parses a lease: a positive decimal integer of at most ten digits.
fn parse_lease(text: &str) -> Result<u64, ValidationError> {
    let valid = !text.is_empty() && text.len() <= 10 && text.bytes().all(|b| b.is_ascii_digit());
    match text.parse::<u64>() {
        Ok(seconds) if valid && seconds > 0 => Ok(seconds),
        _ => Err(ValidationError::new(
            "hub.lease_seconds must be a positive whole number of seconds",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "fdb2f928-5546-4f52-87a0-0648e9ded065";

    fn form(body: &str) -> Result<SubscriptionRequest, ValidationError> {
        SubscriptionRequest::from_form(body.as_bytes(), &Limits::DEFAULT)
    }

    #[test]
    fn parses_the_spec_example() {
        let request = form(&format!(
            "hub.channel.type=websocket&hub.mode=subscribe&hub.topic={TOPIC}&hub.events=Patient-open,Patient-close"
        ))
        .expect("valid");
        assert_eq!(request.mode, Mode::Subscribe);
        assert_eq!(request.events.len(), 2);
    }

    #[test]
    fn events_collapse_case_insensitively() {
        let events = parse_events(
            "patient-open, Patient-OPEN ,Patient-close",
            &Limits::DEFAULT,
        )
        .expect("valid");
        let names: Vec<&str> = events.iter().map(EventName::as_str).collect();
        assert_eq!(names, ["Patient-open", "Patient-close"]);
        assert!(parse_events("Patient-open,,Patient-close", &Limits::DEFAULT).is_err());
        let many: Vec<String> = (0..65).map(|i| format!("org.example.e{i}")).collect();
        assert!(parse_events(&many.join(","), &Limits::DEFAULT).is_err());
        let two = Limits {
            max_events_per_subscription: 2,
            ..Limits::DEFAULT
        };
        let err = parse_events("Patient-open,Patient-close,SyncError", &two).expect_err("3 over 2");
        assert!(err.reason().contains("more than 2 events"), "{err}");
    }

    #[test]
    fn refuses_duplicates_and_bad_values() {
        let base = format!(
            "hub.channel.type=websocket&hub.mode=subscribe&hub.topic={TOPIC}&hub.events=Patient-open"
        );
        assert!(form(&format!("{base}&hub.topic={TOPIC}")).is_err());
        for lease in [
            "-1",
            "0",
            "1.5",
            "+5",
            "1e309",
            "18446744073709551616",
            "abc",
        ] {
            assert!(
                form(&format!("{base}&hub.lease_seconds={lease}")).is_err(),
                "{lease}"
            );
        }
        assert!(form(&format!("{base}&hub.lease_seconds=7200")).is_ok());
        assert!(form(&base.replace("websocket", "webhook")).is_err());
        assert!(form(&base.replace("hub.channel.type=websocket&", "")).is_err());
        assert!(form(&format!("{base}&subscriber.name=%FF")).is_err());
    }

    #[test]
    fn unsubscribe_needs_an_endpoint_and_trims_it() {
        let base = format!("hub.channel.type=websocket&hub.mode=unsubscribe&hub.topic={TOPIC}");
        assert!(form(&base).is_err());
        let request = form(&format!(
            "{base}&hub.channel.endpoint=ws%3A%2F%2Fh%2Fws%2Fabc%0A"
        ))
        .expect("valid");
        assert_eq!(request.endpoint.as_deref(), Some("ws://h/ws/abc"));
    }

    #[test]
    fn leniencies_real_clients_need_are_accepted_and_recorded() {
        let request = form(&format!(
            "hub.channel.type=WebSocket&hub.mode=subscribe&hub.topic={TOPIC}\
             &hub.events=Patient-open%2C%20Patient-close%2C"
        ))
        .expect("lenient subscribe");
        assert_eq!(request.events.len(), 2);
        assert_eq!(
            request.leniencies,
            [
                Leniency::ChannelTypeCase,
                Leniency::EventsTrailingComma,
                Leniency::EventsSpaces
            ]
        );
        let strict = form(&format!(
            "hub.channel.type=websocket&hub.mode=subscribe&hub.topic={TOPIC}&hub.events=Patient-open"
        ))
        .expect("strict subscribe");
        assert!(strict.leniencies.is_empty());
        // Only one trailing comma; empty entries elsewhere stay refused.
        for bad in [
            "Patient-open,,",
            ",Patient-open",
            "Patient-open,,Patient-close",
            ",",
        ] {
            assert!(
                form(&format!(
                    "hub.channel.type=websocket&hub.mode=subscribe&hub.topic={TOPIC}&hub.events={bad}"
                ))
                .is_err(),
                "{bad}"
            );
        }
        assert!(form(&format!(
            "hub.channel.type=webhook&hub.mode=subscribe&hub.topic={TOPIC}&hub.events=Patient-open"
        ))
        .is_err());
    }

    #[test]
    fn unsubscribe_takes_endpoint_as_an_alias() {
        let request = form(&format!(
            "hub.channel.type=websocket&hub.mode=unsubscribe&hub.topic={TOPIC}\
             &endpoint=wss%3A%2F%2Fh%2Fws%2Fabc&hub.events=Patient-open&hub.lease_seconds=x"
        ))
        .expect("alias accepted; hub.events and hub.lease_seconds ignored");
        assert_eq!(request.endpoint.as_deref(), Some("wss://h/ws/abc"));
        assert_eq!(request.leniencies, [Leniency::EndpointAlias]);
        let both = form(&format!(
            "hub.channel.type=websocket&hub.mode=unsubscribe&hub.topic={TOPIC}\
             &hub.channel.endpoint=wss%3A%2F%2Fh%2Fws%2Freal&endpoint=wss%3A%2F%2Fh%2Fws%2Fother"
        ))
        .expect("the standard parameter wins");
        assert_eq!(both.endpoint.as_deref(), Some("wss://h/ws/real"));
        assert!(both.leniencies.is_empty());
    }

    #[test]
    fn json_events_may_be_an_array() {
        let body = serde_json::json!({
            "hub.channel.type": "websocket", "hub.mode": "subscribe", "hub.topic": TOPIC,
            "hub.events": ["patient-open", "Patient-close"]
        });
        let request =
            SubscriptionRequest::from_json(body.as_object().expect("object"), &Limits::DEFAULT)
                .expect("valid");
        let names: Vec<&str> = request.events.iter().map(EventName::as_str).collect();
        assert_eq!(names, ["Patient-open", "Patient-close"]);
        assert_eq!(request.leniencies, [Leniency::EventsArray]);
        for bad in [serde_json::json!([1]), serde_json::json!(["a,b"])] {
            let body = serde_json::json!({
                "hub.channel.type": "websocket", "hub.mode": "subscribe", "hub.topic": TOPIC,
                "hub.events": bad
            });
            assert!(
                SubscriptionRequest::from_json(body.as_object().expect("object"), &Limits::DEFAULT)
                    .is_err()
            );
        }
    }

    #[test]
    fn json_form_is_accepted() {
        let body = serde_json::json!({
            "hub.channel.type": "websocket", "hub.mode": "subscribe", "hub.topic": TOPIC,
            "hub.events": "Patient-open", "hub.lease_seconds": 60
        });
        let request =
            SubscriptionRequest::from_json(body.as_object().expect("object"), &Limits::DEFAULT)
                .expect("valid");
        assert_eq!(request.lease_seconds, Some(60));
    }
}
