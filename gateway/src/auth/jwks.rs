//! The issuer's JWKS, fetched over HTTP and cached in memory.
//!
//! - A lookup miss (unknown `kid`, or no keys yet) refetches at most once per
//!   `refresh_min_interval` (1 s by default), single-flight: concurrent callers wait for
//!   the same fetch and then look again. A miss inside the interval waits for the interval
//!   to end and then fetches, instead of failing: hostile key ids cost the issuer at most
//!   one fetch per interval, and cannot starve a real rotation, which is picked up within
//!   one interval.
//! - Keys older than [`REVALIDATE_AFTER`] are refetched in the background, so removed keys
//!   stop verifying within that time; while the issuer is down, cached keys keep verifying
//!   for up to [`MAX_STALE`] (TOK-15).
//! - A fetch has a 5 s timeout and a 1 MiB body cap; a document without usable keys is
//!   treated as a failed fetch and the previous keys are kept.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey};
use tracing::{info, warn};

use super::AuthError;
use super::http_body::read_capped;
use super::keyset::{KeySet, Lookup};

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BODY: usize = 1024 * 1024;
/// Age after which cached keys are refetched in the background.
pub(crate) const REVALIDATE_AFTER: Duration = Duration::from_secs(10 * 60);
/// Age after which cached keys are no longer used at all.
pub(crate) const MAX_STALE: Duration = Duration::from_secs(24 * 60 * 60);
/// Minimum time between two background revalidations.
const BACKGROUND_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Snapshot {
    keys: KeySet,
    fetched_at: Instant,
    generation: u64,
}

#[derive(Debug, Default)]
struct RefreshState {
    /// When a lookup miss last caused a fetch (the rate limit's clock).
    last_miss_fetch: Option<Instant>,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
    generation: u64,
}

/// The cached key set of one issuer.
#[derive(Debug)]
pub(crate) struct JwksCache {
    url: String,
    http: reqwest::Client,
    min_interval: Duration,
    current: RwLock<Option<Arc<Snapshot>>>,
    refresh: tokio::sync::Mutex<RefreshState>,
    last_background: Mutex<Option<Instant>>,
}

impl JwksCache {
    pub(crate) fn new(url: String, http: reqwest::Client, min_interval: Duration) -> Self {
        Self {
            url,
            http,
            min_interval,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
            last_background: Mutex::new(None),
        }
    }

    /// Fetches the key set now (start-up), regardless of the miss rate limit.
    pub(crate) async fn prefetch(&self) -> Result<(), AuthError> {
        let mut state = self.refresh.lock().await;
        self.fetch_and_store(&mut state)
            .await
            .map(drop)
            .map_err(|cause| AuthError::JwksUnavailable { cause })
    }

    /// Returns the key that may verify a token with this `kid` and `alg`.
    pub(crate) async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<DecodingKey>, AuthError> {
        let snapshot = self.snapshot();
        if let Some(snapshot) = &snapshot {
            if snapshot.fetched_at.elapsed() > REVALIDATE_AFTER {
                self.revalidate_in_background();
            }
            if let Some(found) = decide(&snapshot.keys, kid, alg)? {
                return Ok(found);
            }
        }
        let had_keys = snapshot.is_some();
        match self.refresh_after(snapshot.map(|s| s.generation)).await {
            Ok(fresh) => decide(&fresh.keys, kid, alg)?.ok_or(AuthError::UnknownKey),
            Err(_) if had_keys => Err(AuthError::UnknownKey),
            Err(cause) => Err(AuthError::JwksUnavailable { cause }),
        }
    }

    /// The cached keys, unless there are none or they are older than [`MAX_STALE`].
    fn snapshot(&self) -> Option<Arc<Snapshot>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current
            .as_ref()
            .filter(|snapshot| snapshot.fetched_at.elapsed() <= MAX_STALE)
            .cloned()
    }

    /// Single-flight, rate-limited refetch after a miss on generation `seen`.
    async fn refresh_after(&self, seen: Option<u64>) -> Result<Arc<Snapshot>, String> {
        let mut state = self.refresh.lock().await;
        if let Some(current) = self.snapshot()
            && Some(current.generation) != seen
        {
            // Another caller refreshed while this one waited.
            return Ok(current);
        }
        if let Some(at) = state.last_miss_fetch {
            let next_allowed = at + self.min_interval;
            if next_allowed > Instant::now() {
                // Wait out the interval holding the lock: callers behind us find the
                // fetch done and look again without fetching.
                tokio::time::sleep_until(next_allowed.into()).await;
            }
        }
        state.last_miss_fetch = Some(Instant::now());
        self.fetch_and_store(&mut state).await
    }

    fn revalidate_in_background(self: &Arc<Self>) {
        {
            let mut last = self
                .last_background
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < BACKGROUND_RETRY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            // A refresh in flight will do; never queue behind it.
            let Ok(mut state) = cache.refresh.try_lock() else {
                return;
            };
            // Failures are logged inside; the cached keys stay until MAX_STALE.
            let _ = cache.fetch_and_store(&mut state).await;
        });
    }

    async fn fetch_and_store(&self, state: &mut RefreshState) -> Result<Arc<Snapshot>, String> {
        match self.fetch().await {
            Ok(keys) => {
                state.generation += 1;
                state.last_error = None;
                info!(target: "auth", url = %self.url, keys = keys.len(), "fetched jwks");
                let snapshot = Arc::new(Snapshot {
                    keys,
                    fetched_at: Instant::now(),
                    generation: state.generation,
                });
                *self.current.write().unwrap_or_else(PoisonError::into_inner) =
                    Some(Arc::clone(&snapshot));
                Ok(snapshot)
            }
            Err(cause) => {
                warn!(target: "auth", url = %self.url, cause = %cause, "jwks fetch failed");
                state.last_error = Some(cause.clone());
                Err(cause)
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let response = self
            .http
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|err| format!("request failed: {}", err.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("issuer answered {status}"));
        }
        let body = read_capped(response, MAX_BODY).await?;
        let document: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| "jwks is not json".to_owned())?;
        let keys = KeySet::from_document(&document)
            .ok_or_else(|| "document is not a jwk set".to_owned())?;
        if keys.len() == 0 {
            return Err("jwk set has no usable signing keys".to_owned());
        }
        Ok(keys)
    }
}

/// `Ok(Some)` for a usable key, `Ok(None)` when a refresh may help, `Err` when it cannot.
pub(super) fn decide(
    keys: &KeySet,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<Option<Arc<DecodingKey>>, AuthError> {
    match keys.find(kid, alg) {
        Lookup::Found(key) => Ok(Some(key)),
        Lookup::NotFound => Ok(None),
        Lookup::WrongAlgorithm => Err(AuthError::invalid(
            "token signing key does not match the token algorithm",
        )),
        Lookup::Ambiguous => Err(AuthError::invalid(
            "token has no key id and the issuer publishes several keys",
        )),
    }
}
