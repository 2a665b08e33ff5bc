//! Test issuer: generated keys, token minting (valid and forged) and a JWKS server on
//! 127.0.0.1:0 that counts its requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair as _,
};
use axum::Router;
use axum::routing::{any, get};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::auth::{Verifier, VerifierConfig};

/// The JWKS refresh interval of test verifiers: short, so tests that wait for it stay fast.
pub(super) const REFRESH_INTERVAL: Duration = Duration::from_millis(300);

pub(super) const ISSUER: &str = "https://issuer.example/tenant-a";
pub(super) const AUDIENCE: &str = "https://hub.example/api/hub";
pub(super) const TOPIC: &str = "TopicAbcdefghij0123456789";

/// A signing key with its public JWK.
pub(super) struct TestKey {
    pub(super) kid: String,
    pub(super) alg: Algorithm,
    pub(super) encoding: EncodingKey,
    pub(super) jwk: Value,
    /// SubjectPublicKeyInfo DER of the public key (for key-confusion forgeries).
    pub(super) public_der: Vec<u8>,
}

impl TestKey {
    pub(super) fn es256(kid: &str) -> Self {
        Self::ec(
            kid,
            Algorithm::ES256,
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            "P-256",
        )
    }

    pub(super) fn es384(kid: &str) -> Self {
        Self::ec(
            kid,
            Algorithm::ES384,
            &ECDSA_P384_SHA384_FIXED_SIGNING,
            "P-384",
        )
    }

    fn ec(kid: &str, alg: Algorithm, signing: &'static EcdsaSigningAlgorithm, crv: &str) -> Self {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &SystemRandom::new()).expect("ec key");
        let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).expect("ec pkcs8");
        let point = pair.public_key().as_ref();
        let half = (point.len() - 1) / 2;
        let public_der = pair.public_key().as_der().expect("spki").as_ref().to_vec();
        Self {
            kid: kid.to_owned(),
            alg,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "EC", "crv": crv, "kid": kid, "use": "sig", "alg": format!("{alg:?}"),
                "x": URL_SAFE_NO_PAD.encode(&point[1..=half]),
                "y": URL_SAFE_NO_PAD.encode(&point[half + 1..]),
            }),
            public_der,
        }
    }

    /// A 2048-bit RSA key; its JWK has no `alg`, so it may sign RS* and PS*.
    pub(super) fn rsa(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa key");
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair).expect("pkcs8");
        let pem = pem("PRIVATE KEY", pkcs8.as_ref());
        let public = pair.public_key();
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("rsa pem"),
            jwk: json!({
                "kty": "RSA", "kid": kid, "use": "sig",
                "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            }),
            public_der: public.as_der().expect("spki").as_ref().to_vec(),
        }
    }

    /// Signs `claims` with this key, `kid` in the header.
    pub(super) fn mint(&self, claims: &Value) -> String {
        self.mint_as(self.alg, &json!({"kid": self.kid}), claims)
    }

    /// Signs with `alg` and extra header members (`alg` is set here).
    pub(super) fn mint_as(&self, alg: Algorithm, header: &Value, claims: &Value) -> String {
        sign_raw(&self.encoding, alg, header, &claims.to_string())
    }
}

pub(super) fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).expect("base64 is ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Signs an arbitrary header and raw payload text (so tests can forge odd shapes).
pub(super) fn sign_raw(key: &EncodingKey, alg: Algorithm, header: &Value, payload: &str) -> String {
    let mut header = header.clone();
    header["alg"] = json!(format!("{alg:?}"));
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("sign");
    format!("{message}.{signature}")
}

/// A token that is not signed at all: `header.payload.signature` from raw JSON.
pub(super) fn unsigned(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Claims of a valid token for [`TOPIC`].
pub(super) fn claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "client_id": "app-1",
        "iat": now, "nbf": now, "exp": now + 600,
        "scope": "launch fhircast/Patient-open.read fhircast/*.write",
        "hub.topic": TOPIC,
    })
}

/// Claims of a valid token with one member changed (`Value::Null` removes it).
pub(super) fn claims_with(name: &str, value: Value) -> Value {
    with_member(claims(), name, value)
}

/// A JSON object with one member changed (`Value::Null` removes it).
pub(super) fn with_member(mut object: Value, name: &str, value: Value) -> Value {
    let map = object.as_object_mut().expect("an object");
    if value.is_null() {
        map.remove(name);
    } else {
        map.insert(name.to_owned(), value);
    }
    object
}

/// A JWKS endpoint on 127.0.0.1:0 that counts requests; `/canary` counts header-key probes.
pub(super) struct JwksServer {
    pub(super) base: String,
    document: Arc<Mutex<(u16, Value)>>,
    hits: Arc<AtomicUsize>,
    canary: Arc<AtomicUsize>,
}

impl JwksServer {
    pub(super) async fn start(keys: &[&TestKey]) -> Self {
        let document = Arc::new(Mutex::new((200, Value::Null)));
        let hits = Arc::new(AtomicUsize::new(0));
        let canary = Arc::new(AtomicUsize::new(0));
        let (doc, count, probes) = (
            Arc::clone(&document),
            Arc::clone(&hits),
            Arc::clone(&canary),
        );
        let app = Router::new()
            .route(
                "/jwks.json",
                get(move || {
                    let (status, body) = doc.lock().expect("jwks lock").clone();
                    count.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let status = axum::http::StatusCode::from_u16(status).expect("status");
                        (status, axum::Json(body))
                    }
                }),
            )
            .route(
                "/canary",
                any(move || {
                    probes.fetch_add(1, Ordering::SeqCst);
                    async { "canary" }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        let server = Self {
            base: format!("http://{addr}"),
            document,
            hits,
            canary,
        };
        server.set_keys(keys);
        server
    }

    pub(super) fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.base)
    }

    pub(super) fn set_keys(&self, keys: &[&TestKey]) {
        let keys: Vec<Value> = keys.iter().map(|key| key.jwk.clone()).collect();
        self.set_document(200, json!({ "keys": keys }));
    }

    pub(super) fn set_document(&self, status: u16, body: Value) {
        *self.document.lock().expect("jwks lock") = (status, body);
    }

    pub(super) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub(super) fn canary_hits(&self) -> usize {
        self.canary.load(Ordering::SeqCst)
    }

    /// A verifier for [`ISSUER`] and [`AUDIENCE`] accepting ES256 and RS256.
    /// Returns a verifier of this server's keys, refetching on a miss at most every
    /// [`REFRESH_INTERVAL`].
    pub(super) fn verifier(&self) -> Verifier {
        self.verifier_with(|_| {})
    }

    pub(super) fn verifier_with(&self, adjust: impl FnOnce(&mut VerifierConfig)) -> Verifier {
        let mut config = self.config_for(ISSUER, vec![Algorithm::ES256, Algorithm::RS256]);
        adjust(&mut config);
        Verifier::new(config, http()).expect("valid verifier config")
    }

    /// The configuration of `issuer` whose keys this server publishes, for [`AUDIENCE`].
    pub(super) fn config_for(&self, issuer: &str, algorithms: Vec<Algorithm>) -> VerifierConfig {
        let mut config = VerifierConfig::new(issuer, self.jwks_url(), AUDIENCE, algorithms);
        config.refresh_min_interval = REFRESH_INTERVAL;
        config
    }
}

/// A client that never goes through an environment proxy.
pub(super) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client")
}
