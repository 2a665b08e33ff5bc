//! The store seam: the system of record of topics (DESIGN §3), keyed by topic ref. A
//! topic's owner takes a fence when it starts and presents it on every commit, so an owner
//! that lost ownership can never write; a commit stores the change (a delta: only what the
//! command touched) and publishes its envelopes atomically.

mod change;
mod memory;

use std::fmt;

use fhircast_proto::{EndpointId, TopicRef};

pub use change::{Change, Delta, Header, Snapshot};
pub use memory::MemoryStore;

/// Proof of ownership of a topic, presented on every commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fence(pub u64);

/// Why the store failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Someone else owns the topic now; this owner must stop.
    #[error("the topic is owned elsewhere")]
    Fenced,
    /// The store cannot be reached.
    #[error("the store is unavailable")]
    Unavailable,
}

/// The system of record.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Takes ownership of a topic; returns the fence later commits must present.
    async fn acquire(&self, topic: &TopicRef) -> Result<Fence, StoreError>;

    /// Loads what the store holds of a topic (empty for a topic never committed). Called
    /// only after [`Store::acquire`], so nobody else writes it meanwhile.
    async fn load(&self, topic: &TopicRef) -> Result<Snapshot, StoreError>;

    /// Commits a change under `fence`, publishing its envelopes: all of it or nothing.
    async fn commit(
        &self,
        topic: &TopicRef,
        fence: Fence,
        change: Change,
    ) -> Result<(), StoreError>;

    /// Gives up ownership of a topic whose actor stopped.
    async fn release(&self, topic: &TopicRef, fence: Fence) -> Result<(), StoreError>;

    /// Returns the topic an endpoint belongs to.
    async fn resolve_endpoint(&self, endpoint: &EndpointId)
    -> Result<Option<TopicRef>, StoreError>;
}
