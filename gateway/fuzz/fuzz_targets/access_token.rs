//! FUZ-1 `access_token`: structure-aware tokens through the gateway's real verification.
//!
//! The input chooses a protected header (`alg`, `kid`, `typ`, `crit`, `jku`, `b64`, extra
//! members) and claims (`iss`, `aud`, `exp`, `nbf`, `iat`, `scope`, `scp`, the topic claim,
//! `sub`, `client_id`, extra members), each either well formed, absent or any JSON value,
//! optionally a duplicated member spliced into the JSON text, or raw segment bytes. The
//! token is signed with a real ES256 test key (generated once per process), another key of
//! the same set, or not at all, so inputs get past the signature to the claim checks.
//! Every variant's first choice is the valid one, so an input of zeros is an accepted token.
//!
//! Oracle: a token the gateway accepts is also accepted by [`reference_accepts`], an
//! independent check of the configured rules, and the principal carries its claims.

#![no_main]

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

use gateway::auth::{DEFAULT_LEEWAY, Principal, Verifier, VerifierConfig};
use gateway_fuzz::{Json, json_facts};

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "https://hub.example/api/hub";
const TOPIC_CLAIM: &str = "hub.topic";
const TOPIC: &str = "fdb2f928-5546-4f52-87a0-0648e9ded065";
/// Clock leeway the reference allows, in seconds (the verifier's default).
const LEEWAY: u64 = 60;
/// Nesting the hub allows in header and claims JSON.
const MAX_TOKEN_JSON_DEPTH: usize = 16;
/// 9999-12-31T23:59:59Z: the latest date the hub accepts.
const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// One ES256 test key of the issuer's set.
struct TestKey {
    kid: &'static str,
    encoding: EncodingKey,
    jwk: Value,
}

impl TestKey {
    fn generate(kid: &'static str) -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("generate a P-256 test key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .expect("read the P-256 test key");
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Self {
            kid,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        }
    }
}

struct Fixture {
    verifier: Verifier,
    keys: [TestKey; 2],
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let mut config = VerifierConfig::new(
        ISSUER,
        "https://issuer.example/jwks.json",
        AUDIENCE,
        vec![
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::RS256,
            Algorithm::PS256,
        ],
    );
    config.topic_claim = TOPIC_CLAIM.to_owned();
    assert_eq!(config.leeway, DEFAULT_LEEWAY);
    assert_eq!(DEFAULT_LEEWAY.as_secs(), LEEWAY);
    // The verifier wants an HTTP client for its JWKS; this target never fetches.
    let verifier =
        Verifier::new(config, reqwest::Client::new()).expect("a valid verifier configuration");
    Fixture {
        verifier,
        keys: [
            TestKey::generate("fuzz-key-1"),
            TestKey::generate("fuzz-key-2"),
        ],
    }
});

/// The fixed-size choices come first: `arbitrary` hands out bytes in field order, and the
/// header and claims would otherwise leave them none.
#[derive(Arbitrary, Debug)]
struct Input {
    signer: Signer,
    key_set: KeySetChoice,
    header: Header,
    claims: Claims,
}

/// A member: well formed, absent, or any JSON value.
#[derive(Arbitrary, Debug)]
enum Member<T> {
    Typical(T),
    Absent,
    Any(Json),
}

/// A member the valid token leaves out.
#[derive(Arbitrary, Debug)]
enum Extra<T> {
    Absent,
    Typical(T),
    Any(Json),
}

