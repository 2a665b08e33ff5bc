//! The registry of live topics: topic ref → [`TopicHandle`]. It spawns an actor on first
//! use (taking ownership in the store, loading state) on the shared task tracker, and
//! respawns one whose actor stopped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use fhircast_proto::ids::random_bytes;
use fhircast_proto::{EndpointId, TopicId, TopicRef};

use crate::store::Store;
use crate::topic::{TopicActor, TopicHandle, TopicSettings, TopicState};
use fhircast_proto::hub::TopicError;

/// Live topics of this process.
#[derive(Clone, Debug)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    topics: Mutex<HashMap<TopicRef, TopicHandle>>,
    store: Arc<dyn Store>,
    settings: TopicSettings,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Registry {
    /// Creates a registry whose actors commit to `store`, run on `tracker` and stop when
    /// `shutdown` is cancelled.
    pub fn new(
        store: Arc<dyn Store>,
        settings: TopicSettings,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                topics: Mutex::new(HashMap::new()),
                store,
                settings,
                tracker,
                shutdown,
            }),
        }
    }

    /// Returns the settings topics run with.
    pub fn settings(&self) -> &TopicSettings {
        &self.inner.settings
    }

    /// Returns the handle of a topic, spawning its actor if it is not running.
    pub async fn topic(&self, topic: &TopicId) -> Result<TopicHandle, TopicError> {
        let mut topics = self.inner.topics.lock().await;
        if let Some(handle) = topics.get(topic.topic_ref())
            && !handle.is_stopped()
        {
            return Ok(handle.clone());
        }
        if self.inner.shutdown.is_cancelled() {
            return Err(TopicError::Unavailable);
        }
        let handle = self.spawn(topic).await?;
        topics.insert(topic.topic_ref().clone(), handle.clone());
        Ok(handle)
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

    /// Returns the running topic an endpoint belongs to.
    pub async fn topic_of_endpoint(
        &self,
        endpoint: &EndpointId,
    ) -> Result<TopicHandle, TopicError> {
        let topic_ref = self
            .inner
            .store
            .resolve_endpoint(endpoint)
            .await
            .map_err(|_| TopicError::Unavailable)?
            .ok_or(TopicError::UnknownEndpoint)?;
        let topics = self.inner.topics.lock().await;
        topics
            .get(&topic_ref)
            .filter(|handle| !handle.is_stopped())
            .cloned()
            .ok_or(TopicError::UnknownEndpoint)
    }

    /// Returns how many topics have a running actor.
    pub async fn live_topics(&self) -> usize {
        let topics = self.inner.topics.lock().await;
        topics
            .values()
            .filter(|handle| !handle.is_stopped())
            .count()
    }

    async fn spawn(&self, topic: &TopicId) -> Result<TopicHandle, TopicError> {
        let inner = &self.inner;
        let fence = inner
            .store
            .acquire(topic.topic_ref())
            .await
            .map_err(|_| TopicError::Unavailable)?;
        let snapshot = inner
            .store
            .load(topic.topic_ref())
            .await
            .map_err(|_| TopicError::Unavailable)?;
        let restored = TopicState::restore(topic.clone(), inner.settings.clone(), snapshot);
        let state = restored.unwrap_or_else(|| {
            let epoch = u64::from_le_bytes(random_bytes::<8>());
            TopicState::new(topic.clone(), inner.settings.clone(), epoch)
        });
        let (sender, mailbox) = mpsc::channel(inner.settings.mailbox_capacity);
        let actor = TopicActor {
            state,
            mailbox,
            store: Arc::clone(&inner.store),
            fence,
            shutdown: inner.shutdown.child_token(),
            idle_stop: Duration::from_millis(inner.settings.idle_stop_ms),
            retention: Duration::from_millis(inner.settings.retention_ms),
        };
        let handle = TopicHandle::new(topic.clone(), sender);
        // A root span: the actor outlives the request that happened to start it.
        let span = tracing::info_span!(parent: None, "topic", topic = %topic);
        let registry = Arc::clone(&self.inner);
        let topic_ref = topic.topic_ref().clone();
        inner.tracker.spawn(
            async move {
                actor.run().await;
                // Forget the stopped actor, unless a new one already took its place.
                let mut topics = registry.topics.lock().await;
                if topics.get(&topic_ref).is_some_and(TopicHandle::is_stopped) {
                    topics.remove(&topic_ref);
                }
            }
            .instrument(span),
        );
        Ok(handle)
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
