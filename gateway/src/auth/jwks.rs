//! The issuer's JWKS, fetched over HTTP and cached in memory.
//!
//! - A lookup miss on the cached keys (an unknown `kid`) refetches at most once per
//!   `refresh_min_interval` (60 s by default, set per issuer), single-flight: concurrent callers
//!   wait for the same fetch and then look again. A miss inside the interval is refused at
//!   once (401, unknown key) without a fetch and without waiting (TOK-06): hostile key ids
//!   cost the issuer at most one fetch per interval whatever their number. A key the
//!   issuer starts signing with while misses keep the interval busy is picked up by the
//!   first miss after the interval ends, or by the background revalidation below.
//! - While no keys are cached at all, a fetch is tried at most once per [`NO_KEYS_RETRY`]
//!   (1 s); requests in between are refused with 503 at once.
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
/// Minimum time between two fetches while no keys are cached (the issuer was down at
/// start-up, or the keys passed [`MAX_STALE`]): short, since every request waits for them.
const NO_KEYS_RETRY: Duration = Duration::from_secs(1);
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

/// Why a refresh after a miss produced no new keys.
#[derive(Debug)]
enum RefreshError {
    /// A miss already caused a fetch less than the refresh interval ago.
    RateLimited,
    /// The fetch failed (the cause, for logs).
    Failed(String),
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
        match self
            .refresh_after(snapshot.map(|s| s.generation), had_keys)
            .await
        {
            Ok(fresh) => decide(&fresh.keys, kid, alg)?.ok_or(AuthError::UnknownKey),
            Err(_) if had_keys => Err(AuthError::UnknownKey),
            Err(RefreshError::Failed(cause)) => Err(AuthError::JwksUnavailable { cause }),
            Err(RefreshError::RateLimited) => Err(AuthError::JwksUnavailable {
                cause: "the last fetch failed; the next is allowed after the refresh interval"
                    .to_owned(),
            }),
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

    /// Single-flight, rate-limited refetch after a miss on generation `seen`: once per
    /// refresh interval while keys are cached (an unknown `kid`), once per
    /// [`NO_KEYS_RETRY`] while none are (every token needs the fetch then).
    async fn refresh_after(
        &self,
        seen: Option<u64>,
        had_keys: bool,
    ) -> Result<Arc<Snapshot>, RefreshError> {
        let interval = if had_keys {
            self.min_interval
        } else {
            self.min_interval.min(NO_KEYS_RETRY)
        };
        let mut state = self.refresh.lock().await;
        if let Some(current) = self.snapshot()
            && Some(current.generation) != seen
        {
            // Another caller refreshed while this one waited.
            return Ok(current);
        }
        if state
            .last_miss_fetch
            .is_some_and(|at| at.elapsed() < interval)
        {
            // Inside the interval: refuse now rather than fetch or hold the request.
            return Err(RefreshError::RateLimited);
        }
        state.last_miss_fetch = Some(Instant::now());
        self.fetch_and_store(&mut state)
            .await
            .map_err(RefreshError::Failed)
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
