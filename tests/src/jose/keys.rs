//! Test signing keys of every kind: generation, the public JWK as an issuer would publish
//! it, the SubjectPublicKeyInfo (for key-confusion forgeries), and signing.

use std::fmt;
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P256K1_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, ECDSA_P521_SHA512_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384,
    RSA_PKCS1_SHA512, RSA_PSS_SHA256, RSA_PSS_SHA384, RSA_PSS_SHA512, RsaEncoding,
};
use serde_json::{Value, json};

use super::compact::{b64, hmac, pem};
use super::weak_rsa::WeakRsa;

/// The kinds of key a test issuer can publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA on P-256 (`ES256`).
    P256,
    /// ECDSA on P-384 (`ES384`).
    P384,
    /// ECDSA on P-521 (`ES512`).
    P521,
    /// ECDSA on secp256k1 (`ES256K`), a curve JOSE hubs do not support.
    Secp256k1,
    /// Ed25519 (`EdDSA`).
    Ed25519,
    /// A freshly generated 2048-bit RSA key (`RS256`, `PS256`, …).
    Rsa2048,
    /// A fixed 1024-bit RSA key, too short to be trusted (see `weak_rsa`).
    Rsa1024,
    /// A random 256-bit HMAC secret, published as an `oct` JWK (`HS256`).
    Oct,
}

