//! Identifier newtypes: topics, topic refs, endpoint ids, hub-minted event ids.
//!
//! A raw topic is a bearer-like secret (FHIRcast's ticket model), so it never appears in
//! logs, spans or metrics: [`TopicId`]'s `Display` prints its [`TopicRef`], a keyed hash of
//! the topic. Endpoint ids are 32 bytes from the OS CSPRNG, base64url-encoded.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::{hmac, rand::SecureRandom};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ValidationError;

/// Shortest topic the hub accepts: anything shorter is too easy to guess.
pub const TOPIC_MIN_LEN: usize = 16;
/// Longest topic the hub accepts.
pub const TOPIC_MAX_LEN: usize = 256;

/// Returns `n` bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The system RNG only fails when the OS has no entropy source at all; a hub that cannot
    // mint unguessable endpoints must not run.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system random number generator failed");
    bytes
}

/// Returns 32 CSPRNG bytes as base64url without padding (43 characters, 256 bits).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// Returns a fresh, hub-unique id for an event the hub itself creates (SyncError, derived
/// opens), in UUID form as FHIRcast examples use.
pub fn new_event_id() -> String {
    uuid::Builder::from_random_bytes(random_bytes::<16>())
        .into_uuid()
        .to_string()
}

/// The shortest topic-key secret a deployment may configure (a 256-bit secret as text).
pub const MIN_TOPIC_KEY_LEN: usize = 32;

/// The key that turns topics into refs. One per deployment (random per process in the
/// embedded hub).
#[derive(Clone)]
pub struct TopicKey(Arc<hmac::Key>);

impl TopicKey {
    /// Creates a key from secret bytes.
    pub fn new(secret: &[u8]) -> Self {
        Self(Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    /// Creates a key from 32 fresh random bytes.
    pub fn random() -> Self {
        Self::new(&random_bytes::<32>())
    }

    /// Computes the ref of a topic.
    pub fn topic_ref(&self, topic: &str) -> TopicRef {
        let tag = hmac::sign(&self.0, topic.as_bytes());
        TopicRef(URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16]))
    }
}

impl fmt::Debug for TopicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TopicKey(..)")
    }
}

/// A keyed hash of a topic: safe to log, stable for the life of the key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicRef(String);

impl TopicRef {
    /// Parses a ref received from another process: only the shape [`TopicKey::topic_ref`]
    /// produces (16 bytes, base64url without padding) is accepted.
    pub fn parse(raw: &str) -> Option<Self> {
        let well_formed =
            raw.len() == 22 && URL_SAFE_NO_PAD.decode(raw).is_ok_and(|tag| tag.len() == 16);
        well_formed.then(|| Self(raw.to_owned()))
    }

    /// Returns the ref as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t:{}", self.0)
    }
}

/// A validated topic and its ref. `Display` and `Debug` print only the ref.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TopicId {
    raw: Arc<str>,
    topic_ref: TopicRef,
}

impl TopicId {
    /// Validates a topic string and computes its ref.
    pub fn parse(raw: &str, key: &TopicKey) -> Result<Self, ValidationError> {
        validate_topic(raw)?;
        Ok(Self {
            raw: Arc::from(raw),
            topic_ref: key.topic_ref(raw),
        })
    }

    /// Returns the topic as the apps know it. Never log this.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// Returns the loggable ref.
    pub fn topic_ref(&self) -> &TopicRef {
        &self.topic_ref
    }
}

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.topic_ref.fmt(f)
    }
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({})", self.topic_ref)
    }
}

/// Checks the topic alphabet and length: URL-path safe and long enough to be unguessable.
pub fn validate_topic(raw: &str) -> Result<(), ValidationError> {
    if raw.len() < TOPIC_MIN_LEN || raw.len() > TOPIC_MAX_LEN {
        return Err(ValidationError::new(format!(
            "hub.topic must be {TOPIC_MIN_LEN} to {TOPIC_MAX_LEN} characters long"
        )));
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(ValidationError::new(
            "hub.topic may contain only letters, digits and - . _ ~",
        ));
    }
    Ok(())
}

/// The id in a WebSocket endpoint URL (`/ws/<id>`): 32 CSPRNG bytes, base64url.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointId(Arc<str>);

impl EndpointId {
    /// Mints a fresh endpoint id.
    pub fn generate() -> Self {
        Self(Arc::from(random_token()))
    }

    /// Parses an id as it appears in a URL path; only the shape minted ids have is accepted.
    pub fn parse(raw: &str) -> Option<Self> {
        let well_formed = raw.len() == 43
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Self(Arc::from(raw)))
    }

    /// Extracts the id from a full endpoint URL (`ws[s]://host/ws/<id>`), ignoring
    /// surrounding whitespace (the spec's own example ends in an encoded newline).
    pub fn from_endpoint_url(url: &str) -> Option<Self> {
        let trimmed = url.trim();
        let (_, id) = trimmed.rsplit_once("/ws/")?;
        Self::parse(id)
    }

    /// Returns the id. It is a credential for attaching: log only a short prefix.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e:{}", &self.0[..8.min(self.0.len())])
    }
}

impl fmt::Debug for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EndpointId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_display_never_shows_the_raw_topic() {
        let key = TopicKey::random();
        let topic = TopicId::parse("secret-topic-0123456789", &key).expect("valid topic");
        assert!(!format!("{topic} {topic:?}").contains("secret-topic"));
        assert_eq!(topic.expose(), "secret-topic-0123456789");
    }

    #[test]
    fn topics_are_validated() {
        let key = TopicKey::random();
        assert!(TopicId::parse("short", &key).is_err());
        assert!(TopicId::parse("has space in the topic ok", &key).is_err());
        assert!(TopicId::parse("fdb2f928-5546-4f52-87a0-0648e9ded065", &key).is_ok());
    }

    #[test]
    fn topic_refs_parse_only_in_the_shape_keys_make() {
        let key = TopicKey::random();
        let topic_ref = key.topic_ref("secret-topic-0123456789");
        assert_eq!(TopicRef::parse(topic_ref.as_str()), Some(topic_ref.clone()));
        assert_eq!(TopicRef::parse(""), None);
        assert_eq!(TopicRef::parse(&format!("{}A", topic_ref.as_str())), None);
        assert_eq!(TopicRef::parse("t:AAAAAAAAAAAAAAAAAAAA"), None);
        assert_eq!(TopicRef::parse("AAAAAAAAAAAAAAAAAAAAA/"), None);
        // 22 characters carry 132 bits: a ref's last 4 bits are always zero.
        assert_eq!(TopicRef::parse("AAAAAAAAAAAAAAAAAAAAAB"), None);
    }

    #[test]
    fn endpoint_ids_round_trip_through_urls() {
        let id = EndpointId::generate();
        let url = format!("wss://hub.example/ws/{}%0A", id.expose());
        assert_eq!(EndpointId::from_endpoint_url(&url), None);
        let url = format!("wss://hub.example/ws/{}\n", id.expose());
        assert_eq!(EndpointId::from_endpoint_url(&url), Some(id.clone()));
        assert_ne!(EndpointId::generate(), id);
        assert_eq!(EndpointId::parse("../../etc/passwd"), None);
    }

    #[test]
    fn event_ids_are_uuid_v4() {
        let id = new_event_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(new_event_id(), id);
    }
}
