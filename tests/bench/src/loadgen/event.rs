//! The events the generator publishes and how a subscriber recognises them.
//!
//! Every publish is a spec-shaped `Patient-open` envelope whose `id` carries everything a
//! receiver needs without a lookup: `lg-<phase>-<topic>-<seq>-<sched_us>-<floor>`, where
//! `phase` is the measured step (0 for warm-up and other unmeasured publishes), `topic` the
//! topic's index, `seq` its per-topic sequence number, `sched_us` the scheduled send time in
//! microseconds since the run's epoch, and `floor` how many of the topic's publishes had
//! been answered when this one was sent (so every one below `floor` was accepted before it,
//! and must be delivered before it). The patient is padded to the requested body size.

use std::time::SystemTime;

/// The prefix of our event ids, as it appears in a frame.
const ID_NEEDLE: &[u8] = b"\"id\":\"lg-";

/// The numbers encoded in one of our event ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventId {
    pub phase: u32,
    pub topic: u32,
    pub seq: u64,
    pub sched_us: u64,
    pub floor: u64,
}

impl EventId {
    /// The id text.
    pub fn render(&self) -> String {
        format!(
            "lg-{}-{}-{}-{}-{}",
            self.phase, self.topic, self.seq, self.sched_us, self.floor
        )
    }

    /// Finds our id in a notification frame by a byte search (no JSON parse). Returns the
    /// id and its text (for the ack), or `None` for frames that are not our events.
    pub fn find(frame: &[u8]) -> Option<(Self, &[u8])> {
        let at = find(frame, ID_NEEDLE)?;
        let start = at + ID_NEEDLE.len() - 3;
        let text = &frame[start..];
        let end = text.iter().position(|&byte| byte == b'"')?;
        let text = &text[..end];
        let mut numbers = [0u64; 5];
        let mut parts = text.get(3..)?.split(|&byte| byte == b'-');
        for slot in &mut numbers {
            *slot = parse_u64(parts.next()?)?;
        }
        if parts.next().is_some() {
            return None;
        }
        let id = Self {
            phase: u32::try_from(numbers[0]).ok()?,
            topic: u32::try_from(numbers[1]).ok()?,
            seq: numbers[2],
            sched_us: numbers[3],
            floor: numbers[4],
        };
        Some((id, text))
    }
}

/// The first position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let offset = haystack[from..].iter().position(|&byte| byte == first)?;
        let at = from + offset;
        if haystack.get(at..at + needle.len())? == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    let mut value: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u64::from(digit - b'0');
    }
    Some(value)
}

/// Builds the event bodies of one topic, padded to a target size.
#[derive(Clone, Debug)]
pub struct EventTemplate {
    /// Everything after the id up to the end of the body.
    tail: String,
}

impl EventTemplate {
    /// A template for `topic` (index `index`) whose bodies are about `payload_bytes` long.
    pub fn new(topic: &str, index: usize, payload_bytes: usize) -> Self {
        let head = format!(
            "\",\"event\":{{\"hub.topic\":\"{topic}\",\"hub.event\":\"Patient-open\",\"context\":[{{\"key\":\"patient\",\"resource\":{{\"resourceType\":\"Patient\",\"id\":\"pat-{index}\",\"identifier\":[{{\"system\":\"urn:fhircast-loadgen\",\"value\":\""
        );
        let end = "\"}]}}]}}";
        // timestamp (24) and id (about 40) and their framing.
        let fixed = head.len() + end.len() + 24 + 40 + 24;
        let padding = payload_bytes.saturating_sub(fixed).max(1);
        let tail = format!("{head}{}{end}", "x".repeat(padding));
        Self { tail }
    }

    /// The body of one publish.
    pub fn body(&self, id: &EventId) -> String {
        let id = id.render();
        let mut body = String::with_capacity(self.tail.len() + id.len() + 48);
        body.push_str("{\"timestamp\":\"");
        body.push_str(&timestamp_now());
        body.push_str("\",\"id\":\"");
        body.push_str(&id);
        body.push_str(&self.tail);
        body
    }
}

/// Now as RFC 3339 UTC with milliseconds.
pub fn timestamp_now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_round_trips_through_a_body() {
        let id = EventId {
            phase: 3,
            topic: 1,
            seq: 42,
            sched_us: 1_234_567,
            floor: 41,
        };
        let template = EventTemplate::new("topic-abc", 1, 1024);
        let body = template.body(&id);
        assert!((1000..1100).contains(&body.len()), "{}", body.len());
        assert!(
            serde_json::from_str::<serde_json::Value>(&body).is_ok(),
            "{body}"
        );
        let found = EventId::find(body.as_bytes());
        assert_eq!(found.map(|(id, _)| id), Some(id));
        assert_eq!(
            found.map(|(_, text)| text.to_vec()),
            Some(id.render().into_bytes())
        );
    }

    #[test]
    fn other_frames_are_not_ours() {
        assert_eq!(EventId::find(br#"{"hub.mode":"subscribe"}"#), None);
        assert_eq!(EventId::find(br#"{"id":"lg-1-2-x-4-5"}"#), None);
        assert_eq!(EventId::find(br#"{"id":"lg-1-2-3-4-5-6"}"#), None);
        assert_eq!(EventId::find(br#"{"id":"evt-1","x":{"id":"pat-1"}}"#), None);
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let now = timestamp_now();
        assert_eq!(now.len(), 24, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }
}
