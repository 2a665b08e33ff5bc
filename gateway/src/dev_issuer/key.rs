//! The dev issuer's ephemeral ES256 key: generated in memory, published as a JWK whose
//! `kid` is its RFC 7638 thumbprint, never written anywhere.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use serde_json::{Value, json};

use super::DevIssuerError;

/// Length of an uncompressed P-256 point: 0x04 || x || y.
const P256_POINT_LEN: usize = 65;

pub(super) struct SigningKey {
    encoding: EncodingKey,
    kid: String,
    x: String,
    y: String,
}

impl SigningKey {
    pub(super) fn generate() -> Result<Self, DevIssuerError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| DevIssuerError::KeyGeneration)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| DevIssuerError::KeyGeneration)?;
        let point = pair.public_key().as_ref();
        if point.len() != P256_POINT_LEN || point.first() != Some(&0x04) {
            return Err(DevIssuerError::KeyGeneration);
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..]);
        // RFC 7638: members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()));
        Ok(Self {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            kid,
            x,
            y,
        })
    }

    pub(super) fn kid(&self) -> &str {
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
