//! The dev issuer's ES256 key: either generated in memory per process, or read from a PEM
//! PKCS#8 EC P-256 private key file (`--dev-issuer-key`) so that several gateways of a dev
//! cluster sign with one key. Either way it is published as a JWK whose `kid` is its
//! RFC 7638 thumbprint, so the same key always has the same `kid`; the key is never
//! written anywhere.

use std::fmt;
use std::io::Read as _;
use std::path::Path;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};

use super::DevIssuerError;

/// Length of an uncompressed P-256 point: 0x04 || x || y.
const P256_POINT_LEN: usize = 65;
/// Largest key file read; a P-256 PKCS#8 PEM is about 250 bytes.
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

/// An ES256 signing key of the dev issuer. Its `Debug` shows only the `kid`.
pub struct SigningKey {
    encoding: EncodingKey,
    kid: String,
    x: String,
    y: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates an ephemeral key that lives only in this process.
    pub fn generate() -> Result<Self, DevIssuerError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| DevIssuerError::KeyGeneration)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| DevIssuerError::KeyGeneration)?;
        Self::from_pair(&pair).ok_or(DevIssuerError::KeyGeneration)
    }

    /// Reads a PEM PKCS#8 (`-----BEGIN PRIVATE KEY-----`) EC P-256 private key file, as
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes it. Errors
    /// name the path and the reason, never the key.
    pub fn from_pem_file(path: &Path) -> Result<Self, DevIssuerError> {
        let fail = |reason: String| DevIssuerError::Key {
            path: path.display().to_string(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|err| fail(format!("cannot open: {err}")))?;
        let mut pem = Vec::new();
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_end(&mut pem)
            .map_err(|err| fail(format!("cannot read: {err}")))?;
        if pem.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(fail(format!(
                "larger than {MAX_KEY_FILE_BYTES} bytes: not a P-256 private key file"
            )));
        }
        Self::from_pem(&pem).map_err(fail)
    }

    /// Parses a PEM PKCS#8 EC P-256 private key; the error is the reason.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(pem).map_err(|_| "is not a PEM text file".to_owned())?;
        let der = pkcs8_der(text)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|_| "is not an EC P-256 private key in PKCS#8 form".to_owned())?;
        Self::from_pair(&pair).ok_or_else(|| "holds an unusable EC P-256 key".to_owned())
    }

    fn from_pair(pair: &EcdsaKeyPair) -> Option<Self> {
        let point = pair.public_key().as_ref();
        if point.len() != P256_POINT_LEN || point.first() != Some(&0x04) {
            return None;
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..]);
        // RFC 7638: members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()));
        // Re-encoded by aws-lc so that the signer gets one canonical PKCS#8 v1 form
        // whatever tool wrote the file.
        let pkcs8 = pair.to_pkcs8v1().ok()?;
        Some(Self {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            kid,
            x,
            y,
        })
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub(super) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }

    pub(super) fn public_jwk(&self) -> Value {
        json!({
            "kty": "EC", "crv": "P-256", "x": self.x, "y": self.y,
            "kid": self.kid, "alg": "ES256", "use": "sig",
        })
    }
}

/// Returns the DER inside the one `PRIVATE KEY` block of a PEM text; other blocks that
/// may hold a private key are refused with what to do instead.
fn pkcs8_der(text: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
    const END: &str = "-----END PRIVATE KEY-----";
    let Some(start) = text.find(BEGIN) else {
        return Err(if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            "holds a SEC1 'EC PRIVATE KEY'; convert it to PKCS#8 with \
             `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pkcs8.pem`"
                .to_owned()
        } else if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            "holds an encrypted private key; the dev issuer reads unencrypted PKCS#8 only"
                .to_owned()
        } else {
            "has no '-----BEGIN PRIVATE KEY-----' block (PEM PKCS#8 expected; create one \
             with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out KEY`)"
                .to_owned()
        });
    };
    let body = &text[start + BEGIN.len()..];
    let Some(end) = body.find(END) else {
        return Err("has a 'BEGIN PRIVATE KEY' line without its 'END PRIVATE KEY' line".to_owned());
    };
    if body[end + END.len()..].contains(BEGIN) {
        return Err("holds more than one private key".to_owned());
    }
    let base64: String = body[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(base64)
        .map_err(|_| "has a PRIVATE KEY block that is not valid base64".to_owned())
}
