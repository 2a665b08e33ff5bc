//! Per-client rate limits (INP, TOP-04): each app and user (the verified token's
//! `client_id` and `sub`, never the source address, which a hospital's NAT shares between
//! many users) gets a bucket of requests, and a small bucket of refusals for topics it may
//! not use. An empty bucket answers 429 with `Retry-After`.
//!
//! Limits are per gateway: behind N gateways a client may make up to N times as many
//! requests. Buckets of clients that went quiet are dropped once the table grows, so the
//! table stays bounded.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use fhircast_proto::hub::TOPIC_NOT_PERMITTED;

use crate::auth::Principal;
use crate::error::ApiError;

/// How many clients' buckets are kept before quiet ones are dropped.
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// The limits, from the command line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimitSettings {
    /// Sustained API requests per second per client (0: unlimited).
    pub requests_per_second: u32,
    /// Requests a client may make at once beyond the sustained rate.
    pub burst: u32,
    /// Refusals for topics the client may not use, per minute, before every request of
    /// the client is refused for the rest of the minute (0: unlimited).
    pub topic_refusals_per_minute: u32,
}

/// The buckets of every client.
#[derive(Debug)]
pub struct RateLimits {
    requests: Option<Buckets>,
    topic_refusals: Option<Buckets>,
    hasher: RandomState,
}

impl RateLimits {
    /// Limits as configured.
    pub fn new(settings: RateLimitSettings) -> Self {
        let per_second = |count: u32, period: f64| f64::from(count) / period;
        Self {
            requests: (settings.requests_per_second > 0).then(|| {
                Buckets::new(
                    f64::from(settings.burst.max(settings.requests_per_second)),
                    per_second(settings.requests_per_second, 1.0),
                )
            }),
            topic_refusals: (settings.topic_refusals_per_minute > 0).then(|| {
                Buckets::new(
                    f64::from(settings.topic_refusals_per_minute),
                    per_second(settings.topic_refusals_per_minute, 60.0),
                )
            }),
            hasher: RandomState::new(),
        }
    }

    fn key(&self, principal: &Principal) -> u64 {
        self.hasher
            .hash_one((principal.client_id.as_deref(), principal.subject.as_deref()))
    }

    /// Admits one request of `principal`, or answers 429.
    pub fn admit(&self, principal: &Principal) -> Result<(), ApiError> {
        let key = self.key(principal);
        let now = Instant::now();
        if let Some(refusals) = &self.topic_refusals
            && let Some(wait) = refusals.empty_for(key, now)
        {
            return Err(too_many(
                "too many requests for topics this token may not use",
                wait,
            ));
        }
        match &self.requests {
            Some(requests) => requests
                .take(key, now)
                .map_err(|wait| too_many("too many requests from this app and user", wait)),
            None => Ok(()),
        }
    }

    /// Counts the answer to a request of `principal`: a refusal for a topic it may not use
    /// takes from its refusal bucket.
    pub fn observe<T>(&self, principal: &Principal, result: &Result<T, ApiError>) {
        let Some(refusals) = &self.topic_refusals else {
            return;
        };
        if let Err(err) = result
            && err.status() == StatusCode::FORBIDDEN
            && err.reason() == TOPIC_NOT_PERMITTED
        {
            let _ = refusals.take(self.key(principal), Instant::now());
        }
    }
}

fn too_many(what: &str, wait: Duration) -> ApiError {
    let seconds = u32::try_from(wait.as_secs().saturating_add(1)).unwrap_or(u32::MAX);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("{what}; retry after {seconds} s"),
    )
    .retry_after(seconds)
}

/// Token buckets keyed by client.
#[derive(Debug)]
struct Buckets {
    capacity: f64,
    refill_per_second: f64,
    table: Mutex<HashMap<u64, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Buckets {
    fn new(capacity: f64, refill_per_second: f64) -> Self {
        Self {
            capacity,
            refill_per_second,
            table: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Bucket>> {
        self.table
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.refill_per_second).min(self.capacity)
    }

    fn wait_for_one(&self, tokens: f64) -> Duration {
        Duration::from_secs_f64(((1.0 - tokens) / self.refill_per_second).max(0.0))
    }

    /// Takes a token; when there is none, how long until there is.
    fn take(&self, key: u64, now: Instant) -> Result<(), Duration> {
        let mut table = self.lock();
        if table.len() >= MAX_TRACKED_CLIENTS && !table.contains_key(&key) {
            // Drop the clients whose buckets are full again: they have been quiet.
            table.retain(|_, bucket| self.refilled(*bucket, now) < self.capacity);
        }
        let bucket = table.entry(key).or_insert(Bucket {
            tokens: self.capacity,
            at: now,
        });
        let tokens = self.refilled(*bucket, now);
        if tokens < 1.0 {
            return Err(self.wait_for_one(tokens));
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            at: now,
        };
        Ok(())
    }

    /// How long the client's bucket stays empty; `None` when it holds a token.
    fn empty_for(&self, key: u64, now: Instant) -> Option<Duration> {
        let table = self.lock();
        let tokens = self.refilled(*table.get(&key)?, now);
        (tokens < 1.0).then(|| self.wait_for_one(tokens))
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use fhircast_proto::scope::ScopeSet;

    use super::*;

    fn principal(client: &str, subject: &str) -> Principal {
        Principal {
            subject: Some(subject.to_owned()),
            client_id: Some(client.to_owned()),
            scopes: ScopeSet::default(),
            topics: Vec::new(),
            expires_at: SystemTime::now() + Duration::from_secs(60),
        }
    }

    #[test]
    fn a_bucket_refills_at_its_rate_and_says_how_long_to_wait() {
        let buckets = Buckets::new(2.0, 10.0);
        let start = Instant::now();
        assert!(buckets.take(1, start).is_ok());
        assert!(buckets.take(1, start).is_ok());
        let wait = buckets.take(1, start).expect_err("empty");
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(buckets.take(1, start + Duration::from_millis(100)).is_ok());
        assert!(
            buckets.take(2, start).is_ok(),
            "another client has its own bucket"
        );
    }

    #[test]
    fn requests_beyond_the_burst_get_429_keyed_on_app_and_user() {
        let limits = RateLimits::new(RateLimitSettings {
            requests_per_second: 1,
            burst: 3,
            topic_refusals_per_minute: 0,
        });
        let alice = principal("app", "alice");
        for _ in 0..3 {
            assert!(limits.admit(&alice).is_ok());
        }
        let refused = limits.admit(&alice).expect_err("over the burst");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            limits.admit(&principal("app", "bob")).is_ok(),
            "another user"
        );
        assert!(
            limits.admit(&principal("other-app", "alice")).is_ok(),
            "another app"
        );
    }

    #[test]
    fn top_04_topic_refusals_beyond_the_limit_block_the_client() {
        let limits = RateLimits::new(RateLimitSettings {
            requests_per_second: 0,
            burst: 0,
            topic_refusals_per_minute: 2,
        });
        let mallory = principal("app", "mallory");
        let refusal: Result<(), ApiError> = Err(ApiError::topic_not_permitted());
        let other: Result<(), ApiError> = Err(ApiError::new(StatusCode::FORBIDDEN, "scope"));
        limits.observe(&mallory, &other);
        limits.observe(&mallory, &refusal);
        assert!(limits.admit(&mallory).is_ok(), "one refusal left");
        limits.observe(&mallory, &refusal);
        let blocked = limits.admit(&mallory).expect_err("blocked");
        assert_eq!(blocked.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(limits.admit(&principal("app", "alice")).is_ok());
    }
}
