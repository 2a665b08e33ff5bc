//! MintTopic, RevokeTopic and ListTopics on the wire: the admin API's topic records.

use crate::hub::TopicRecord;
use crate::ids::{TopicId, TopicKey};

use super::fields::{required, required_text, topic};
use super::{WireError, v1};

impl From<TopicRecord> for v1::TopicRecord {
    fn from(record: TopicRecord) -> Self {
        Self {
            topic: record.topic,
            user: record.user,
            minted_unix_ms: record.minted_at,
            revoked_unix_ms: record.revoked_at,
        }
    }
}

impl TryFrom<v1::TopicRecord> for TopicRecord {
    type Error = WireError;

    fn try_from(record: v1::TopicRecord) -> Result<Self, WireError> {
        if record.user.is_some() != record.minted_unix_ms.is_some() {
            return Err(WireError::invalid(
                "TopicRecord.user",
                "user and minted_unix_ms go together",
            ));
        }
        Ok(Self {
            topic: required_text("TopicRecord.topic", record.topic)?,
            user: record.user,
            minted_at: record.minted_unix_ms,
            revoked_at: record.revoked_unix_ms,
        })
    }
}

impl v1::MintTopicRequest {
    /// Asks to record `topic` as minted for `user`.
    pub fn new(topic: &TopicId, user: &str) -> Self {
        Self {
            topic: topic.expose().to_owned(),
            user: user.to_owned(),
        }
    }

    /// Returns the topic and the user.
    pub fn into_parts(self, key: &TopicKey) -> Result<(TopicId, String), WireError> {
        Ok((
            topic("MintTopicRequest.topic", &self.topic, key)?,
            required_text("MintTopicRequest.user", self.user)?,
        ))
    }
}

impl TryFrom<v1::MintTopicResponse> for TopicRecord {
    type Error = WireError;

    fn try_from(response: v1::MintTopicResponse) -> Result<Self, WireError> {
        required("MintTopicResponse.record", response.record)?.try_into()
    }
}

impl v1::RevokeTopicRequest {
    /// Asks to revoke `topic`.
    pub fn new(topic: &TopicId) -> Self {
        Self {
            topic: topic.expose().to_owned(),
        }
    }

    /// Returns the topic.
    pub fn into_parts(self, key: &TopicKey) -> Result<TopicId, WireError> {
        topic("RevokeTopicRequest.topic", &self.topic, key)
    }
}

impl From<(TopicRecord, usize)> for v1::RevokeTopicResponse {
    fn from((record, ended): (TopicRecord, usize)) -> Self {
        Self {
            record: Some(record.into()),
            subscriptions_ended: u32::try_from(ended).unwrap_or(u32::MAX),
        }
    }
}

impl TryFrom<v1::RevokeTopicResponse> for (TopicRecord, usize) {
    type Error = WireError;

    fn try_from(response: v1::RevokeTopicResponse) -> Result<Self, WireError> {
        let record = required("RevokeTopicResponse.record", response.record)?.try_into()?;
        let ended = usize::try_from(response.subscriptions_ended).unwrap_or(usize::MAX);
        Ok((record, ended))
    }
}

impl From<Vec<TopicRecord>> for v1::ListTopicsResponse {
    fn from(records: Vec<TopicRecord>) -> Self {
        Self {
            topics: records.into_iter().map(Into::into).collect(),
        }
    }
}

impl TryFrom<v1::ListTopicsResponse> for Vec<TopicRecord> {
    type Error = WireError;

    fn try_from(response: v1::ListTopicsResponse) -> Result<Self, WireError> {
        response.topics.into_iter().map(TryInto::try_into).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_half_minted_records_are_refused() {
        let minted = TopicRecord {
            topic: "AbcdefghijAbcdefghijAbcdefghijAbcdefghij123".into(),
            user: Some("Practitioner/1".into()),
            minted_at: Some(5),
            revoked_at: Some(9),
        };
        let wire = v1::TopicRecord::from(minted.clone());
        assert_eq!(TopicRecord::try_from(wire.clone()), Ok(minted));
        let half = v1::TopicRecord {
            minted_unix_ms: None,
            ..wire.clone()
        };
        assert!(TopicRecord::try_from(half).is_err());
        let nameless = v1::TopicRecord {
            topic: String::new(),
            ..wire
        };
        assert!(TopicRecord::try_from(nameless).is_err());
    }
}
