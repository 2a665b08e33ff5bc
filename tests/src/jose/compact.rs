//! Compact JWS serialization (RFC 7515 §7.1) from raw header and payload bytes, and the
//! encodings forgeries need (base64url, PEM, HMAC with an arbitrary secret).

use anyhow::{Result, bail};

use crate::log_archive::SecretKind;
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::TestKey;

/// Encodes bytes as unpadded base64url, the JWS segment encoding.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Returns `base64url(header) "." base64url(payload)`, the bytes a JWS signature covers.
pub fn signing_input(header: &[u8], payload: &[u8]) -> String {
    format!("{}.{}", b64(header), b64(payload))
}

/// Signs `header` and `payload` (raw bytes, used as given) with `key` under `alg`, which
/// picks the RSA padding or HMAC hash; EC and Ed25519 keys sign with their own algorithm.
pub fn sign_compact(key: &TestKey, alg: &str, header: &[u8], payload: &[u8]) -> Result<String> {
    let input = signing_input(header, payload);
    let signature = key.sign(alg, input.as_bytes())?;
    let token = format!("{input}.{}", b64(signature));
    crate::log_archive::register_secret(SecretKind::Token, &token);
    Ok(token)
}

/// Assembles a token from raw header and payload bytes and an already encoded signature
/// segment (empty, garbage or borrowed from another token).
pub fn unsigned(header: &[u8], payload: &[u8], signature: &str) -> String {
    let token = format!("{}.{signature}", signing_input(header, payload));
    crate::log_archive::register_secret(SecretKind::Token, &token);
    token
}

/// Computes the HMAC of `input` keyed with `secret`, the hash chosen by `alg`
/// (`HS256`, `HS384` or `HS512`).
pub fn hmac(alg: &str, secret: &[u8], input: &[u8]) -> Result<Vec<u8>> {
    let algorithm = match alg {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        "HS512" => hmac::HMAC_SHA512,
        other => bail!("{other} is not an HMAC algorithm"),
    };
    let key = hmac::Key::new(algorithm, secret);
    Ok(hmac::sign(&key, input).as_ref().to_vec())
}

/// Wraps DER in PEM armour with 64-character lines and a trailing newline.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac("HS256", b"Jefe", b"what do ya want for nothing?").expect("hs256");
        assert_eq!(
            b64(mac),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM",
            "HMAC-SHA256 of RFC 4231 test case 2"
        );
        assert!(hmac("RS256", b"k", b"m").is_err());
    }

    #[test]
    fn pem_lines_are_64_characters_and_end_with_a_newline() {
        let text = pem("PUBLIC KEY", &[7_u8; 100]);
        assert!(text.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(text.ends_with("-----END PUBLIC KEY-----\n"));
        assert!(text.lines().all(|line| line.len() <= 64));
    }
}