#[derive(Arbitrary, Debug)]
enum Alg {
    Es256,
    Es384,
    Rs256,
    Ps256,
    EdDsa,
    Hs256,
    None,
    LowerEs256,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Kid {
    Signer,
    FirstKey,
    SecondKey,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Typ {
    Jwt,
    AtJwt,
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Header {
    alg: Member<Alg>,
    kid: Member<Kid>,
    typ: Member<Typ>,
    crit: Extra<Vec<String>>,
    jku: Extra<String>,
    b64: Extra<bool>,
    extra: Vec<(String, Json)>,
    duplicate: Option<(HeaderName, Json)>,
    raw: Option<Vec<u8>>,
}

#[derive(Arbitrary, Debug)]
enum HeaderName {
    Alg,
    Kid,
    Crit,
}

#[derive(Arbitrary, Debug)]
enum Iss {
    Configured,
    TrailingSlash,
    AsArray,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Aud {
    Configured,
    ArrayWith(Vec<String>),
    Other(String),
    ArrayWithout(Vec<String>),
}

/// A NumericDate as seconds from now (may be negative), or a fixed odd value.
#[derive(Arbitrary, Debug)]
enum Date {
    FromNow(i32),
    Absolute(u64),
    Float(f32),
    Text(i32),
}

#[derive(Arbitrary, Debug)]
enum Scope {
    ReadWriteAll,
    Vocabulary(Vec<u8>),
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Topics {
    One,
    Many(Vec<String>),
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Claims {
    iss: Member<Iss>,
    aud: Member<Aud>,
    exp: Member<Date>,
    nbf: Extra<Date>,
    iat: Extra<Date>,
    scope: Member<Scope>,
    scp: Extra<Vec<String>>,
    topic: Member<Topics>,
    sub: Extra<String>,
    client_id: Extra<String>,
    extra: Vec<(String, Json)>,
    duplicate: Option<(ClaimName, Json)>,
    raw: Option<Vec<u8>>,
}

#[derive(Arbitrary, Debug)]
enum ClaimName {
    Iss,
    Aud,
    Exp,
    Scope,
    Topic,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    FirstKey,
    SecondKey,
    Garbage,
    Unsigned,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum KeySetChoice {
    FirstOnly,
    Both,
}

const SCOPE_WORDS: &[&str] = &[
    "fhircast/*.read",
    "fhircast/*.write",
    "fhircast/Patient-open.read",
    "fhircast/patient-OPEN.write",
    "fhircast/*.*",
    "openid",
    "launch",
    "FHIRCAST/*.read",
    "fhircast/Foo-open.read",
];

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn member<T>(
    object: &mut Map<String, Value>,
    name: &str,
    member: &Member<T>,
    typical: impl Fn(&T) -> Value,
) {
    let value = match member {
        Member::Typical(t) => typical(t),
        Member::Absent => return,
        Member::Any(json) => json.to_value(),
    };
    object.insert(name.to_owned(), value);
}

fn extra<T>(
    object: &mut Map<String, Value>,
    name: &str,
    extra: &Extra<T>,
    typical: impl Fn(&T) -> Value,
) {
    let value = match extra {
        Extra::Absent => return,
        Extra::Typical(t) => typical(t),
        Extra::Any(json) => json.to_value(),
    };
    object.insert(name.to_owned(), value);
}

fn date(now: u64, date: &Date) -> Value {
    match date {
        Date::FromNow(offset) => {
            let secs = i64::try_from(now).unwrap_or(i64::MAX) + i64::from(*offset);
            Value::from(secs)
        }
        Date::Absolute(secs) => Value::from(*secs),
        Date::Float(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number)
        }
        Date::Text(offset) => Value::String((i128::from(now) + i128::from(*offset)).to_string()),
    }
}

/// Serialises `object`, then splices a second member named `name` in front, so the text
/// holds a duplicate the map could not.
fn to_text(object: &Map<String, Value>, duplicate: Option<(&str, &Json)>) -> Vec<u8> {
    let text = Value::Object(object.clone()).to_string();
    match duplicate {
        None => text.into_bytes(),
        Some((name, value)) => {
            let member = format!("{}:{}", Value::from(name), value.to_value());
            let rest = &text[1..];
            let separator = if rest == "}" { "" } else { "," };
            format!("{{{member}{separator}{rest}").into_bytes()
        }
    }
}

fn header_text(header: &Header, signer: Signer, keys: &[TestKey; 2]) -> Vec<u8> {
    if let Some(raw) = &header.raw {
        return raw.clone();
    }
    let mut object = Map::new();
    member(&mut object, "alg", &header.alg, |alg| {
        Value::from(match alg {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
            Alg::EdDsa => "EdDSA",
            Alg::Hs256 => "HS256",
            Alg::None => "none",
            Alg::LowerEs256 => "es256",
            Alg::Other(other) => other,
        })
    });
    member(&mut object, "kid", &header.kid, |kid| {
        Value::from(match kid {
            Kid::Signer if signer == Signer::SecondKey => keys[1].kid,
            Kid::Signer | Kid::FirstKey => keys[0].kid,
            Kid::SecondKey => keys[1].kid,
            Kid::Other(other) => other,
        })
    });
    member(&mut object, "typ", &header.typ, |typ| {
        Value::from(match typ {
            Typ::Jwt => "JWT",
            Typ::AtJwt => "at+jwt",
            Typ::Other(other) => other,
        })
    });
    extra(&mut object, "crit", &header.crit, |names| {
        Value::from(names.clone())
    });
    extra(&mut object, "jku", &header.jku, |url| {
        Value::from(url.clone())
    });
    extra(&mut object, "b64", &header.b64, |b64| Value::from(*b64));
    for (name, value) in &header.extra {
        object.insert(name.clone(), value.to_value());
    }
    let duplicate = header.duplicate.as_ref().map(|(name, value)| {
        let name = match name {
            HeaderName::Alg => "alg",
            HeaderName::Kid => "kid",
            HeaderName::Crit => "crit",
        };
        (name, value)
    });
    to_text(&object, duplicate)
}

fn claims_text(claims: &Claims, now: u64) -> Vec<u8> {
    if let Some(raw) = &claims.raw {
        return raw.clone();
    }
    let mut object = Map::new();
    member(&mut object, "iss", &claims.iss, |iss| match iss {
        Iss::Configured => Value::from(ISSUER),
        Iss::TrailingSlash => Value::from(format!("{ISSUER}/")),
        Iss::AsArray => json!([ISSUER]),
        Iss::Other(other) => Value::from(other.clone()),
    });
    member(&mut object, "aud", &claims.aud, |aud| match aud {
        Aud::Configured => Value::from(AUDIENCE),
        Aud::ArrayWith(others) => {
            let mut all = others.clone();
            all.push(AUDIENCE.to_owned());
            Value::from(all)
        }
        Aud::Other(other) => Value::from(other.clone()),
        Aud::ArrayWithout(others) => Value::from(others.clone()),
    });
    member(&mut object, "exp", &claims.exp, |d| date(now, d));
    extra(&mut object, "nbf", &claims.nbf, |d| date(now, d));
    extra(&mut object, "iat", &claims.iat, |d| date(now, d));
    member(&mut object, "scope", &claims.scope, |scope| match scope {
        Scope::ReadWriteAll => Value::from("fhircast/*.read fhircast/*.write"),
        Scope::Vocabulary(picks) => {
            let words: Vec<&str> = picks
                .iter()
                .map(|pick| SCOPE_WORDS[usize::from(*pick) % SCOPE_WORDS.len()])
                .collect();
            Value::from(words.join(" "))
        }
        Scope::Other(other) => Value::from(other.clone()),
    });
    extra(&mut object, "scp", &claims.scp, |scp| {
        Value::from(scp.clone())
    });
    member(
        &mut object,
        TOPIC_CLAIM,
        &claims.topic,
        |topics| match topics {
            Topics::One => Value::from(TOPIC),
            Topics::Many(others) => Value::from(others.clone()),
            Topics::Other(other) => Value::from(other.clone()),
        },
    );
    extra(&mut object, "sub", &claims.sub, |sub| {
        Value::from(sub.clone())
    });
    extra(&mut object, "client_id", &claims.client_id, |id| {
        Value::from(id.clone())
    });
    for (name, value) in &claims.extra {
        object.insert(name.clone(), value.to_value());
    }
    let duplicate = claims.duplicate.as_ref().map(|(name, value)| {
        let name = match name {
            ClaimName::Iss => "iss",
            ClaimName::Aud => "aud",
            ClaimName::Exp => "exp",
            ClaimName::Scope => "scope",
            ClaimName::Topic => TOPIC_CLAIM,
        };
        (name, value)
    });
    to_text(&object, duplicate)
}

fn sign(header: &[u8], claims: &[u8], signer: Signer, keys: &[TestKey; 2]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = match signer {
        Signer::FirstKey | Signer::SecondKey => {
            let key = &keys[usize::from(signer == Signer::SecondKey)];
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key.encoding, Algorithm::ES256)
                .expect("sign with the test key")
        }
        Signer::Garbage => URL_SAFE_NO_PAD.encode([0x5a; 64]),
        Signer::Unsigned => String::new(),
    };
    format!("{signing_input}.{signature}")
}

/// The reference check: what the configuration promises, read from the token's own
/// bytes. `earliest`/`latest` bracket the verifier's clock reading.
fn reference_accepts(
    header: &[u8],
    claims: &[u8],
    signer: Signer,
    key_set: KeySetChoice,
    keys: &[TestKey; 2],
    earliest: u64,
    latest: u64,
) -> Result<(), String> {
    // Both segments: JSON objects, no member twice, nesting within the cap.
    for (what, bytes) in [("header", header), ("claims", claims)] {
        let facts = json_facts(bytes).ok_or(format!("{what} is not json"))?;
        if facts.duplicate_member {
            return Err(format!("{what} names a member twice"));
        }
        if facts.depth > MAX_TOKEN_JSON_DEPTH {
            return Err(format!("{what} nests {} deep", facts.depth));
        }
    }
    let header: Map<String, Value> =
        serde_json::from_slice(header).map_err(|_| "header is not an object")?;
    let claims: Map<String, Value> =
        serde_json::from_slice(claims).map_err(|_| "claims are not an object")?;

    // Header: the only algorithm the set's keys verify, no critical extensions, an
    // encoded payload, and a key choice that lands on the key that signed.
    if header.get("alg") != Some(&Value::from("ES256")) {
        return Err("alg is not ES256".into());
    }
    if header.contains_key("crit") {
        return Err("crit present".into());
    }
    if header
        .get("b64")
        .is_some_and(|b64| b64 != &Value::Bool(true))
    {
        return Err("b64 is not true".into());
    }
    let signing_key = match signer {
        Signer::FirstKey => &keys[0],
        Signer::SecondKey if key_set == KeySetChoice::Both => &keys[1],
        _ => return Err("not signed by a key of the set".into()),
    };
    match header.get("kid") {
        None if key_set == KeySetChoice::FirstOnly => {}
        None => return Err("no kid and several keys".into()),
        Some(kid) if kid == &Value::from(signing_key.kid) => {}
        Some(_) => return Err("kid does not name the signing key".into()),
    }

    // Claims: as configured.
    if claims.get("iss") != Some(&Value::from(ISSUER)) {
        return Err("iss".into());
    }
    match claims.get("aud") {
        Some(Value::String(aud)) if aud == AUDIENCE => {}
        Some(Value::Array(auds))
            if auds.iter().all(Value::is_string) && auds.contains(&Value::from(AUDIENCE)) => {}
        _ => return Err("aud".into()),
    }
    let date = |name: &str| -> Result<Option<u64>, String> {
        match claims.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .filter(|secs| *secs <= MAX_NUMERIC_DATE)
                .map(Some)
                .ok_or(format!("{name} is not an integer date")),
        }
    };
    let exp = date("exp")?.ok_or("no exp")?;
    if exp + LEEWAY < earliest {
        return Err("expired".into());
    }
    if date("nbf")?.is_some_and(|nbf| nbf > latest + LEEWAY) {
        return Err("not yet valid".into());
    }
    if date("iat")?.is_some_and(|iat| iat > latest + LEEWAY) {
        return Err("issued in the future".into());
    }
    let strings = |value: &Value| match value {
        Value::String(_) => true,
        Value::Array(items) => items.iter().all(Value::is_string),
        _ => false,
    };
    match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(_)), _) | (None, None) => {}
        (None, Some(scp)) if strings(scp) => {}
        _ => return Err("scope or scp malformed".into()),
    }
    if claims
        .get(TOPIC_CLAIM)
        .is_some_and(|topics| !strings(topics))
    {
        return Err("topic claim malformed".into());
    }
    Ok(())
}

/// What the principal must say about an accepted token.
fn check_principal(principal: &Principal, claims: &Map<String, Value>) {
    let topics: Vec<String> = match claims.get(TOPIC_CLAIM) {
        None => Vec::new(),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(other) => panic!("accepted a topic claim of {other}"),
    };
    assert_eq!(principal.topics, topics);
    let exp = claims.get("exp").and_then(Value::as_u64);
    let expires = principal
        .expires_at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .ok();
    assert_eq!(expires, exp);
    assert_eq!(
        principal.subject.as_deref(),
        claims.get("sub").and_then(Value::as_str)
    );
}

fuzz_target!(|input: Input| {
    let fixture = &*FIXTURE;
    let now = now_secs();
    let header = header_text(&input.header, input.signer, &fixture.keys);
    let claims = claims_text(&input.claims, now);
    let token = sign(&header, &claims, input.signer, &fixture.keys);
    let mut jwks = vec![fixture.keys[0].jwk.clone()];
    if input.key_set == KeySetChoice::Both {
        jwks.push(fixture.keys[1].jwk.clone());
    }
    let jwks = json!({ "keys": jwks });

    let earliest = now_secs();
    let verdict = fixture.verifier.verify_with_jwks(&token, &jwks);
    let latest = now_secs();

    if let Ok(principal) = verdict {
        if let Err(reason) = reference_accepts(
            &header,
            &claims,
            input.signer,
            input.key_set,
            &fixture.keys,
            earliest,
            latest,
        ) {
            panic!(
                "the gateway accepted a token the reference refuses ({reason}): header {} claims {}",
                String::from_utf8_lossy(&header),
                String::from_utf8_lossy(&claims)
            );
        }
        let claims: Map<String, Value> = serde_json::from_slice(&claims).expect("checked above");
        check_principal(&principal, &claims);
    }
});
