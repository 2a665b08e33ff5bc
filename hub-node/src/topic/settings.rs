//! Per-topic behaviour the operator configures.

/// Settings every topic of a hub shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSettings {
    /// How long a new endpoint may wait to be connected.
    pub attach_window_ms: u64,
    /// How long after its socket closed an endpoint may be attached again (never beyond
    /// the lease); 0 makes endpoints single-use.
    pub reattach_window_ms: u64,
    /// How long after an abnormal close the subscriber may reconnect before the hub
    /// raises the SyncError about it.
    pub reconnect_grace_ms: u64,
    /// How long after its lease an attached subscription is dropped if no gateway
    /// reported its close (the gateway closes the socket at lease end itself).
    pub lease_grace_ms: u64,
    /// Send hub-generated open events (2-5).
    pub derived_events: bool,
    /// Accept `*-update` for an open anchor that is not the current context.
    pub non_current_context_updates: bool,
    /// Consecutive ack timeouts after which a subscriber is unsubscribed.
    pub unresponsive_threshold: u32,
    /// How many accepted event ids a topic remembers for idempotency.
    pub idempotency_capacity: usize,
    /// Most unattached subscriptions one topic holds (all clients together).
    pub max_pending_attach: usize,
    /// Most subscriptions (connected or not) one client holds on a topic.
    pub max_subscriptions_per_client: usize,
    /// Most unattached subscriptions plus remembered endpoints one client holds on a topic.
    pub max_unattached_per_client: usize,
    /// Most ended endpoints a topic remembers.
    pub max_remembered_endpoints: usize,
    /// Most anchors open at once; opening one more forgets the oldest that is not current.
    pub max_open_contexts: usize,
    /// Most subscriptions one topic holds.
    pub max_subscriptions: usize,
    /// Capacity of a topic's mailbox.
    pub mailbox_capacity: usize,
    /// How long an idle, empty topic stays in memory.
    pub idle_stop_ms: u64,
    /// How long a topic nobody is subscribed to keeps its open contexts without any
    /// command before it is dropped.
    pub retention_ms: u64,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self {
            attach_window_ms: 30_000,
            reattach_window_ms: 300_000,
            reconnect_grace_ms: 10_000,
            lease_grace_ms: 5_000,
            derived_events: true,
            non_current_context_updates: false,
            unresponsive_threshold: 1,
            idempotency_capacity: 10_000,
            max_pending_attach: 1024,
            max_subscriptions_per_client: 16,
            max_unattached_per_client: 32,
            max_remembered_endpoints: 1024,
            max_open_contexts: 64,
            max_subscriptions: 10_000,
            mailbox_capacity: 1024,
            idle_stop_ms: 60_000,
            retention_ms: 24 * 3600 * 1000,
        }
    }
}
