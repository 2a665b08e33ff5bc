//! `Forge`: the valid token of one case, and the ways to change exactly one thing in it.
//!
//! A valid token is the issuer's ES256 key signing `{"alg","typ","kid"}` and the claims
//! [`TestIssuer::claims`](crate::issuer::TestIssuer::claims) mints for the case's topic
//! with every scope. A forgery starts from those parts, changes one header member, one
//! claim, one key or one byte, and is signed again with a real key, so a refusal can only
//! come from the changed property.

use anyhow::{Context as _, Result};
use serde_json::{Map, Value, json};

use super::keys::Keys;
use crate::canary::Canary;
use crate::jose::{self, TestKey};
use crate::token::ALL_SCOPES;

/// A JSON object: a protected header or a claims set.
pub(crate) type Object = Map<String, Value>;

/// What a case forges its token from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Forge<'a> {
    keys: &'a Keys,
    canary: &'a Canary,
    topic: &'a str,
}

impl<'a> Forge<'a> {
    pub(crate) fn new(keys: &'a Keys, canary: &'a Canary, topic: &'a str) -> Self {
        Self {
            keys,
            canary,
            topic,
        }
    }

    /// The issuer's and the attacker's keys.
    pub(crate) fn keys(&self) -> &'a Keys {
        self.keys
    }

    /// The issuer's own ES256 key.
    pub(crate) fn es256(&self) -> &'a TestKey {
        self.keys.es256()
    }

    /// The issuer identifier valid tokens carry.
    pub(crate) fn issuer(&self) -> &'a str {
        self.keys.issuer.issuer()
    }

    /// A URL on the canary server, which must never be fetched.
    pub(crate) fn canary_url(&self, path: &str) -> String {
        self.canary.url(path)
    }

    /// The valid claims: this issuer, the hub's audience, an hour of validity, every scope,
    /// bound to the case's topic.
    pub(crate) fn claims(&self) -> Result<Object> {
        match self.keys.issuer.claims(self.topic, ALL_SCOPES, 3600) {
            Value::Object(claims) => Ok(claims),
            other => anyhow::bail!("the issuer's claims are not an object: {other}"),
        }
    }

    /// The valid claims serialized as the payload bytes.
    pub(crate) fn payload(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(&self.claims()?)?)
    }

    /// The header `key` signs valid tokens with: its algorithm, `typ: JWT`, its `kid`.
    pub(crate) fn header(&self, key: &TestKey) -> Object {
        let mut header = Object::new();
        header.insert("alg".to_owned(), json!(key.alg()));
        header.insert("typ".to_owned(), json!("JWT"));
        header.insert("kid".to_owned(), json!(key.kid()));
        header
    }

    /// Signs `header` and `claims` with `key`, under the header's `alg` when it is a string
    /// (the RSA padding or HMAC hash follows it), else the key's own algorithm.
    pub(crate) fn sign(&self, key: &TestKey, header: &Object, claims: &Object) -> Result<String> {
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or(key.alg());
        jose::sign_compact(
            key,
            alg,
            &serde_json::to_vec(header)?,
            &serde_json::to_vec(claims)?,
        )
        .with_context(|| format!("signing with {} as {alg}", key.kid()))
    }

    /// The valid token, signed by the issuer's ES256 key.
    pub(crate) fn valid(&self) -> Result<String> {
        self.valid_from(self.es256())
    }

    /// A valid token signed by another of the issuer's keys, with that key's header.
    pub(crate) fn valid_from(&self, key: &TestKey) -> Result<String> {
        self.sign(key, &self.header(key), &self.claims()?)
    }

    /// The valid token with its header changed by `change`, signed by `key`.
    pub(crate) fn header_changed_by(
        &self,
        key: &TestKey,
        change: impl FnOnce(&mut Object),
    ) -> Result<String> {
        let mut header = self.header(key);
        change(&mut header);
        self.sign(key, &header, &self.claims()?)
    }

    /// The valid token with its header changed by `change`, signed by the ES256 key.
    pub(crate) fn header_changed(&self, change: impl FnOnce(&mut Object)) -> Result<String> {
        self.header_changed_by(self.es256(), change)
    }

    /// The valid token with its claims changed by `change`, signed by the ES256 key.
    pub(crate) fn claims_changed(&self, change: impl FnOnce(&mut Object)) -> Result<String> {
        let mut claims = self.claims()?;
        change(&mut claims);
        self.sign(self.es256(), &self.header(self.es256()), &claims)
    }

    /// The valid ES256 header with `payload` as raw bytes, signed by the ES256 key.
    pub(crate) fn raw_payload(&self, payload: &[u8]) -> Result<String> {
        self.raw_header_and_payload(|_| {}, payload)
    }

    /// The valid ES256 header changed by `change`, with `payload` as raw bytes, signed by
    /// the ES256 key.
    pub(crate) fn raw_header_and_payload(
        &self,
        change: impl FnOnce(&mut Object),
        payload: &[u8],
    ) -> Result<String> {
        let mut header = self.header(self.es256());
        change(&mut header);
        jose::sign_compact(
            self.es256(),
            "ES256",
            &serde_json::to_vec(&header)?,
            payload,
        )
    }

    /// `header` as raw bytes with the valid payload, signed by the ES256 key.
    pub(crate) fn raw_header(&self, header: &[u8]) -> Result<String> {
        jose::sign_compact(self.es256(), "ES256", header, &self.payload()?)
    }
}

/// Sets `member` to `value` in a header or claims set.
pub(crate) fn set(object: &mut Object, member: &str, value: Value) {
    object.insert(member.to_owned(), value);
}

/// The three segments of a compact token, as they are.
pub(crate) fn segments(token: &str) -> Result<[String; 3]> {
    let parts: Vec<&str> = token.split('.').collect();
    match parts.as_slice() {
        [header, payload, signature] => Ok([
            (*header).to_owned(),
            (*payload).to_owned(),
            (*signature).to_owned(),
        ]),
        _ => anyhow::bail!("not a three-segment token"),
    }
}
