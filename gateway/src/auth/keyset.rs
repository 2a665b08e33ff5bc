//! The usable signing keys of one JWKS document, and the choice of key for a token.
//!
//! Keys that cannot safely verify a signature are dropped when the document is read:
//! `use` other than `sig`, `key_ops` without `verify`, symmetric (`oct`) keys, unknown key
//! types and curves, RSA moduli under 2048 bits, `alg` values that are not signature
//! algorithms. A key whose `alg` differs from the token's is never used for it.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// Shortest RSA modulus accepted (TOK-07).
const MIN_RSA_BITS: usize = 2048;

/// What kind of key a JWK is, which decides the algorithms it can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn verifies(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Self::P256 => alg == ES256,
            Self::P384 => alg == ES384,
            Self::Ed25519 => alg == EdDSA,
        }
    }
}

#[derive(Debug)]
struct UsableKey {
    kid: Option<String>,
    kind: KeyKind,
    alg: Option<Algorithm>,
    key: Arc<DecodingKey>,
}

impl UsableKey {
    fn verifies(&self, alg: Algorithm) -> bool {
        self.kind.verifies(alg) && self.alg.is_none_or(|own| own == alg)
    }
}

/// The outcome of looking a token's key up.
#[derive(Debug)]
pub(crate) enum Lookup {
    Found(Arc<DecodingKey>),
    /// No key with this id (or, without an id, no key at all): a refresh may help.
    NotFound,
    /// The key exists but cannot verify the token's algorithm.
    WrongAlgorithm,
    /// No `kid` in the token and more than one key in the set.
    Ambiguous,
}

/// The usable keys of one JWKS document.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    keys: Vec<UsableKey>,
}

impl KeySet {
    /// Reads a JWKS document, keeping only the keys that can safely verify signatures.
    pub(crate) fn from_document(document: &Value) -> Option<Self> {
        let keys = document.get("keys")?.as_array()?;
        let keys = keys.iter().filter_map(usable_key).collect();
        Some(Self { keys })
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Picks the key for a token: by `kid`; without one, the set's only key.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Lookup {
        let Some(kid) = kid else {
            return match self.keys.as_slice() {
                [] => Lookup::NotFound,
                [only] if only.verifies(alg) => Lookup::Found(Arc::clone(&only.key)),
                [_] => Lookup::WrongAlgorithm,
                _ => Lookup::Ambiguous,
            };
        };
        let mut named = self
            .keys
            .iter()
            .filter(|key| key.kid.as_deref() == Some(kid))
            .peekable();
        if named.peek().is_none() {
            return Lookup::NotFound;
        }
        named
            .find(|key| key.verifies(alg))
            .map_or(Lookup::WrongAlgorithm, |key| {
                Lookup::Found(Arc::clone(&key.key))
            })
    }
}

fn usable_key(raw: &Value) -> Option<UsableKey> {
    let jwk: Jwk = serde_json::from_value(raw.clone()).ok()?;
    let common = &jwk.common;
    if common
        .public_key_use
        .as_ref()
        .is_some_and(|used| *used != PublicKeyUse::Signature)
    {
        return None;
    }
    if common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return None;
    }
    let alg = match common.key_algorithm {
        None => None,
        Some(key_alg) => Some(signature_algorithm(key_alg)?),
    };
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(params) => {
            let modulus = URL_SAFE_NO_PAD
                .decode(params.n.trim_end_matches('='))
                .ok()?;
            let significant = modulus.iter().skip_while(|b| **b == 0).count();
            (significant * 8 >= MIN_RSA_BITS).then_some(KeyKind::Rsa)?
        }
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => KeyKind::P256,
            EllipticCurve::P384 => KeyKind::P384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(params) => match params.curve {
            EllipticCurve::Ed25519 => KeyKind::Ed25519,
            _ => return None,
        },
        _ => return None,
    };
    if alg.is_some_and(|alg| !kind.verifies(alg)) {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(UsableKey {
        kid: common.key_id.clone(),
        kind,
        alg,
        key: Arc::new(key),
    })
}

/// Maps a JWK `alg` to a signature algorithm; encryption and HMAC algorithms map to none.
fn signature_algorithm(key_alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match key_alg {
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn ec(kid: &str, extra: Value) -> Value {
        let mut key = json!({"kty": "EC", "crv": "P-256", "x": X, "y": Y, "kid": kid});
        if let (Some(key), Value::Object(extra)) = (key.as_object_mut(), extra) {
            key.extend(extra);
        }
        key
    }

    #[test]
    fn tok_07_unsafe_keys_are_dropped() {
        let document = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "oct"},
            ec("enc", json!({"use": "enc"})),
            ec("wrap", json!({"key_ops": ["wrapKey"]})),
            ec("hmac", json!({"alg": "HS256"})),
            ec("oaep", json!({"alg": "RSA-OAEP"})),
            ec("p384-mismatch", json!({"alg": "ES384"})),
            {"kty": "EC", "crv": "secp256k1", "x": X, "y": Y, "kid": "k1"},
            {"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xff_u8; 128]), "e": "AQAB", "kid": "rsa1024"},
            {"kty": "RSA", "n": 5, "e": "AQAB", "kid": "garbage"},
            ec("good", json!({"use": "sig", "alg": "ES256"})),
        ]});
        let set = KeySet::from_document(&document).expect("a jwk set");
        assert_eq!(set.len(), 1);
        assert!(matches!(
            set.find(Some("good"), Algorithm::ES256),
            Lookup::Found(_)
        ));
        assert!(matches!(
            set.find(Some("good"), Algorithm::ES384),
            Lookup::WrongAlgorithm
        ));
        assert!(matches!(
            set.find(Some("oct"), Algorithm::ES256),
            Lookup::NotFound
        ));
        assert!(matches!(set.find(None, Algorithm::ES256), Lookup::Found(_)));
    }

    #[test]
    fn tok_06_missing_kid_with_several_keys_is_ambiguous() {
        let document = json!({"keys": [ec("a", json!({})), ec("b", json!({}))]});
        let set = KeySet::from_document(&document).expect("a jwk set");
        assert!(matches!(
            set.find(None, Algorithm::ES256),
            Lookup::Ambiguous
        ));
        assert!(matches!(
            set.find(Some("c"), Algorithm::ES256),
            Lookup::NotFound
        ));
    }
}
