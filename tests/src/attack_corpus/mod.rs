//! The token attack corpus (security catalogue TOK-02…TOK-14): a few hundred forged access
//! tokens, each the valid token with exactly one property changed and signed again with the
//! test issuer's real keys, presented to a real gateway process. None may be accepted.
//!
//! # What a case asserts
//!
//! Every case is one named test (`tok_<id>_<what>`). It stages a topic with a valid token
//! (a Patient-open, so the topic has a context), forges its token, and presents it:
//!
//! - `subscribe`, `publish` and Get Current Context each answer 401 with a text reason and
//!   `WWW-Authenticate: Bearer`;
//! - the topic's context is unchanged (read back with the valid token);
//! - the issuer's JWKS was not fetched because of the case, or at most once when the case
//!   names a key the gateway does not hold (TOK-06: one rate-limited refresh, after which
//!   the other routes are refused at once);
//! - the canary server that forged `jku`/`x5u` headers point at saw no request (TOK-05);
//! - the gateway still answers `/readyz`.
//!
//! Three control cases (`tok_01_…`) present unmodified tokens and must be accepted (202),
//! so the corpus cannot pass because nothing could pass; TOK-13 adds its own controls.
//!
//! # Layout
//!
//! - [`keys`]: the issuer's published keys (allowlisted, not allowlisted, untrustworthy) and
//!   an attacker's; [`forge`]: the valid token's parts and how to change one.
//! - [`alg`]: TOK-02 `alg: none`, TOK-03 HMAC keyed with a public key, TOK-04 algorithms
//!   outside the allowlist.
//! - [`header_keys`]: TOK-05 keys supplied by the header, TOK-06 `kid`, TOK-07 keys the
//!   JWKS holds but the gateway must not use.
//! - [`claims`]: TOK-08 `iss`, TOK-09 `aud`, TOK-10 `exp`, TOK-11 `nbf`, TOK-12 `iat`.
//! - [`typing`]: TOK-13 `typ` values and the id_token shape, under both policies.
//! - [`tampering`]: TOK-14 bit flips, truncation, segment counts, alphabets, splicing.
//! - [`rig`]: the issuer, canary and gateways one test process shares, and running a case.
//!
//! TOK-13 (typing, [`typing`]) runs against two gateways trusting the same issuer: the
//! main one with the default `lenient` token type policy, and one with
//! `--token-type-policy strict`, started by the rig the first time a strict case runs.
//! Controls under both (`tok_13_…_accepts_…`, `tok_01_at_jwt_typ_is_accepted`) keep a
//! policy that refuses too much from passing.
//!
//! # Running it
//!
//! `cargo nextest run -p hub-tests --test attack_corpus` (the gateway binary must be built:
//! `cargo build -p gateway --bins`). The test binary (`tests/tests/attack_corpus.rs`) is a
//! libtest-mimic harness with one trial per case. nextest runs each trial in its own
//! process, so each process starts its own [`Rig`] (issuer, canary, gateway: about 0.2 s,
//! the RSA key read from a cache under `target/tmp/` because generating one takes longer)
//! when its first case runs; `cargo test` runs every trial in one process, sharing one rig,
//! one case at a time. Per-process rigs keep the cases independent (a case's JWKS fetches
//! and canary hits are its own); one rig for all would need the cases serialised anyway
//! and would not be faster under nextest, which starts a process per test regardless.

mod alg;
mod claims;
mod forge;
mod header_keys;
mod keys;
mod rig;
mod tampering;
mod typing;

use anyhow::Result;

pub use rig::Rig;

use forge::Forge;

/// What the gateway must do with a case's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// 2xx on every route (the controls).
    Accepted,
    /// 401 on every route tried, nothing changed.
    Refused,
}

/// Which of the rig's gateways a case is presented to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    /// The main gateway: the issuer's token type policy is the default, `lenient`.
    Lenient,
    /// The gateway trusting the same issuer with `--token-type-policy strict`.
    Strict,
}

/// Whether a case may make the gateway refetch the JWKS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    /// The token names a cached key (or is refused before any key is looked up): 0 fetches.
    Cached,
    /// The token names a key the gateway does not hold: at most one refresh (rate-limited:
    /// the routes tried after it are refused without another).
    MayRefetch,
}

type ForgeFn = dyn Fn(&Forge<'_>) -> Result<String> + Send + Sync;

/// One named token and what the gateway must do with it.
pub struct Case {
    name: String,
    forge: Box<ForgeFn>,
    expect: Expect,
    lookup: Lookup,
    policy: Policy,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("expect", &self.expect)
            .field("lookup", &self.lookup)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Case {
    /// A token the gateway must refuse.
    fn refused(
        name: impl Into<String>,
        forge: impl Fn(&Forge<'_>) -> Result<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            forge: Box::new(forge),
            expect: Expect::Refused,
            lookup: Lookup::Cached,
            policy: Policy::Lenient,
        }
    }

    /// A token the gateway must accept (a control).
    fn accepted(
        name: impl Into<String>,
        forge: impl Fn(&Forge<'_>) -> Result<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            expect: Expect::Accepted,
            ..Self::refused(name, forge)
        }
    }

    /// Marks a case whose token names a key the gateway does not hold.
    fn may_refetch(self) -> Self {
        Self {
            lookup: Lookup::MayRefetch,
            ..self
        }
    }

    /// Presents the case to the gateway whose token type policy is `strict`.
    fn strict(self) -> Self {
        Self {
            policy: Policy::Strict,
            ..self
        }
    }

    /// The test name, `tok_<id>_<what>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The catalogue id, e.g. `TOK-09`.
    pub fn tok_id(&self) -> String {
        let number = self.name.get(4..6).unwrap_or("??");
        format!("TOK-{number}")
    }
}

/// Every case: the controls, then each concept's attacks.
pub fn cases() -> Vec<Case> {
    let mut cases = controls();
    cases.extend(alg::cases());
    cases.extend(header_keys::cases());
    cases.extend(claims::cases());
    cases.extend(typing::cases());
    cases.extend(tampering::cases());
    cases
}

/// Unmodified tokens, which must be accepted.
fn controls() -> Vec<Case> {
    vec![
        Case::accepted("tok_01_unmodified_es256_token_is_accepted", |forge| {
            forge.valid()
        }),
        Case::accepted("tok_01_unmodified_rs256_token_is_accepted", |forge| {
            forge.valid_from(&forge.keys().rsa)
        }),
        Case::accepted("tok_01_at_jwt_typ_is_accepted", |forge| {
            forge.header_changed(|header| forge::set(header, "typ", "at+jwt".into()))
        }),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;

    #[test]
    fn names_are_unique_test_identifiers_and_there_are_at_least_200_attacks() {
        let cases = cases();
        let mut seen = HashSet::new();
        for case in &cases {
            assert!(seen.insert(case.name()), "duplicate name {}", case.name());
            assert!(
                case.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{} is not snake_case",
                case.name()
            );
            assert!(case.name().starts_with("tok_"), "{}", case.name());
        }
        let attacks = cases
            .iter()
            .filter(|case| case.expect == Expect::Refused)
            .count();
        assert!(attacks >= 200, "only {attacks} attack cases");
        let mut by_id = BTreeMap::<String, usize>::new();
        for case in &cases {
            *by_id.entry(case.tok_id()).or_default() += 1;
        }
        for id in [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14] {
            assert!(
                by_id.contains_key(&format!("TOK-{id:02}")),
                "no TOK-{id:02} case"
            );
        }
    }
}
