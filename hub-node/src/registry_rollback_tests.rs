//! P9 at load: a topic loaded from a store that is behind what this node committed (a
//! failover lost acknowledged changes) restarts in a new epoch; one loaded from a store
//! that kept everything does not; one this node knows nothing about restarts only if the
//! store says a failover may just have lost acknowledged writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use fhircast_proto::event::EventRequest;
use fhircast_proto::hub::{Caller, TopicRecord};
use fhircast_proto::{EndpointId, TopicId, TopicKey, TopicRef};

use super::*;
use crate::store::{Change, Snapshot};
use crate::topic::TopicSettings;

/// A store holding one topic's snapshot, which a test can roll back to a saved copy (the
/// replica a failover promotes) and make fail once (the commit that stops the actor).
#[derive(Debug, Default)]
struct RollbackStore {
    snapshot: Mutex<Snapshot>,
    fences: Mutex<u64>,
    fail_next_commit: AtomicBool,
    lost_writes_possible: AtomicBool,
    restarted_epochs: Mutex<Vec<u64>>,
}

impl RollbackStore {
    fn snapshot(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.snapshot.lock().expect("snapshot lock")
    }
}

#[async_trait::async_trait]
impl Store for RollbackStore {
    async fn acquire(&self, _topic: &TopicRef) -> Result<Fence, StoreError> {
        let mut fences = self.fences.lock().expect("fence lock");
        *fences += 1;
        Ok(Fence(*fences))
    }

    fn may_have_lost_writes(&self) -> bool {
        self.lost_writes_possible.load(Ordering::Acquire)
    }

    async fn load(&self, _topic: &TopicRef) -> Result<Snapshot, StoreError> {
        Ok(self.snapshot().clone())
    }

    async fn record(&self, _topic: &TopicRef) -> Result<Option<TopicRecord>, StoreError> {
        Ok(None)
    }

