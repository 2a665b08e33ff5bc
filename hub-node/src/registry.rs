//! The registry of live topics: topic ref → [`TopicHandle`]. It spawns an actor on first
//! use (taking ownership in the store, then loading state) on the shared task tracker, and
//! respawns one whose actor stopped.
//!
//! Locking: the map of slots is behind a short synchronous lock that is never held across
//! an await; each topic's slot has its own async lock, held while that one topic is being
//! acquired and loaded. Store I/O for one topic never blocks another.
//!
//! Each loaded topic is compared with what this node last committed to it ([`HighWater`]):
//! a store found behind (a failover rolled acknowledged changes back) restarts the topic in
//! a new epoch.
//!
//! A topic can be reached by its raw id (subscribe, publish, get context) or by its ref
//! alone (endpoint-addressed calls in the cluster, after a failover): the raw topic is then
//! read from the store, which keeps it with the topic.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use fhircast_proto::hub::{TopicError, TopicRecord};
use fhircast_proto::ids::random_bytes;
use fhircast_proto::{EndpointId, TopicId, TopicKey, TopicRef};

use crate::high_water::{HighWater, Mark, restart_after_failover, restart_after_rollback};
use crate::store::{Fence, Store, StoreError};
use crate::topic::{TopicActor, TopicHandle, TopicSettings, TopicState};

/// The most topic records one listing returns.
pub const MAX_LISTED_RECORDS: usize = 1000;

/// One topic's place in the registry; its lock is held while the topic is being spawned.
type Slot = Arc<tokio::sync::Mutex<Option<TopicHandle>>>;

/// Live topics of this process.
#[derive(Clone, Debug)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    slots: Mutex<HashMap<TopicRef, Slot>>,
    store: Arc<dyn Store>,
    settings: TopicSettings,
    key: TopicKey,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    high_water: Arc<HighWater>,
}

impl Inner {
    fn slots(&self) -> MutexGuard<'_, HashMap<TopicRef, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Forgets a slot that holds no running actor (and nobody is spawning into).
    fn forget_if_empty(&self, topic: &TopicRef) {
        let mut slots = self.slots();
        let empty = slots.get(topic).is_some_and(|slot| {
            slot.try_lock()
                .is_ok_and(|handle| handle.as_ref().is_none_or(TopicHandle::is_stopped))
        });
        if empty {
            slots.remove(topic);
        }
    }
}

