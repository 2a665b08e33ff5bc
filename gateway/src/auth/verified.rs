//! Tokens already verified, so a client that sends the same bearer token on every request
//! (a publisher, typically) pays for one signature check, not one per request: ES256 or
//! RS256 verification is tens of microseconds, a hash lookup well under one.
//!
//! Keyed by the SHA-256 of the token (the token itself is never stored), an entry holds
//! the [`Principal`] the verification produced until the token expires, but at most
//! [`MAX_REUSE`]: a key withdrawn from the issuer's JWKS stops working within that time
//! plus the JWKS cache's, as it would without this cache. Only successes are kept. The
//! table is bounded; when full, expired entries go first, then everything.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::digest::{SHA256, digest};

use super::Principal;

/// Longest an entry is reused, whatever the token's expiry.
pub(crate) const MAX_REUSE: Duration = Duration::from_secs(300);
/// Most tokens remembered.
const MAX_ENTRIES: usize = 16_384;

type TokenHash = [u8; 32];

#[derive(Debug)]
struct Entry {
    principal: Principal,
    until: Instant,
}

/// The table of verified tokens.
#[derive(Debug, Default)]
pub(crate) struct Verified {
    entries: Mutex<HashMap<TokenHash, Entry>>,
}

fn hash(token: &str) -> TokenHash {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

impl Verified {
    /// Returns the principal of `token` if it was verified and may still be reused.
    pub(crate) fn get(&self, token: &str) -> Option<Principal> {
        self.get_at(token, Instant::now())
    }

    /// Remembers a token that was just verified.
    pub(crate) fn insert(&self, token: &str, principal: &Principal) {
        self.insert_at(token, principal, Instant::now(), SystemTime::now());
    }

    fn get_at(&self, token: &str, now: Instant) -> Option<Principal> {
        let key = hash(token);
        let mut entries = self.lock();
        let entry = entries.get(&key)?;
        if entry.until > now {
            return Some(entry.principal.clone());
        }
        entries.remove(&key);
        None
    }

    fn insert_at(&self, token: &str, principal: &Principal, now: Instant, wall: SystemTime) {
        let Ok(left) = principal.expires_at.duration_since(wall) else {
            return;
        };
        let until = now + left.min(MAX_REUSE);
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, entry| entry.until > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            hash(token),
            Entry {
                principal: principal.clone(),
                until,
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhircast_proto::scope::ScopeSet;

    fn principal(expires_in: Duration) -> Principal {
        Principal {
            subject: Some("user".into()),
            client_id: Some("app".into()),
            scopes: ScopeSet::default(),
            topics: vec!["topic".into()],
            expires_at: SystemTime::now() + expires_in,
        }
    }

    #[test]
    fn an_entry_lasts_until_expiry_but_at_most_the_reuse_limit() {
        let verified = Verified::default();
        let (now, wall) = (Instant::now(), SystemTime::now());
        let short = principal(Duration::from_secs(10));
        verified.insert_at("short", &short, now, wall);
        verified.insert_at("long", &principal(Duration::from_secs(3600)), now, wall);
        assert!(verified.get_at("short", now).is_some());
        assert!(verified.get_at("long", now).is_some());
        assert!(verified.get_at("other", now).is_none());
        let later = now + Duration::from_secs(11);
        assert!(verified.get_at("short", later).is_none());
        assert!(verified.get_at("long", later).is_some());
        assert!(verified.get_at("long", now + MAX_REUSE).is_none());
    }

    #[test]
    fn an_expired_token_is_not_kept() {
        let verified = Verified::default();
        let mut expired = principal(Duration::ZERO);
        expired.expires_at = SystemTime::now() - Duration::from_secs(1);
        verified.insert("expired", &expired);
        assert!(verified.get("expired").is_none());
    }
}