    async fn put_record(
        &self,
        _topic: &TopicRef,
        _fence: Fence,
        _record: &TopicRecord,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn list_records(
        &self,
        _user: Option<&str>,
        _limit: usize,
    ) -> Result<Vec<TopicRecord>, StoreError> {
        Ok(Vec::new())
    }

    async fn commit(
        &self,
        _topic: &TopicRef,
        _fence: Fence,
        change: Change,
    ) -> Result<(), StoreError> {
        if self.fail_next_commit.swap(false, Ordering::AcqRel) {
            return Err(StoreError::Unavailable);
        }
        self.snapshot().apply(&change, 100);
        Ok(())
    }

    async fn restart_epoch(
        &self,
        _topic: &TopicRef,
        _fence: Fence,
        epoch: u64,
    ) -> Result<(), StoreError> {
        if let Some(header) = self.snapshot().header.as_mut() {
            header.epoch = epoch;
        }
        self.restarted_epochs
            .lock()
            .expect("epochs lock")
            .push(epoch);
        Ok(())
    }

    async fn release(&self, _topic: &TopicRef, _fence: Fence) -> Result<(), StoreError> {
        Ok(())
    }

    async fn resolve_endpoint(
        &self,
        _endpoint: &EndpointId,
    ) -> Result<Option<TopicRef>, StoreError> {
        Ok(None)
    }
}

fn setup() -> (Registry, Arc<RollbackStore>, TopicId) {
    let key = TopicKey::random();
    let store = Arc::new(RollbackStore::default());
    let registry = registry_on(&store, &key);
    let topic = TopicId::parse("rollback-test-topic-0123456789", &key).expect("valid topic");
    (registry, store, topic)
}

/// A registry (a node) over `store`, with no record of any topic.
fn registry_on(store: &Arc<RollbackStore>, key: &TopicKey) -> Registry {
    Registry::new(
        Arc::clone(store) as Arc<dyn Store>,
        TopicSettings::default(),
        key.clone(),
        TaskTracker::new(),
        CancellationToken::new(),
    )
}

fn patient_open(topic: &TopicId, n: u32) -> EventRequest {
    let body = json!({
        "timestamp": "2026-01-01T00:00:00Z",
        "id": format!("evt-{n}"),
        "event": {
            "hub.topic": topic.expose(),
            "hub.event": "Patient-open",
            "context": [{"key": "patient", "resource": {"resourceType": "Patient", "id": format!("p{n}")}}]
        }
    });
    EventRequest::from_json(
        &body,
        SystemTime::now(),
        &fhircast_proto::limits::Limits::DEFAULT,
    )
    .expect("valid event")
}

async fn publish(registry: &Registry, topic: &TopicId, n: u32) -> Result<(), TopicError> {
    let handle = registry.topic(topic).await?;
    handle
        .publish(patient_open(topic, n), Caller::default())
        .await
        .map(|_| ())
}

fn stored_epoch(store: &RollbackStore) -> u64 {
    store.snapshot().header.as_ref().expect("a header").epoch
}

/// Publishes two events (the store keeps a copy after the first, as a lagging replica
/// would), then makes the third commit fail so the actor stops; `roll_back` decides whether
/// the store comes back as that copy. Returns the epoch before and the store.
async fn stop_after_two(roll_back: bool) -> (Registry, Arc<RollbackStore>, TopicId, u64) {
    let (registry, store, topic) = setup();
    publish(&registry, &topic, 1).await.expect("first accepted");
    let replica = store.snapshot().clone();
    publish(&registry, &topic, 2)
        .await
        .expect("second accepted");
    let epoch = stored_epoch(&store);
    if roll_back {
        *store.snapshot() = replica;
    }
    store.fail_next_commit.store(true, Ordering::Release);
    assert_eq!(
        publish(&registry, &topic, 3).await,
        Err(TopicError::Unavailable),
        "the failed commit is not acknowledged"
    );
    (registry, store, topic, epoch)
}

#[tokio::test]
async fn p9_a_topic_loaded_behind_what_this_node_committed_restarts_in_a_new_epoch() {
    let (registry, store, topic, epoch) = stop_after_two(true).await;
    publish(&registry, &topic, 4)
        .await
        .expect("accepted after the reload");
    let restarted = store.restarted_epochs.lock().expect("epochs").clone();
    assert_eq!(restarted.len(), 1, "one new epoch: {restarted:?}");
    assert_ne!(restarted[0], epoch);
    assert_eq!(
        stored_epoch(&store),
        restarted[0],
        "the topic goes on in the new epoch"
    );
}

#[tokio::test]
async fn p9_a_topic_loaded_as_this_node_committed_it_keeps_its_epoch() {
    let (registry, store, topic, epoch) = stop_after_two(false).await;
    publish(&registry, &topic, 4)
        .await
        .expect("accepted after the reload");
    assert!(
        store.restarted_epochs.lock().expect("epochs").is_empty(),
        "no rollback, no new epoch"
    );
    assert_eq!(stored_epoch(&store), epoch);
}

/// Another node loads a topic the first one wrote; `after_failover` decides whether the
/// store says a failover may just have lost acknowledged writes. Returns the epochs the
/// store restarted.
async fn loaded_by_another_node(after_failover: bool) -> Vec<u64> {
    let key = TopicKey::random();
    let store = Arc::new(RollbackStore::default());
    let topic = TopicId::parse("rollback-test-topic-0123456789", &key).expect("valid topic");
    publish(&registry_on(&store, &key), &topic, 1)
        .await
        .expect("accepted by the first node");
    store
        .lost_writes_possible
        .store(after_failover, Ordering::Release);
    publish(&registry_on(&store, &key), &topic, 2)
        .await
        .expect("accepted by the second node");
    store.restarted_epochs.lock().expect("epochs").clone()
}

#[tokio::test]
async fn p9_a_topic_loaded_without_a_record_right_after_a_failover_restarts_in_a_new_epoch() {
    assert_eq!(loaded_by_another_node(true).await.len(), 1);
}

#[tokio::test]
async fn p9_a_topic_loaded_without_a_record_otherwise_keeps_its_epoch() {
    assert!(loaded_by_another_node(false).await.is_empty());
}
