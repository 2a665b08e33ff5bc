//! The in-memory store of the embedded hub. State lives in the topic actors themselves
//! (a restart loses it, which start-up says plainly); this store keeps what outlives an
//! actor: ownership fences and the endpoint → topic index, and it publishes committed
//! envelopes on the in-process bus, and the admin API's topic records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fhircast_proto::hub::TopicRecord;
use fhircast_proto::{EndpointId, TopicRef};

use super::{Change, Fence, Snapshot, Store, StoreError};
use crate::bus::MemoryBus;

/// The in-memory store.
#[derive(Debug)]
pub struct MemoryStore {
    bus: Arc<MemoryBus>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    fences: HashMap<TopicRef, u64>,
    endpoints: HashMap<EndpointId, TopicRef>,
    /// Topic records with the order they were first stored in.
    records: HashMap<TopicRef, (u64, TopicRecord)>,
    next_record: u64,
}

impl MemoryStore {
    /// Creates a store that publishes on `bus`.
    pub fn new(bus: Arc<MemoryBus>) -> Self {
        Self {
            bus,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn acquire(&self, topic: &TopicRef) -> Result<Fence, StoreError> {
        let mut inner = self.lock();
        let fence = inner.fences.entry(topic.clone()).or_insert(0);
        *fence += 1;
        Ok(Fence(*fence))
    }

    async fn load(&self, _topic: &TopicRef) -> Result<Snapshot, StoreError> {
        // Actors keep state in memory and stop only when they hold nothing.
        Ok(Snapshot::default())
    }

    async fn commit(
        &self,
        topic: &TopicRef,
        fence: Fence,
        change: Change,
    ) -> Result<(), StoreError> {
        {
            let mut inner = self.lock();
            if inner.fences.get(topic) != Some(&fence.0) {
                return Err(StoreError::Fenced);
            }
            for endpoint in change.endpoints_removed {
                inner.endpoints.remove(&endpoint);
            }
            for endpoint in change.endpoints_added {
                inner.endpoints.insert(endpoint, topic.clone());
            }
        }
        for envelope in change.envelopes {
            self.bus.publish(envelope);
        }
        Ok(())
    }

    async fn release(&self, topic: &TopicRef, fence: Fence) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.fences.get(topic) == Some(&fence.0) {
            inner.fences.remove(topic);
            inner.endpoints.retain(|_, owner| owner != topic);
            self.bus.release(topic);
        }
        Ok(())
    }

    async fn resolve_endpoint(
        &self,
        endpoint: &EndpointId,
    ) -> Result<Option<TopicRef>, StoreError> {
        Ok(self.lock().endpoints.get(endpoint).cloned())
    }

    async fn record(&self, topic: &TopicRef) -> Result<Option<TopicRecord>, StoreError> {
        Ok(self
            .lock()
            .records
            .get(topic)
            .map(|(_, record)| record.clone()))
    }

    async fn put_record(
        &self,
        topic: &TopicRef,
        fence: Fence,
        record: &TopicRecord,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if inner.fences.get(topic) != Some(&fence.0) {
            return Err(StoreError::Fenced);
        }
        let order = match inner.records.get(topic) {
            Some((order, _)) => *order,
            None => {
                inner.next_record += 1;
                inner.next_record
            }
        };
        inner.records.insert(topic.clone(), (order, record.clone()));
        Ok(())
    }

    async fn list_records(
        &self,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicRecord>, StoreError> {
        let inner = self.lock();
        let mut listed: Vec<&(u64, TopicRecord)> = inner
            .records
            .values()
            .filter(|(_, record)| record.listed_for(user))
            .collect();
        listed.sort_by_key(|(order, _)| std::cmp::Reverse(*order));
        Ok(listed
            .into_iter()
            .take(limit)
            .map(|(_, record)| record.clone())
            .collect())
    }
}