impl KeyKind {
    /// The JWS algorithm this kind of key signs with by default.
    pub fn alg(self) -> &'static str {
        match self {
            Self::P256 => "ES256",
            Self::P384 => "ES384",
            Self::P521 => "ES512",
            Self::Secp256k1 => "ES256K",
            Self::Ed25519 => "EdDSA",
            Self::Rsa2048 | Self::Rsa1024 => "RS256",
            Self::Oct => "HS256",
        }
    }

    fn ecdsa(self) -> Option<(&'static EcdsaSigningAlgorithm, &'static str)> {
        Some(match self {
            Self::P256 => (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256"),
            Self::P384 => (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384"),
            Self::P521 => (&ECDSA_P521_SHA512_FIXED_SIGNING, "P-521"),
            Self::Secp256k1 => (&ECDSA_P256K1_SHA256_FIXED_SIGNING, "secp256k1"),
            Self::Ed25519 | Self::Rsa2048 | Self::Rsa1024 | Self::Oct => return None,
        })
    }
}

enum Material {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
    WeakRsa(WeakRsa),
    Secret(Vec<u8>),
}

/// A private key with its public JWK (`kid`, `use: sig` and `alg` included).
pub struct TestKey {
    kind: KeyKind,
    kid: String,
    jwk: Value,
    /// SubjectPublicKeyInfo DER; empty for a secret key.
    public_der: Vec<u8>,
    material: Material,
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("kind", &self.kind)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TestKey {
    /// Generates a key of `kind` named `kid` (the 1024-bit RSA key is a fixed one).
    pub fn generate(kind: KeyKind, kid: &str) -> Result<Self> {
        if kind.ecdsa().is_some() {
            let (signing, _) = kind.ecdsa().context("an ecdsa kind")?;
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &SystemRandom::new())
                .map_err(|_| anyhow!("generating a {kind:?} key"))?;
            return Self::ecdsa_from_pkcs8(kind, kid, pkcs8.as_ref());
        }
        let (jwk, public_der, material) = match kind {
            KeyKind::Ed25519 => {
                let pair =
                    Ed25519KeyPair::generate().map_err(|_| anyhow!("generating an Ed25519 key"))?;
                let jwk = json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": b64(pair.public_key().as_ref()),
                });
                let der = der_of(pair.public_key().as_der())?;
                (jwk, der, Material::Ed25519(pair))
            }
            KeyKind::Rsa2048 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| anyhow!("generating an RSA key"))?;
                return Self::rsa(kid, pair);
            }
            KeyKind::Rsa1024 => {
                let weak = WeakRsa::fixture()?;
                (weak.jwk(), Vec::new(), Material::WeakRsa(weak))
            }
            KeyKind::Oct => {
                let mut secret = vec![0_u8; 32];
                aws_lc_rs::rand::fill(&mut secret)
                    .map_err(|_| anyhow!("generating an HMAC secret"))?;
                (
                    json!({"kty": "oct", "k": b64(&secret)}),
                    Vec::new(),
                    Material::Secret(secret),
                )
            }
            KeyKind::P256 | KeyKind::P384 | KeyKind::P521 | KeyKind::Secp256k1 => {
                bail!("{kind:?} is generated above")
            }
        };
        Ok(Self::assemble(kind, kid, jwk, public_der, material))
    }

    /// A 2048-bit RSA key read from the PKCS#8 file `cache` when it holds one, else
    /// generated and written there (atomically, by rename) for the next test process.
    pub fn rsa2048_cached(kid: &str, cache: &Path) -> Result<Self> {
        if let Ok(pkcs8) = std::fs::read(cache)
            && let Ok(pair) = RsaKeyPair::from_pkcs8(&pkcs8)
            && pair.public_modulus_len() == 256
        {
            return Self::rsa(kid, pair);
        }
        let pair =
            RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow!("generating an RSA key"))?;
        let pkcs8 =
            AsDer::<Pkcs8V1Der<'_>>::as_der(&pair).map_err(|_| anyhow!("encoding the RSA key"))?;
        let partial = cache.with_extension(format!("{}.partial", std::process::id()));
        if let Some(dir) = cache.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&partial, pkcs8.as_ref())
            .and_then(|()| std::fs::rename(&partial, cache))
            .with_context(|| format!("caching the RSA key in {}", cache.display()))?;
        Self::rsa(kid, pair)
    }

    fn rsa(kid: &str, pair: RsaKeyPair) -> Result<Self> {
        let public = pair.public_key();
        let jwk = json!({
            "kty": "RSA",
            "n": b64(public.modulus().big_endian_without_leading_zero()),
            "e": b64(public.exponent().big_endian_without_leading_zero()),
        });
        let der = der_of(public.as_der())?;
        Ok(Self::assemble(
            KeyKind::Rsa2048,
            kid,
            jwk,
            der,
            Material::Rsa(pair),
        ))
    }

    /// Wraps an ECDSA key given as PKCS#8 DER (e.g. one rcgen made for a certificate).
    pub fn ecdsa_from_pkcs8(kind: KeyKind, kid: &str, pkcs8: &[u8]) -> Result<Self> {
        let (signing, crv) = kind
            .ecdsa()
            .with_context(|| format!("{kind:?} is not an ECDSA kind"))?;
        let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8)
            .map_err(|error| anyhow!("reading a {kind:?} key: {error}"))?;
        // Uncompressed SEC1 point: 0x04 || x || y, both coordinates the same length.
        let point = pair.public_key().as_ref();
        let half = point.len().saturating_sub(1) / 2;
        anyhow::ensure!(
            point.len() == 2 * half + 1 && point.first() == Some(&4),
            "unexpected {kind:?} public key encoding"
        );
        let jwk = json!({
            "kty": "EC",
            "crv": crv,
            "x": b64(&point[1..=half]),
            "y": b64(&point[half + 1..]),
        });
        let public_der = der_of(pair.public_key().as_der())?;
        Ok(Self::assemble(
            kind,
            kid,
            jwk,
            public_der,
            Material::Ecdsa(pair),
        ))
    }

    fn assemble(
        kind: KeyKind,
        kid: &str,
        mut jwk: Value,
        public_der: Vec<u8>,
        material: Material,
    ) -> Self {
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(kind.alg());
        Self {
            kind,
            kid: kid.to_owned(),
            jwk,
            public_der,
            material,
        }
    }

    /// Changes a member of the published JWK (`None` removes it), e.g. `use: enc`.
    pub fn publish_with(mut self, member: &str, value: Option<Value>) -> Self {
        if let Some(jwk) = self.jwk.as_object_mut() {
            match value {
                Some(value) => jwk.insert(member.to_owned(), value),
                None => jwk.remove(member),
            };
        }
        self
    }

    /// The kind of key.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWS algorithm the key signs with by default.
    pub fn alg(&self) -> &'static str {
        self.kind.alg()
    }

    /// The JWK as published in a JWKS (for a secret key, the secret itself).
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The public key as SubjectPublicKeyInfo DER (empty for secret and fixed keys).
    pub fn public_der(&self) -> &[u8] {
        &self.public_der
    }

    /// The public key as a `PUBLIC KEY` PEM document, ending with a newline.
    pub fn public_pem(&self) -> String {
        pem("PUBLIC KEY", &self.public_der)
    }

    /// The HMAC secret of an `oct` key.
    pub fn secret(&self) -> Option<&[u8]> {
        match &self.material {
            Material::Secret(secret) => Some(secret),
            _ => None,
        }
    }

    /// Signs `input`. For RSA keys `alg` chooses the padding and hash (`RS*`, `PS*`), for
    /// secrets the HMAC hash; ECDSA and Ed25519 keys sign with their own algorithm whatever
    /// `alg` says, so a header can lie about it.
    pub fn sign(&self, alg: &str, input: &[u8]) -> Result<Vec<u8>> {
        match &self.material {
            Material::Ecdsa(pair) => Ok(pair
                .sign(&SystemRandom::new(), input)
                .map_err(|_| anyhow!("ecdsa signing failed"))?
                .as_ref()
                .to_vec()),
            Material::Ed25519(pair) => Ok(pair.sign(input).as_ref().to_vec()),
            Material::Rsa(pair) => {
                let mut signature = vec![0_u8; pair.public_modulus_len()];
                pair.sign(
                    rsa_padding(alg)?,
                    &SystemRandom::new(),
                    input,
                    &mut signature,
                )
                .map_err(|_| anyhow!("rsa signing failed"))?;
                Ok(signature)
            }
            Material::WeakRsa(weak) => {
                anyhow::ensure!(alg == "RS256", "the 1024-bit key signs RS256 only");
                Ok(weak.sign_rs256(input))
            }
            Material::Secret(secret) => hmac(alg, secret, input),
        }
    }
}

