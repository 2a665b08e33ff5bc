//! The cache of introspection answers, so an app's requests do not each cost a round trip
//! to the issuer.
//!
//! - Keys are HMAC-SHA-256 digests of the token under a key drawn at random per process:
//!   the raw token is never stored, and a memory dump yields nothing that can be looked up
//!   or replayed.
//! - An answer lives at most the configured TTL (≤ 60 s), and an active token's answer never
//!   beyond the token's `exp`. Failures to reach the endpoint are never cached.
//! - The cache holds at most `capacity` answers; the oldest go first. Every method takes
//!   `now`, so tests drive the clock.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;

use super::super::{AuthError, Principal};

/// Answers kept at most, per issuer (a few hundred bytes each).
pub(crate) const DEFAULT_CAPACITY: usize = 10_000;

/// The digest a token is cached under.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey([u8; 32]);

impl CacheKey {
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, ..] = self.0;
        write!(f, "CacheKey({a:02x}{b:02x}{c:02x}{d:02x}…)")
    }
}

/// What the endpoint's answer came to.
#[derive(Clone, Debug)]
pub(crate) enum Answer {
    /// Active, and its claims pass the issuer's checks.
    Accepted(Principal),
    /// Inactive, or its claims fail a check: why (a fixed phrase, no claim value).
    Refused(Cow<'static, str>),
}

impl Answer {
    pub(crate) fn into_result(self) -> Result<Principal, AuthError> {
        match self {
            Self::Accepted(principal) => Ok(principal),
            Self::Refused(reason) => Err(AuthError::Invalid { reason }),
        }
    }
}

#[derive(Debug)]
struct Entry {
    answer: Answer,
    expires_at: Instant,
    stamp: u64,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<CacheKey, Entry>,
    /// Insertion order, oldest first; a position whose stamp no longer matches the map's
    /// entry (replaced or removed) is skipped.
    order: VecDeque<(CacheKey, u64)>,
    next_stamp: u64,
}

/// Introspection answers by token digest.
pub(crate) struct IntrospectionCache {
    key: hmac::Key,
    ttl: Duration,
    capacity: usize,
    entries: Mutex<Entries>,
}

impl fmt::Debug for IntrospectionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl IntrospectionCache {
    /// An empty cache with a fresh digest key.
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Result<Self, AuthError> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| AuthError::config("cannot draw a random key for the token cache"))?;
        Ok(Self {
            key,
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(Entries::default()),
        })
    }

    /// The digest `token` is cached under.
    pub(crate) fn key(&self, token: &str) -> CacheKey {
        let tag = hmac::sign(&self.key, token.as_bytes());
        let mut digest = [0_u8; 32];
        digest.copy_from_slice(tag.as_ref());
        CacheKey(digest)
    }

    /// The cached answer, unless there is none or it has expired at `now`.
    pub(crate) fn get(&self, key: &CacheKey, now: Instant) -> Option<Answer> {
        let mut entries = self.lock();
        match entries.map.get(key) {
            Some(entry) if entry.expires_at > now => Some(entry.answer.clone()),
            Some(_) => {
                entries.map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `answer` until `now + min(ttl, lifetime)`; a zero span keeps nothing.
    pub(crate) fn insert(&self, key: CacheKey, answer: Answer, lifetime: Duration, now: Instant) {
        let span = lifetime.min(self.ttl);
        if span.is_zero() {
            return;
        }
        let mut entries = self.lock();
        // A replaced answer makes no room for itself at another's expense.
        entries.map.remove(&key);
        entries.evict(now, self.capacity);
        let stamp = entries.next_stamp;
        entries.next_stamp += 1;
        entries.map.insert(
            key,
            Entry {
                answer,
                expires_at: now + span,
                stamp,
            },
        );
        entries.order.push_back((key, stamp));
    }

    /// How many answers are held (expired ones included until evicted).
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Entries {
    /// Drops expired answers from the old end, then the oldest until one more fits.
    fn evict(&mut self, now: Instant, capacity: usize) {
        while let Some(&(key, stamp)) = self.order.front() {
            let live = self.map.get(&key).filter(|entry| entry.stamp == stamp);
            let is_live = live.is_some();
            let drop_it = match live {
                None => true,
                Some(entry) => entry.expires_at <= now || self.map.len() >= capacity,
            };
            if !drop_it {
                break;
            }
            self.order.pop_front();
            if is_live {
                self.map.remove(&key);
            }
        }
        // Replaced keys leave stale positions behind; keep the queue proportional.
        if self.order.len() > capacity.saturating_mul(2) {
            let map = &self.map;
            self.order
                .retain(|(key, stamp)| map.get(key).is_some_and(|entry| entry.stamp == *stamp));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use fhircast_proto::scope::ScopeSet;

    use super::*;

    const TTL: Duration = Duration::from_secs(30);

    fn accepted() -> Answer {
        Answer::Accepted(Principal {
            subject: None,
            client_id: None,
            scopes: ScopeSet::default(),
            topics: Vec::new(),
            expires_at: SystemTime::now(),
        })
    }

    #[test]
    fn tok_18_answers_live_at_most_the_ttl() {
        let cache = IntrospectionCache::new(TTL, 8).expect("cache");
        let start = Instant::now();
        let key = cache.key("opaque-token-1");
        cache.insert(key, accepted(), Duration::from_secs(3600), start);
        assert!(
            cache
                .get(&key, start + TTL - Duration::from_millis(1))
                .is_some()
        );
        assert!(cache.get(&key, start + TTL).is_none(), "gone at the ttl");
        assert_eq!(
            cache.len(),
            0,
            "an expired answer is dropped when looked up"
        );
    }

    #[test]
    fn tok_18_an_answer_never_outlives_the_token() {
        let cache = IntrospectionCache::new(TTL, 8).expect("cache");
        let start = Instant::now();
        let key = cache.key("opaque-token-2");
        let left = Duration::from_secs(4);
        cache.insert(key, accepted(), left, start);
        assert!(
            cache
                .get(&key, start + left - Duration::from_millis(1))
                .is_some()
        );
        assert!(cache.get(&key, start + left).is_none(), "gone at exp");
        cache.insert(key, accepted(), Duration::ZERO, start);
        assert!(
            cache.get(&key, start).is_none(),
            "an expired token is not kept"
        );
        let off = IntrospectionCache::new(Duration::ZERO, 8).expect("cache");
        off.insert(key, accepted(), left, start);
        assert_eq!(off.len(), 0, "a zero ttl keeps nothing");
    }

    #[test]
    fn tok_18_the_cache_is_bounded_and_drops_the_oldest() {
        let cache = IntrospectionCache::new(TTL, 3).expect("cache");
        let now = Instant::now();
        let keys: Vec<CacheKey> = (0..5).map(|i| cache.key(&format!("token-{i}"))).collect();
        for key in &keys {
            cache.insert(*key, accepted(), TTL, now);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&keys[0], now).is_none());
        assert!(cache.get(&keys[1], now).is_none());
        assert!(cache.get(&keys[4], now).is_some());
        // Re-inserting one key many times leaves no unbounded queue behind.
        for _ in 0..100 {
            cache.insert(keys[4], accepted(), TTL, now);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.lock().order.len() <= 6);
    }

    #[test]
    fn tok_18_the_cache_key_is_a_keyed_digest_never_the_token() {
        let token = "2YotnFZFEjr1zCsicMWpAA";
        let (one, two) = (
            IntrospectionCache::new(TTL, 8).expect("cache"),
            IntrospectionCache::new(TTL, 8).expect("cache"),
        );
        let key = one.key(token);
        assert_eq!(key, one.key(token), "stable within a process");
        assert_ne!(key, one.key("2YotnFZFEjr1zCsicMWpAB"));
        assert_ne!(key, two.key(token), "another process draws another key");
        let bytes = key.bytes();
        assert!(
            !bytes
                .windows(8)
                .any(|window| token.as_bytes().windows(8).any(|part| part == window)),
            "no run of the token in the key"
        );
        one.insert(key, accepted(), TTL, Instant::now());
        let printed = format!("{one:?} {key:?}");
        assert!(!printed.contains(token), "{printed}");
    }
}