impl Registry {
    /// Creates a registry whose actors commit to `store`, run on `tracker` and stop when
    /// `shutdown` is cancelled. `key` is the deployment's topic key (refs of stored raw
    /// topics are checked against it).
    pub fn new(
        store: Arc<dyn Store>,
        settings: TopicSettings,
        key: TopicKey,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                slots: Mutex::new(HashMap::new()),
                store,
                settings,
                key,
                tracker,
                shutdown,
                high_water: Arc::default(),
            }),
        }
    }

    /// Returns the settings topics run with.
    pub fn settings(&self) -> &TopicSettings {
        &self.inner.settings
    }

    /// Returns the handle of a topic, spawning its actor if it is not running.
    pub async fn topic(&self, topic: &TopicId) -> Result<TopicHandle, TopicError> {
        self.handle(topic.topic_ref(), Some(topic)).await
    }

    /// Returns the handle of a topic known only by its ref, spawning its actor from the
    /// store if it is not running; `UnknownEndpoint` if the store has no such topic.
    pub async fn topic_by_ref(&self, topic: &TopicRef) -> Result<TopicHandle, TopicError> {
        self.handle(topic, None).await
    }

    /// Runs `call` against a topic, respawning its actor once if it had stopped.
    pub async fn with_topic<T, F, Fut>(&self, topic: &TopicId, call: F) -> Result<T, TopicError>
    where
        F: Fn(TopicHandle) -> Fut,
        Fut: Future<Output = Result<T, TopicError>>,
    {
        match call(self.topic(topic).await?).await {
            Err(TopicError::Stopped) => call(self.topic(topic).await?).await,
            other => other,
        }
    }

    /// Runs `call` against the topic of an endpoint, respawning its actor once if it had
    /// stopped.
    pub async fn with_endpoint<T, F, Fut>(
        &self,
        endpoint: &EndpointId,
        call: F,
    ) -> Result<T, TopicError>
    where
        F: Fn(TopicHandle) -> Fut,
        Fut: Future<Output = Result<T, TopicError>>,
    {
        let topic = self.resolve_endpoint(endpoint).await?;
        self.with_ref(&topic, call).await
    }

    /// Runs `call` against a topic known by its ref, respawning its actor once if it had
    /// stopped.
    pub async fn with_ref<T, F, Fut>(&self, topic: &TopicRef, call: F) -> Result<T, TopicError>
    where
        F: Fn(TopicHandle) -> Fut,
        Fut: Future<Output = Result<T, TopicError>>,
    {
        match call(self.topic_by_ref(topic).await?).await {
            Err(TopicError::Stopped) => call(self.topic_by_ref(topic).await?).await,
            other => other,
        }
    }

    /// Returns the topic an endpoint belongs to.
    pub async fn resolve_endpoint(&self, endpoint: &EndpointId) -> Result<TopicRef, TopicError> {
        self.inner
            .store
            .resolve_endpoint(endpoint)
            .await
            .map_err(|_| TopicError::Unavailable)?
            .ok_or(TopicError::UnknownEndpoint)
    }

    /// Tells every running topic that these gateways left the cluster, so each drops the
    /// attachments they held.
    pub async fn gateways_gone(&self, gateways: BTreeSet<String>) {
        let gateways = Arc::new(gateways);
        let slots: Vec<Slot> = self.inner.slots().values().cloned().collect();
        let handles: Vec<TopicHandle> = slots
            .iter()
            .filter_map(|slot| slot.try_lock().ok().and_then(|handle| handle.clone()))
            .collect();
        for handle in handles {
            handle.gateways_gone(Arc::clone(&gateways)).await;
        }
    }

    /// Returns how many topics have a running actor.
    pub fn live_topics(&self) -> usize {
        let slots: Vec<Slot> = self.inner.slots().values().cloned().collect();
        slots
            .iter()
            .filter(|slot| {
                slot.try_lock().map_or(true, |handle| {
                    handle.as_ref().is_some_and(|handle| !handle.is_stopped())
                })
            })
            .count()
    }

    async fn handle(
        &self,
        topic_ref: &TopicRef,
        topic: Option<&TopicId>,
    ) -> Result<TopicHandle, TopicError> {
        let slot = Arc::clone(self.inner.slots().entry(topic_ref.clone()).or_default());
        let mut held = slot.lock().await;
        if let Some(handle) = held.as_ref()
            && !handle.is_stopped()
        {
            return Ok(handle.clone());
        }
        let spawned = if self.inner.shutdown.is_cancelled() {
            Err(TopicError::Unavailable)
        } else {
            self.spawn(topic_ref, topic).await
        };
        match spawned {
            Ok(handle) => {
                *held = Some(handle.clone());
                Ok(handle)
            }
            Err(err) => {
                drop(held);
                self.inner.forget_if_empty(topic_ref);
                Err(err)
            }
        }
    }

    /// The admin API's topic records, newest first: at most `limit` (capped at
    /// [`MAX_LISTED_RECORDS`]), only those minted for `user` if given. Read from the store;
    /// no topic is loaded.
    pub async fn list_records(
        &self,
        user: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TopicRecord>, TopicError> {
        self.inner
            .store
            .list_records(user, limit.min(MAX_LISTED_RECORDS))
            .await
            .map_err(|_| TopicError::Unavailable)
    }

    /// Acquires the topic, loads it, and starts its actor.
    async fn spawn(
        &self,
        topic_ref: &TopicRef,
        topic: Option<&TopicId>,
    ) -> Result<TopicHandle, TopicError> {
        let inner = &self.inner;
        let fence = inner
            .store
            .acquire(topic_ref)
            .await
            .map_err(|err| match err {
                StoreError::Owned { holder } => TopicError::NotOwner { holder },
                _ => TopicError::Unavailable,
            })?;
        let loaded = match self.load_checked(topic_ref, topic, fence).await {
            Ok(state) => match inner.store.record(topic_ref).await {
                Ok(record) => Ok((state, record)),
                Err(_) => Err(TopicError::Unavailable),
            },
            Err(err) => Err(err),
        };
        match loaded {
            Ok((state, record)) => Ok(self.start(state, record, fence)),
            Err(err) => {
                let _ = inner.store.release(topic_ref, fence).await;
                Err(err)
            }
        }
    }

    /// Loads a topic and compares it with what this node last committed to it: when the
    /// store is behind in the same epoch (a failover lost acknowledged changes), the topic
    /// restarts in a new epoch and is loaded again.
    async fn load_checked(
        &self,
        topic_ref: &TopicRef,
        topic: Option<&TopicId>,
        fence: Fence,
    ) -> Result<TopicState, TopicError> {
        let state = self.load(topic_ref, topic).await?;
        let loaded = Mark::of(&state);
        let store = self.inner.store.as_ref();
        let restarted = match self.inner.high_water.get(topic_ref) {
            Some(committed) if committed.is_ahead_of(loaded) => {
                restart_after_rollback(store, state.topic(), fence, loaded, committed).await
            }
            // No record here of where the topic had reached, a stored history, and a
            // failover that may have lost acknowledged writes moments ago: act as if it did.
            None if loaded.seq > 0 && store.may_have_lost_writes() => {
                restart_after_failover(store, state.topic(), fence).await
            }
            _ => return Ok(state),
        };
        restarted.map_err(|_| TopicError::Unavailable)?;
        self.load(topic_ref, topic).await
    }

    /// Loads a topic after acquiring it: its stored state, or a fresh one when only the
    /// raw topic is known.
    async fn load(
        &self,
        topic_ref: &TopicRef,
        topic: Option<&TopicId>,
    ) -> Result<TopicState, TopicError> {
        let inner = &self.inner;
        let snapshot = inner
            .store
            .load(topic_ref)
            .await
            .map_err(|_| TopicError::Unavailable)?;
        let stored = match &snapshot.header {
            Some(header) => Some(
                TopicId::parse(&header.topic, &inner.key)
                    .ok()
                    .filter(|stored| stored.topic_ref() == topic_ref)
                    .ok_or(TopicError::Unavailable)?,
            ),
            None => None,
        };
        let Some(topic) = stored.or_else(|| topic.cloned()) else {
            return Err(TopicError::UnknownEndpoint);
        };
        let restored = TopicState::restore(topic.clone(), inner.settings.clone(), snapshot);
        Ok(restored.unwrap_or_else(|| {
            let epoch = u64::from_le_bytes(random_bytes::<8>());
            TopicState::new(topic, inner.settings.clone(), epoch)
        }))
    }

    fn start(&self, state: TopicState, record: Option<TopicRecord>, fence: Fence) -> TopicHandle {
        let inner = &self.inner;
        let topic = state.topic().clone();
        let committed = Mark::of(&state);
        let (sender, mailbox) = mpsc::channel(inner.settings.mailbox_capacity);
        let actor = TopicActor {
            state,
            mailbox,
            store: Arc::clone(&inner.store),
            fence,
            shutdown: inner.shutdown.child_token(),
            idle_stop: Duration::from_millis(inner.settings.idle_stop_ms),
            retention: Duration::from_millis(inner.settings.retention_ms),
            high_water: Arc::clone(&inner.high_water),
            committed,
            record,
        };
        let handle = TopicHandle::new(topic.clone(), sender);
        // A root span: the actor outlives the request that happened to start it.
        let span = tracing::info_span!(parent: None, "topic", topic = %topic);
        let registry = Arc::clone(&self.inner);
        inner.tracker.spawn(
            async move {
                actor.run().await;
                // Forget the stopped actor, unless a new one already took its place.
                registry.forget_if_empty(topic.topic_ref());
            }
            .instrument(span),
        );
        handle
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "registry_rollback_tests.rs"]
mod rollback_tests;
