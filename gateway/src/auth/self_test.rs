//! Start-up self-test of the JWT crypto backend (TOK-16): sign and verify one token with a
//! fresh in-memory key, so a build without a working `jsonwebtoken` provider fails at
//! start-up rather than on the first request.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

use super::AuthError;

/// Signs and verifies a built-in ES256 token; call once at start-up and exit on error.
pub fn crypto_self_test() -> Result<(), AuthError> {
    let failed = |step: &str| AuthError::config(format!("jwt crypto self-test failed: {step}"));
    if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
        return Err(failed("no crypto provider is compiled in"));
    }
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| failed("key generation"))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| failed("key parsing"))?;
    let claims = json!({"iss": "self-test", "aud": "self-test", "exp": u32::MAX});
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims,
        &EncodingKey::from_ec_der(pkcs8.as_ref()),
    )
    .map_err(|_| failed("signing"))?;
    let key = DecodingKey::from_ec_der(pair.public_key().as_ref());
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&["self-test"]);
    validation.set_audience(&["self-test"]);
    let decoded = jsonwebtoken::decode::<Value>(&token, &key, &validation)
        .map_err(|_| failed("verification"))?;
    if decoded.claims != claims {
        return Err(failed("round trip"));
    }
    let mut tampered = token.into_bytes();
    if let Some(last) = tampered.last_mut() {
        *last = if *last == b'A' { b'B' } else { b'A' };
    }
    if jsonwebtoken::decode::<Value>(&tampered, &key, &validation).is_ok() {
        return Err(failed("a tampered token verified"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tok_16_crypto_backend_self_test_passes() {
        super::crypto_self_test().expect("the aws-lc-rs backend is compiled in");
    }
}
