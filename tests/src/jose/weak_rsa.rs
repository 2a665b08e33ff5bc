//! A fixed 1024-bit RSA key, for TOK-07: an issuer that publishes a key this short must not
//! have it trusted. aws-lc refuses to sign with RSA keys under 2048 bits, so this key signs
//! `RS256` by hand (EMSA-PKCS1-v1_5, RFC 8017 §9.2) with `num-bigint`.
//!
//! The key is a deliberately weak test fixture made once with `openssl genrsa 1024`; it
//! protects nothing, and only the attack corpus's test issuer publishes it.

use anyhow::{Context as _, Result};
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use num_bigint::BigUint;
use serde_json::{Value, json};

const MODULUS: &str = "1Q5xQZdBkwepaJM8et3qH9DuKxlVWKtH6Vv5WTKlUHvVS4dVje_GzKH96nHMzqcX2D24whI6J5Tmb3hAk0G5FWyyr2MxqTPZrqywGLFPnO_tHCnpM7jm5h-LphxmRURttWmYRnfid5M44nY36tna9mbWUcmHeyUjSkgNTGIDGlk";
const PRIVATE_EXPONENT: &str = "XgetvIEBE98ByYGR47glKD2Rn7viiuutJTTOa6uKgmbk0By-iZIVbyLfaaUn-tyMDYfQDvb0a5uvx-qOtW8AO8G86YkFZIcSjc8It7KNSYF4wsLm8B1RsKsUHoqGa2l58bH67NBJ17d4I5YKcIHSQeqI4FSkD7lT9aBbrYLv7zE";
const PUBLIC_EXPONENT: &str = "AQAB";

/// DER prefix of the DigestInfo for SHA-256 (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// The 1024-bit fixture key.
pub(super) struct WeakRsa {
    modulus: BigUint,
    private_exponent: BigUint,
    /// Modulus length in bytes (the signature length).
    len: usize,
}

impl WeakRsa {
    pub(super) fn fixture() -> Result<Self> {
        let modulus = URL_SAFE_NO_PAD
            .decode(MODULUS)
            .context("the fixture modulus")?;
        let private_exponent = URL_SAFE_NO_PAD
            .decode(PRIVATE_EXPONENT)
            .context("the fixture exponent")?;
        Ok(Self {
            len: modulus.len(),
            modulus: BigUint::from_bytes_be(&modulus),
            private_exponent: BigUint::from_bytes_be(&private_exponent),
        })
    }

    /// The public JWK members (`kty`, `n`, `e`).
    pub(super) fn jwk(&self) -> Value {
        json!({"kty": "RSA", "n": MODULUS, "e": PUBLIC_EXPONENT})
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256: `(0x00 0x01 FF… 0x00 DigestInfo H)^d mod n`.
    pub(super) fn sign_rs256(&self, input: &[u8]) -> Vec<u8> {
        let hash = digest(&SHA256, input);
        let mut encoded = vec![0xff_u8; self.len];
        encoded[0] = 0x00;
        encoded[1] = 0x01;
        let tail = SHA256_DIGEST_INFO.len() + hash.as_ref().len();
        let start = self.len - tail;
        encoded[start - 1] = 0x00;
        encoded[start..start + SHA256_DIGEST_INFO.len()].copy_from_slice(&SHA256_DIGEST_INFO);
        encoded[start + SHA256_DIGEST_INFO.len()..].copy_from_slice(hash.as_ref());
        let signature = BigUint::from_bytes_be(&encoded)
            .modpow(&self.private_exponent, &self.modulus)
            .to_bytes_be();
        // Left-pad to the modulus length (I2OSP).
        let mut padded = vec![0_u8; self.len - signature.len()];
        padded.extend(signature);
        padded
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{
        RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, RsaPublicKeyComponents,
    };

    use super::*;

    #[test]
    fn signs_what_a_legacy_rsa_verifier_accepts() {
        let key = WeakRsa::fixture().expect("the fixture");
        assert_eq!(key.len * 8, 1024);
        let signature = key.sign_rs256(b"header.payload");
        let public = RsaPublicKeyComponents {
            n: URL_SAFE_NO_PAD.decode(MODULUS).expect("n"),
            e: URL_SAFE_NO_PAD.decode(PUBLIC_EXPONENT).expect("e"),
        };
        assert!(
            public
                .verify(
                    &RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                    b"header.payload",
                    &signature
                )
                .is_ok()
        );
    }
}
