//! Topic binding (AUZ-04): which topics a verified token may use, under the policy the
//! operator chose with `--topic-binding`.
//!
//! - `claim` (default): the token's topic claim must name the topic (what SMART launch
//!   hands an app). Checked here, before the topic is asked anything.
//! - `owner`: the topic must have been minted through the admin API for the token's user
//!   (`sub`). Only the topic's owner knows, so the gateway passes the user along and the
//!   topic refuses.
//! - `none`: any valid token may use any topic. An explicit opt-in for closed networks;
//!   start-up warns.
//!
//! Under every policy a revoked topic refuses everything, and every refusal, whoever
//! makes it, has the same status and body as a topic that does not exist.
//!
//! Under `claim` and `none` the topic comes from outside (the EHR or the app), so it is
//! also checked for strength first (TOP-02, `--weak-topics`): a guessable one is a 400 that
//! says why, whether or not it exists. Under `owner` every usable topic was minted here.

use fhircast_proto::hub::{Caller, Owner};
use fhircast_proto::topic_strength;

use crate::auth::Principal;
use crate::error::ApiError;

/// How tokens are bound to topics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BindingPolicy {
    /// The token's topic claim must name the topic.
    #[default]
    Claim,
    /// The topic must have been minted for the token's user through the admin API.
    Owner,
    /// Any valid token may use any topic (no binding).
    None,
}

/// What to do with a guessable topic supplied from outside.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WeakTopics {
    /// Refuse it with a 400.
    #[default]
    Refuse,
    /// Serve it (start-up warns).
    Allow,
}

/// The operator's topic rules: the binding policy and the strength check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopicBinding {
    /// How tokens are bound to topics.
    pub policy: BindingPolicy,
    /// What to do with a guessable topic.
    pub weak_topics: WeakTopics,
}

impl TopicBinding {
    /// Checks `topic`'s strength where it comes from outside, then what the gateway can
    /// check of `principal` using it; returns the caller to name to the topic.
    pub fn caller(self, principal: &Principal, topic: &str) -> Result<Caller, ApiError> {
        if self.weak_topics == WeakTopics::Refuse
            && self.policy != BindingPolicy::Owner
            && !topic_strength::assess(topic).is_strong()
        {
            return Err(ApiError::guessable_topic());
        }
        self.policy.caller(principal, topic)
    }
}

impl BindingPolicy {
    /// Checks what the gateway can check of `principal` using `topic`, and returns the
    /// caller to name to the topic (which checks the rest).
    pub fn caller(self, principal: &Principal, topic: &str) -> Result<Caller, ApiError> {
        let owner = owner_of(principal);
        match self {
            Self::Claim if !principal.permits_topic(topic) => Err(ApiError::topic_not_permitted()),
            Self::Claim | Self::None => Ok(Caller {
                owner,
                minted_for: None,
            }),
            Self::Owner => Ok(Caller {
                owner,
                // No `sub`: an empty user, which no minted topic has.
                minted_for: Some(principal.subject.clone().unwrap_or_default()),
            }),
        }
    }
}

/// Returns who a verified token speaks for, as subscriptions record it.
pub(crate) fn owner_of(principal: &Principal) -> Owner {
    Owner {
        client_id: principal.client_id.clone(),
        subject: principal.subject.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use fhircast_proto::hub::TOPIC_NOT_PERMITTED;
    use fhircast_proto::scope::ScopeSet;

    use super::*;

    fn principal(subject: Option<&str>, topics: &[&str]) -> Principal {
        Principal {
            subject: subject.map(str::to_owned),
            client_id: Some("app".into()),
            scopes: ScopeSet::default(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            expires_at: SystemTime::now() + Duration::from_secs(60),
        }
    }

    #[test]
    fn claim_needs_the_topic_in_the_token_and_passes_no_user() {
        let token = principal(Some("u"), &["TopicA"]);
        let caller = BindingPolicy::Claim
            .caller(&token, "TopicA")
            .expect("bound");
        assert_eq!(caller.minted_for, None);
        let refused = BindingPolicy::Claim
            .caller(&token, "TopicB")
            .expect_err("unbound");
        assert_eq!(refused.status(), 403);
        assert_eq!(refused.reason(), TOPIC_NOT_PERMITTED);
    }

    #[test]
    fn owner_passes_the_user_and_none_passes_nothing() {
        let token = principal(Some("u"), &[]);
        let owner = BindingPolicy::Owner
            .caller(&token, "Any")
            .expect("checked later");
        assert_eq!(owner.minted_for.as_deref(), Some("u"));
        let anonymous = BindingPolicy::Owner
            .caller(&principal(None, &[]), "Any")
            .expect("checked later");
        assert_eq!(anonymous.minted_for.as_deref(), Some(""));
        let open = BindingPolicy::None.caller(&token, "Any").expect("open");
        assert_eq!(open.minted_for, None);
    }

    #[test]
    fn a_guessable_outside_topic_is_a_400_unless_allowed_or_minted_here() {
        let weak = "patient-0000012345";
        let strong = "8b3e0f0e-2f4a-4c1b-9a5e-7d6c5b4a3f21";
        let token = principal(Some("u"), &[weak, strong]);
        for policy in [BindingPolicy::Claim, BindingPolicy::None] {
            let refusing = TopicBinding {
                policy,
                weak_topics: WeakTopics::Refuse,
            };
            let refused = refusing.caller(&token, weak).expect_err("guessable");
            assert_eq!(refused.status(), 400);
            assert!(refused.reason().contains("guessable"));
            refusing.caller(&token, strong).expect("a UUID v4");
            let allowing = TopicBinding {
                policy,
                weak_topics: WeakTopics::Allow,
            };
            allowing.caller(&token, weak).expect("allowed");
        }
        // Under `owner` the topic is checked against the admin API's records instead.
        let owner = TopicBinding {
            policy: BindingPolicy::Owner,
            weak_topics: WeakTopics::Refuse,
        };
        owner.caller(&token, weak).expect("checked by the topic");
    }
}
