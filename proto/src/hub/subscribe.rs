//! Subscribing and publishing: what the gateway asks of a topic on behalf of an app.

use crate::event_name::EventName;
use crate::ids::EndpointId;

use super::UnixMs;

/// Who created a subscription, from the verified token that asked for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    /// The token's `client_id` (or `azp`).
    pub client_id: Option<String>,
    /// The token's `sub`.
    pub subject: Option<String>,
}

impl Owner {
    /// Returns the client id for log lines (`-` when the token had none). Never the
    /// subject: log lines name apps, not people.
    pub fn log_label(&self) -> &str {
        self.client_id.as_deref().unwrap_or("-")
    }
}

/// A subscribe request that passed the gateway's checks (scopes intersected, lease capped).
#[derive(Clone, Debug, PartialEq)]
pub struct SubscribeCommand {
    /// Granted events (requested ∩ readable), non-empty.
    pub events: Vec<EventName>,
    /// The lease to grant, in seconds.
    pub lease_seconds: u64,
    /// When the caller's token expires.
    pub token_expires: UnixMs,
    /// `subscriber.name`.
    pub subscriber_name: Option<String>,
    /// The existing subscription to re-request, if any.
    pub endpoint: Option<EndpointId>,
    /// Who asks.
    pub owner: Owner,
    /// See [`super::Caller::minted_for`].
    pub minted_for: Option<String>,
}

impl SubscribeCommand {
    /// Returns who asks, as the other commands name them.
    pub fn caller(&self) -> super::Caller {
        super::Caller {
            owner: self.owner.clone(),
            minted_for: self.minted_for.clone(),
        }
    }
}

/// The outcome of an accepted publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Accepted and committed as envelope `seq`.
    Accepted {
        /// The envelope's seq.
        seq: u64,
    },
    /// The same `(topic, id)` was accepted before: nothing new happened.
    Duplicate,
}
