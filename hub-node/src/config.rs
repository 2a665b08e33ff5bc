//! Configuration shared by every process that hosts topics (the embedded gateway and the
//! hub nodes): how topics behave. Each flag is also a `FHIRCAST_*` environment variable.

use clap::{ArgAction, Args};

use crate::topic::TopicSettings;

/// How topics behave.
#[derive(Clone, Debug, Args)]
pub struct TopicArgs {
    /// How long a returned endpoint may wait to be connected.
    #[arg(long, env = "FHIRCAST_ATTACH_WINDOW_MS", default_value_t = 30_000)]
    pub attach_window_ms: u64,
    /// How long after its socket closed an endpoint may be connected again (never beyond
    /// the lease); 0 makes endpoints single-use.
    #[arg(long, env = "FHIRCAST_REATTACH_WINDOW_MS", default_value_t = 300_000)]
    pub reattach_window_ms: u64,
    /// How long a subscriber whose connection closed abnormally may take to reconnect
    /// before the hub raises a SyncError about it.
    #[arg(long, env = "FHIRCAST_RECONNECT_GRACE_MS", default_value_t = 10_000)]
    pub reconnect_grace_ms: u64,
    /// Consecutive ack timeouts after which a subscriber is unsubscribed.
    #[arg(long, env = "FHIRCAST_UNRESPONSIVE_THRESHOLD", default_value_t = 1)]
    pub unresponsive_threshold: u32,
    /// How long a topic nobody is subscribed to keeps its open contexts without any
    /// request before it is dropped (an abandoned session).
    #[arg(
        long,
        env = "FHIRCAST_TOPIC_RETENTION_SECONDS",
        default_value_t = 86_400
    )]
    pub topic_retention_seconds: u64,
    /// Most anchors a topic keeps open; opening one more forgets the oldest that is not
    /// the current context.
    #[arg(long, env = "FHIRCAST_MAX_OPEN_CONTEXTS", default_value_t = 64)]
    pub max_open_contexts: usize,
    /// Most subscriptions one client (app and user) may hold on a topic, connected or not:
    /// the WebSocket connections it can hold there. Beyond it: 429. An app needs one per
    /// window that follows the topic; each costs a delivery per notification.
    #[arg(
        long,
        env = "FHIRCAST_MAX_SUBSCRIPTIONS_PER_CLIENT",
        default_value_t = 16
    )]
    pub max_subscriptions_per_client: usize,
    /// Most unconnected subscriptions (and remembered ended endpoints) one client may
    /// hold on a topic.
    #[arg(long, env = "FHIRCAST_MAX_UNATTACHED_PER_CLIENT", default_value_t = 32)]
    pub max_unattached_per_client: usize,
    /// Accept `*-update` for an open anchor that is not the current context.
    #[arg(long, env = "FHIRCAST_NON_CURRENT_CONTEXT_UPDATES")]
    pub non_current_context_updates: bool,
    /// Send hub-generated open events (Encounter-open ⇒ Patient-open, …).
    #[arg(long, env = "FHIRCAST_DERIVED_EVENTS", default_value_t = true, action = ArgAction::Set)]
    pub derived_events: bool,
}

impl TopicArgs {
    /// Returns the topic settings these flags describe.
    pub fn settings(&self) -> TopicSettings {
        TopicSettings {
            attach_window_ms: self.attach_window_ms,
            reattach_window_ms: self.reattach_window_ms,
            reconnect_grace_ms: self.reconnect_grace_ms,
            max_open_contexts: self.max_open_contexts,
            max_subscriptions_per_client: self.max_subscriptions_per_client,
            max_unattached_per_client: self.max_unattached_per_client,
            derived_events: self.derived_events,
            non_current_context_updates: self.non_current_context_updates,
            unresponsive_threshold: self.unresponsive_threshold,
            retention_ms: self.topic_retention_seconds.saturating_mul(1000),
            ..TopicSettings::default()
        }
    }

    /// Returns the first flag that must be positive but is 0.
    pub fn zero_flag(&self) -> Option<&'static str> {
        [
            ("--attach-window-ms", self.attach_window_ms),
            ("--topic-retention-seconds", self.topic_retention_seconds),
            ("--max-open-contexts", self.max_open_contexts as u64),
            (
                "--max-subscriptions-per-client",
                self.max_subscriptions_per_client as u64,
            ),
            (
                "--max-unattached-per-client",
                self.max_unattached_per_client as u64,
            ),
            (
                "--unresponsive-threshold",
                u64::from(self.unresponsive_threshold),
            ),
        ]
        .into_iter()
        .find_map(|(flag, value)| (value == 0).then_some(flag))
    }
}
