//! `Principal`: who a verified token speaks for and what it allows.

use std::time::SystemTime;

use fhircast_proto::scope::ScopeSet;

/// The verified identity and grants of one access token.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The `sub` claim.
    pub subject: Option<String>,
    /// The `client_id` claim, or `azp` when there is none.
    pub client_id: Option<String>,
    /// The fhircast scopes from `scope` (space separated) or `scp` (array).
    pub scopes: ScopeSet,
    /// The topics from the configured topic claim. Never log these.
    pub topics: Vec<String>,
    /// The `exp` claim.
    pub expires_at: SystemTime,
}

impl Principal {
    /// Returns true if the token is bound to `topic` (exact, case-sensitive match).
    pub fn permits_topic(&self, topic: &str) -> bool {
        self.topics.iter().any(|bound| bound == topic)
    }

    /// Whole seconds until the token expires; 0 once it has.
    pub fn seconds_left(&self, now: SystemTime) -> u64 {
        self.expires_at
            .duration_since(now)
            .map_or(0, |left| left.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn topics_match_exactly_and_time_left_saturates() {
        let now = SystemTime::now();
        let principal = Principal {
            subject: None,
            client_id: None,
            scopes: ScopeSet::default(),
            topics: vec!["TopicAbc0123456789".to_owned()],
            expires_at: now + Duration::from_secs(90),
        };
        assert!(principal.permits_topic("TopicAbc0123456789"));
        assert!(!principal.permits_topic("topicabc0123456789"));
        assert!(!principal.permits_topic(""));
        assert_eq!(principal.seconds_left(now), 90);
        assert_eq!(principal.seconds_left(now + Duration::from_secs(91)), 0);
    }
}
