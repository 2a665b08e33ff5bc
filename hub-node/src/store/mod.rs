//! The store seam: the system of record of topics (DESIGN §3). A topic's owner takes a
//! fence when it starts and presents it on every commit, so an owner that lost ownership
//! can never write; a commit stores the change and publishes its envelopes atomically.

mod memory;

use std::fmt;

use fhircast_proto::bus::Envelope;
use fhircast_proto::{EndpointId, TopicId, TopicRef};

use crate::topic::{TopicSettings, TopicState};

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

/// One committed change of a topic.
#[derive(Debug)]
pub struct Change<'a> {
    /// The topic's state after the change.
    pub state: &'a TopicState,
    /// Envelopes to publish, in order.
    pub envelopes: Vec<Envelope>,
    /// Endpoints that now resolve to this topic.
    pub endpoints_added: Vec<EndpointId>,
    /// Endpoints that no longer resolve.
    pub endpoints_removed: Vec<EndpointId>,
}

/// The system of record.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Takes ownership of a topic; returns the fence later commits must present.
    async fn acquire(&self, topic: &TopicRef) -> Result<Fence, StoreError>;

    /// Loads a topic's state, if it has any.
    async fn load(
        &self,
        topic: &TopicId,
        settings: &TopicSettings,
    ) -> Result<Option<TopicState>, StoreError>;

    /// Commits a change under `fence`, publishing its envelopes.
    async fn commit(
        &self,
        topic: &TopicRef,
        fence: Fence,
        change: Change<'_>,
    ) -> Result<(), StoreError>;

    /// Gives up ownership of a topic whose actor stopped.
    async fn release(&self, topic: &TopicRef, fence: Fence) -> Result<(), StoreError>;

    /// Returns the topic an endpoint belongs to.
    async fn resolve_endpoint(&self, endpoint: &EndpointId)
    -> Result<Option<TopicRef>, StoreError>;
}
