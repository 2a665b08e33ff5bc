//! The store seam: the system of record of topics (DESIGN §3), keyed by topic ref. A
//! topic's owner takes a fence when it starts and presents it on every commit, so an owner
//! that lost ownership can never write; a commit stores the change (a delta: only what the
//! command touched) and publishes its envelopes atomically.

mod change;
mod memory;
mod redis;

use std::fmt;

use fhircast_proto::hub::TopicRecord;
use fhircast_proto::{EndpointId, TopicRef};

pub use change::{Change, Delta, Header, Snapshot};
pub use memory::MemoryStore;
pub use redis::{FailoverClock, RedisStore, RedisStoreSettings};

/// Proof of ownership of a topic, presented on every commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fence(pub u64);

/// Why the store failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Someone else owns the topic now; this owner must stop.
    #[error("the topic is owned elsewhere")]
    Fenced,
    /// Another node's lease on the topic runs.
    #[error("the topic is owned by another node")]
    Owned {
        /// The owning node's id.
        holder: String,
    },
    /// The store's seq is not where the owner's is: a write it acknowledged was lost (a
    /// Redis failover rolled it back) or someone else wrote. The topic must start over.
    #[error("the stored sequence ({stored_seq}) differs from the owner's")]
    RolledBack {
        /// The seq the store holds.
        stored_seq: u64,
    },
    /// The store holds something the owner did not expect (a duplicate id, an unreadable
    /// header): the owner must reload.
    #[error("the stored topic differs from the owner's")]
    Diverged,
    /// The store cannot be reached.
    #[error("the store is unavailable")]
    Unavailable,
}

/// The system of record.
#[async_trait::async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Takes ownership of a topic; returns the fence later commits must present.
    async fn acquire(&self, topic: &TopicRef) -> Result<Fence, StoreError>;

    /// How long ownership lasts without [`Store::renew`]; `None` when it never lapses
    /// (the embedded store).
    fn lease_ms(&self) -> Option<u64> {
        None
    }

    /// Whether acknowledged writes may have been lost just now: the store acknowledges
    /// what its primary alone holds, and that primary changed moments ago (a failover).
    /// A topic loaded then by a node that has no record of where its history reached is
    /// restarted in a new epoch, so its clients resynchronise (P9).
    fn may_have_lost_writes(&self) -> bool {
        false
    }

    /// Extends ownership; `false` when someone else took the topic (stop serving it).
    async fn renew(&self, _topic: &TopicRef, _fence: Fence) -> Result<bool, StoreError> {
        Ok(true)
    }

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

    /// Starts a new epoch for a topic whose stored sequence went back (acknowledged writes
    /// were lost): the next load continues from what is stored, numbered in `epoch`, so
    /// gateways see the break instead of a sequence that silently repeats.
    async fn restart_epoch(
        &self,
        _topic: &TopicRef,
        _fence: Fence,
        _epoch: u64,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// Gives up ownership of a topic whose actor stopped.
    async fn release(&self, topic: &TopicRef, fence: Fence) -> Result<(), StoreError>;

    /// Gives up ownership of a topic that held nothing or was abandoned, and deletes what
    /// the store kept of it (its fence stays, so an old owner can never write again).
    async fn forget(&self, topic: &TopicRef, fence: Fence) -> Result<(), StoreError> {
        self.release(topic, fence).await
    }

    /// Returns the topic an endpoint belongs to.
    async fn resolve_endpoint(&self, endpoint: &EndpointId)
    -> Result<Option<TopicRef>, StoreError>;

    /// What the admin API recorded of a topic (minted for a user, revoked); `None` when
    /// nothing. Records outlive the topic's state: forgetting an idle topic keeps them.
    async fn record(&self, topic: &TopicRef) -> Result<Option<TopicRecord>, StoreError>;

    /// Stores a topic's record under `fence`, and lists it.
    async fn put_record(
        &self,
        topic: &TopicRef,
        fence: Fence,
        record: &TopicRecord,
    ) -> Result<(), StoreError>;

    /// The records, newest first: at most `limit`, only those minted for `user` if given.
    async fn list_records(
        &self,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicRecord>, StoreError>;
}
