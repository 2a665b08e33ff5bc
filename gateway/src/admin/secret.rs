//! `AdminSecret`: the admin API's credential, kept as a digest and compared in constant time.

use std::fmt;
use std::path::Path;

use aws_lc_rs::digest::{SHA256, digest};

/// The shortest admin secret accepted (256 bits written as text).
pub const MIN_ADMIN_SECRET_LEN: usize = 32;

/// The admin API's bearer secret (its SHA-256; the secret itself is not kept).
#[derive(Clone)]
pub struct AdminSecret {
    digest: [u8; 32],
}

impl fmt::Debug for AdminSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminSecret(..)")
    }
}

impl AdminSecret {
    /// Reads the secret from a file (surrounding whitespace ignored).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let raw = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?;
        Self::new(raw.trim())
    }

    /// Takes a secret of at least [`MIN_ADMIN_SECRET_LEN`] characters.
    pub fn new(secret: &str) -> Result<Self, String> {
        if secret.len() < MIN_ADMIN_SECRET_LEN {
            return Err(format!(
                "the admin secret must be at least {MIN_ADMIN_SECRET_LEN} characters"
            ));
        }
        Ok(Self {
            digest: sha256(secret),
        })
    }

    /// Whether `presented` is the secret; the time taken does not depend on where they
    /// differ.
    pub fn matches(&self, presented: &str) -> bool {
        let other = sha256(presented);
        self.digest
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn sha256(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, text.as_bytes()).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_secrets_are_refused_and_only_the_secret_matches() {
        assert!(AdminSecret::new("too-short").is_err());
        let secret = AdminSecret::new("0123456789abcdef0123456789abcdef").expect("long enough");
        assert!(secret.matches("0123456789abcdef0123456789abcdef"));
        assert!(!secret.matches("0123456789abcdef0123456789abcdeF"));
        assert!(!secret.matches(""));
        assert_eq!(format!("{secret:?}"), "AdminSecret(..)");
    }
}
