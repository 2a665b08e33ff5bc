//! The corpus's keys: the test issuer with every extra key it publishes, and an attacker's
//! key that no JWKS holds.
//!
//! The gateway under test allows `ES256` and `RS256` only. The issuer publishes, beside its
//! own ES256 key: a 2048-bit RSA key without an `alg` member (so only the allowlist keeps
//! it from verifying `RS512` or `PS256`), keys of algorithms the allowlist leaves out
//! (P-384, Ed25519, P-521), and keys the gateway must drop when it reads the JWKS (TOK-07:
//! an `oct` secret, a `use: enc` key, a key whose `key_ops` lack `verify`, a 1024-bit RSA
//! key, a secp256k1 key).

use std::path::Path;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::issuer::TestIssuer;
use crate::jose::{KeyKind, TestKey};

/// Where in the key cache directory the RSA key is kept.
const RSA_KEY_FILE: &str = "attack-corpus-rsa2048.pk8";

/// Every key a forgery can be signed with.
#[derive(Debug)]
pub(crate) struct Keys {
    /// The issuer; its own key is the ES256 key valid tokens carry.
    pub(crate) issuer: TestIssuer,
    /// Published RSA 2048 key without `alg`: verifies `RS256` tokens.
    pub(crate) rsa: TestKey,
    /// Published P-384 key (`ES384` is not allowlisted).
    pub(crate) p384: TestKey,
    /// Published Ed25519 key (`EdDSA` is not allowlisted).
    pub(crate) ed25519: TestKey,
    /// Published P-521 key: a curve the gateway does not support.
    pub(crate) p521: TestKey,
    /// Published secp256k1 key: a curve the gateway does not support.
    pub(crate) secp256k1: TestKey,
    /// Published `oct` key: its secret is in the JWKS for anyone to read.
    pub(crate) oct: TestKey,
    /// Published P-256 key marked `use: enc`.
    pub(crate) encryption: TestKey,
    /// Published P-256 key whose `key_ops` are `["wrapKey"]`.
    pub(crate) wrap_only: TestKey,
    /// Published 1024-bit RSA key.
    pub(crate) rsa1024: TestKey,
    /// The attacker's P-256 key, in no JWKS.
    pub(crate) attacker: TestKey,
    /// A self-signed certificate for the attacker's key, as an `x5c` entry (base64 DER).
    pub(crate) attacker_x5c: String,
}

impl Keys {
    /// Generates the keys and starts the issuer publishing them. The RSA key is kept in
    /// `key_cache` for the next test process: generating one takes longer than starting a
    /// gateway.
    pub(crate) async fn start(key_cache: &Path) -> Result<Self> {
        let rsa = TestKey::rsa2048_cached("corpus-rsa", &key_cache.join(RSA_KEY_FILE))?
            .publish_with("alg", None);
        let p384 = TestKey::generate(KeyKind::P384, "corpus-p384")?;
        let ed25519 = TestKey::generate(KeyKind::Ed25519, "corpus-ed25519")?;
        let p521 = TestKey::generate(KeyKind::P521, "corpus-p521")?;
        let secp256k1 = TestKey::generate(KeyKind::Secp256k1, "corpus-secp256k1")?;
        let oct = TestKey::generate(KeyKind::Oct, "corpus-oct")?;
        let encryption =
            TestKey::generate(KeyKind::P256, "corpus-enc")?.publish_with("use", Some(json!("enc")));
        let wrap_only = TestKey::generate(KeyKind::P256, "corpus-wrap")?
            .publish_with("use", None)
            .publish_with("key_ops", Some(json!(["wrapKey"])));
        let rsa1024 = TestKey::generate(KeyKind::Rsa1024, "corpus-rsa1024")?;
        let published = [
            &rsa,
            &p384,
            &ed25519,
            &p521,
            &secp256k1,
            &oct,
            &encryption,
            &wrap_only,
            &rsa1024,
        ]
        .map(|key| key.jwk().clone())
        .to_vec();
        let issuer = TestIssuer::start_publishing(published).await?;
        let (attacker, attacker_x5c) = attacker()?;
        Ok(Self {
            issuer,
            rsa,
            p384,
            ed25519,
            p521,
            secp256k1,
            oct,
            encryption,
            wrap_only,
            rsa1024,
            attacker,
            attacker_x5c,
        })
    }

    /// The issuer's own ES256 key.
    pub(crate) fn es256(&self) -> &TestKey {
        self.issuer.key()
    }
}

/// The attacker's key and a self-signed certificate for it.
fn attacker() -> Result<(TestKey, String)> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("generating the attacker's key")?;
    let certificate = rcgen::CertificateParams::new(vec!["attacker.example".to_owned()])?
        .self_signed(&pair)
        .context("self-signing the attacker's certificate")?;
    let key = TestKey::ecdsa_from_pkcs8(KeyKind::P256, "attacker", &pair.serialize_der())?;
    Ok((key, STANDARD.encode(certificate.der())))
}
