//! Topic access: who a request speaks for ([`Caller`]), and what the admin API recorded of
//! a topic ([`TopicRecord`]: the user it was minted for, whether it was revoked).
//!
//! The gateway decides the binding policy; the topic's owner enforces the part only it can
//! know: a revoked topic refuses everything, and a caller bound by `minted_for` is served
//! only by a topic minted for that user.

use super::{Owner, UnixMs};

/// The reason every refusal of a topic for binding reasons carries, whatever the cause
/// (not in the token, revoked, minted for someone else, never minted): an app cannot tell
/// a forbidden topic from one that does not exist (AUZ-04, TOP-03).
pub const TOPIC_NOT_PERMITTED: &str = "topic is not permitted for this token";

/// Who asks, and what binding the topic must satisfy for them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// The verified token's app and user.
    pub owner: Owner,
    /// Under the `owner` binding policy: the user the topic must have been minted for
    /// (the token's `sub`, or an empty string when it has none, which matches nothing).
    /// `None`: the topic need not have been minted.
    pub minted_for: Option<String>,
}

/// What the admin API recorded of a topic.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicRecord {
    /// The raw topic (a bearer secret: never log it).
    pub topic: String,
    /// The user the topic was minted for; `None` for a topic revoked without being minted
    /// here (one an EHR created itself).
    pub user: Option<String>,
    /// When it was minted.
    pub minted_at: Option<UnixMs>,
    /// When it was revoked; a revoked topic refuses every request for good.
    pub revoked_at: Option<UnixMs>,
}

impl TopicRecord {
    /// Whether the record belongs in a listing of `user`'s topics (`None`: everyone's).
    pub fn listed_for(&self, user: Option<&str>) -> bool {
        user.is_none_or(|user| self.user.as_deref() == Some(user))
    }

    /// Whether a request of `caller` may use a topic with this record (`None`: no record).
    pub fn permits(record: Option<&Self>, caller: &Caller) -> bool {
        if record.is_some_and(|record| record.revoked_at.is_some()) {
            return false;
        }
        match &caller.minted_for {
            None => true,
            Some(user) => record.is_some_and(|record| {
                record.minted_at.is_some() && record.user.as_deref() == Some(user.as_str())
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(minted_for: Option<&str>) -> Caller {
        Caller {
            owner: Owner::default(),
            minted_for: minted_for.map(str::to_owned),
        }
    }

    fn minted(user: &str) -> TopicRecord {
        TopicRecord {
            topic: "t".into(),
            user: Some(user.into()),
            minted_at: Some(1),
            revoked_at: None,
        }
    }

    #[test]
    fn a_revoked_topic_permits_nobody() {
        let mut record = minted("alice");
        record.revoked_at = Some(2);
        assert!(!TopicRecord::permits(Some(&record), &caller(None)));
        assert!(!TopicRecord::permits(Some(&record), &caller(Some("alice"))));
    }

    #[test]
    fn owner_binding_needs_a_topic_minted_for_that_user() {
        let record = minted("alice");
        assert!(TopicRecord::permits(Some(&record), &caller(Some("alice"))));
        assert!(!TopicRecord::permits(Some(&record), &caller(Some("bob"))));
        assert!(!TopicRecord::permits(Some(&record), &caller(Some(""))));
        assert!(!TopicRecord::permits(None, &caller(Some("alice"))));
        let unminted_revocation = TopicRecord {
            user: None,
            minted_at: None,
            ..minted("x")
        };
        assert!(!TopicRecord::permits(
            Some(&unminted_revocation),
            &caller(Some(""))
        ));
    }

    #[test]
    fn without_owner_binding_any_live_topic_is_permitted() {
        assert!(TopicRecord::permits(None, &caller(None)));
        assert!(TopicRecord::permits(Some(&minted("alice")), &caller(None)));
    }
}