fn rsa_padding(alg: &str) -> Result<&'static dyn RsaEncoding> {
    Ok(match alg {
        "RS256" => &RSA_PKCS1_SHA256,
        "RS384" => &RSA_PKCS1_SHA384,
        "RS512" => &RSA_PKCS1_SHA512,
        "PS256" => &RSA_PSS_SHA256,
        "PS384" => &RSA_PSS_SHA384,
        "PS512" => &RSA_PSS_SHA512,
        other => bail!("{other} is not an RSA signature algorithm"),
    })
}

fn der_of(
    der: Result<PublicKeyX509Der<'static>, aws_lc_rs::error::Unspecified>,
) -> Result<Vec<u8>> {
    let der = der.map_err(|_| anyhow!("encoding a public key"))?;
    Ok(der.as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256K1_SHA256_FIXED, ECDSA_P384_SHA384_FIXED,
        ECDSA_P521_SHA512_FIXED, ED25519, RSA_PSS_2048_8192_SHA256, RsaPublicKeyComponents,
        UnparsedPublicKey, VerificationAlgorithm,
    };

    use super::*;

    #[test]
    fn every_kind_signs_what_its_public_jwk_verifies() {
        let cases: [(KeyKind, &str, &'static dyn VerificationAlgorithm); 6] = [
            (KeyKind::P256, "ES256", &ECDSA_P256_SHA256_FIXED),
            (KeyKind::P384, "ES384", &ECDSA_P384_SHA384_FIXED),
            (KeyKind::P521, "ES512", &ECDSA_P521_SHA512_FIXED),
            (KeyKind::Secp256k1, "ES256K", &ECDSA_P256K1_SHA256_FIXED),
            (KeyKind::Ed25519, "EdDSA", &ED25519),
            (KeyKind::Rsa2048, "PS256", &RSA_PSS_2048_8192_SHA256),
        ];
        for (kind, alg, verification) in cases {
            let key = TestKey::generate(kind, "k").expect("a key");
            let signature = key.sign(alg, b"message").expect("a signature");
            let verified = match kind {
                KeyKind::Rsa2048 => RsaPublicKeyComponents {
                    n: member(&key, "n"),
                    e: member(&key, "e"),
                }
                .verify(&RSA_PSS_2048_8192_SHA256, b"message", &signature),
                KeyKind::Ed25519 => UnparsedPublicKey::new(verification, member(&key, "x"))
                    .verify(b"message", &signature),
                _ => {
                    let point = [vec![4], member(&key, "x"), member(&key, "y")].concat();
                    UnparsedPublicKey::new(verification, point).verify(b"message", &signature)
                }
            };
            assert!(verified.is_ok(), "{kind:?} signature verifies");
            assert_eq!(key.jwk()["kid"], "k");
            assert!(
                !key.public_der().is_empty(),
                "{kind:?} has a SubjectPublicKeyInfo"
            );
        }
    }

    #[test]
    fn oct_keys_publish_their_secret() {
        let key = TestKey::generate(KeyKind::Oct, "oct").expect("a secret");
        let secret = key.secret().expect("a secret key");
        assert_eq!(key.jwk()["k"], b64(secret));
        assert_eq!(
            key.sign("HS256", b"m").expect("a mac"),
            hmac("HS256", secret, b"m").expect("a mac")
        );
    }

    #[test]
    fn a_cached_rsa_key_is_read_back() {
        let cache = std::env::temp_dir()
            .join(format!(
                "hub-tests-rsa-cache-{}",
                uuid::Uuid::new_v4().simple()
            ))
            .join("rsa.pk8");
        let first = TestKey::rsa2048_cached("a", &cache).expect("a generated key");
        let second = TestKey::rsa2048_cached("b", &cache).expect("the cached key");
        assert_eq!(first.jwk()["n"], second.jwk()["n"]);
        assert_eq!(second.kid(), "b");
        if let Some(dir) = cache.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    fn member(key: &TestKey, name: &str) -> Vec<u8> {
        let text = key.jwk()[name].as_str().expect("a jwk member");
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, text)
            .expect("base64url")
    }
}
