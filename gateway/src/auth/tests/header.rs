//! TOK-02…TOK-05, TOK-13 and TOK-14: the protected header chooses nothing the issuer did
//! not publish, `typ` follows the issuer's policy, and mangled tokens are refused without
//! panicking.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::support::{JwksServer, TestKey, claims, pem, sign_raw, unsigned, with_member};
use crate::auth::{AuthError, TokenTypePolicy, Verifier};

async fn assert_refused(verifier: &Verifier, token: &str, label: &str) -> AuthError {
    let err = verifier.verify(token).await.expect_err(label);
    assert_eq!(err.http_status(), 401, "{label}: {err}");
    err
}

#[tokio::test]
async fn tok_02_alg_none_is_refused() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let verifier = server.verifier();
    let valid = key.mint(&claims());
    let real_signature = valid.rsplit('.').next().expect("signature");
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let header = json!({"alg": alg, "kid": key.kid, "typ": "JWT"});
        for signature in ["", real_signature, "AAAA"] {
            let token = unsigned(&header, &claims(), signature);
            assert_refused(&verifier, &token, &format!("alg {alg:?}")).await;
        }
    }
    let no_alg = unsigned(&json!({"kid": key.kid}), &claims(), real_signature);
    assert_refused(&verifier, &no_alg, "no alg").await;
}

#[tokio::test]
async fn tok_03_hs256_signed_with_the_public_key_is_refused() {
    let (ec, rsa) = (TestKey::es256("ec-1"), TestKey::rsa("rsa-1"));
    let server = JwksServer::start(&[&ec, &rsa]).await;
    let verifier = server.verifier();
    for key in [&ec, &rsa] {
        let pem = pem("PUBLIC KEY", &key.public_der);
        let n_or_x = key.jwk["n"]
            .as_str()
            .or(key.jwk["x"].as_str())
            .expect("n or x");
        let jwk_text = key.jwk.to_string();
        let secrets: [&[u8]; 5] = [
            &key.public_der,
            pem.as_bytes(),
            pem.trim_end().as_bytes(),
            n_or_x.as_bytes(),
            jwk_text.as_bytes(),
        ];
        for (i, secret) in secrets.iter().enumerate() {
            let hmac = EncodingKey::from_secret(secret).expect("hmac key");
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let token = sign_raw(&hmac, alg, &json!({"kid": key.kid}), &claims().to_string());
                let err = assert_refused(&verifier, &token, &format!("{alg:?} secret {i}")).await;
                assert_eq!(err.reason(), "token algorithm is not allowed");
            }
        }
    }
}

#[tokio::test]
async fn tok_04_algorithm_not_allowlisted_is_refused() {
    let (p384, rsa) = (TestKey::es384("ec-384"), TestKey::rsa("rsa-1"));
    let server = JwksServer::start(&[&p384, &rsa]).await;
    let verifier = server.verifier();
    let es384 = p384.mint(&claims());
    assert_refused(&verifier, &es384, "ES384").await;
    for alg in [Algorithm::RS512, Algorithm::PS256] {
        let token = rsa.mint_as(alg, &json!({"kid": rsa.kid}), &claims());
        assert_refused(&verifier, &token, &format!("{alg:?}")).await;
    }
    // The same RS512 token passes once RS512 is allowlisted: only the allowlist refused it.
    let rs512 = rsa.mint_as(Algorithm::RS512, &json!({"kid": rsa.kid}), &claims());
    let wider = server.verifier_with(|config| config.algorithms.push(Algorithm::RS512));
    assert!(wider.verify(&rs512).await.is_ok());
}

#[tokio::test]
async fn tok_05_header_supplied_keys_are_never_used() {
    let (issuer_key, attacker) = (TestKey::es256("ec-1"), TestKey::es256("attacker"));
    let server = JwksServer::start(&[&issuer_key]).await;
    let verifier = server.verifier();
    let canary = format!("{}/canary", server.base);
    let headers = [
        json!({"jwk": attacker.jwk}),
        json!({"kid": attacker.kid, "jwk": attacker.jwk}),
        json!({"kid": issuer_key.kid, "jwk": attacker.jwk}),
        json!({"jku": canary}),
        json!({"kid": attacker.kid, "jku": canary}),
        json!({"kid": issuer_key.kid, "x5u": canary}),
        json!({"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
    ];
    for header in headers {
        let token = attacker.mint_as(Algorithm::ES256, &header, &claims());
        assert_refused(&verifier, &token, &header.to_string()).await;
    }
    assert_eq!(server.canary_hits(), 0);
}

#[tokio::test]
async fn unknown_crit_header_is_refused() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let verifier = server.verifier();
    for header in [
        json!({"kid": key.kid, "crit": ["exp"], "exp": 1}),
        json!({"kid": key.kid, "crit": ["b64"], "b64": false}),
        json!({"kid": key.kid, "b64": false}),
    ] {
        let token = key.mint_as(key.alg, &header, &claims());
        assert_refused(&verifier, &token, &header.to_string()).await;
    }
}

#[tokio::test]
async fn tok_14_tampered_tokens_are_refused_without_panic() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let verifier = server.verifier();
    let valid = key.mint(&claims());
    assert!(verifier.verify(&valid).await.is_ok());
    let mut mutants = Vec::new();
    let bytes = valid.as_bytes();
    for at in (0..bytes.len()).step_by(3) {
        if bytes[at] == b'.' {
            continue;
        }
        let mut flipped = bytes.to_vec();
        flipped[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        mutants.push(String::from_utf8(flipped).expect("ascii"));
    }
    for cut in [1, 10, valid.len() / 2, valid.len() - 1] {
        mutants.push(valid[..cut].to_owned());
    }
    let parts: Vec<&str> = valid.split('.').collect();
    mutants.extend([
        format!("{}.{}", parts[0], parts[1]),
        format!("{valid}.{}", parts[2]),
        format!("{valid}.x.y"),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], parts[2].replace('-', "+")),
        format!("{}.{} .{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", parts[1], parts[0], parts[2]),
        String::new(),
        "..".to_owned(),
        "a.b.c".to_owned(),
        "\u{0}.\u{0}.\u{0}".to_owned(),
        "x".repeat(20_000),
    ]);
    let mut refused = 0;
    for mutant in &mutants {
        if mutant == &valid {
            continue;
        }
        // Some base64url flips of the last character decode to the same bytes; those are
        // the same token and may pass. Everything else must be refused.
        match verifier.verify(mutant).await {
            Ok(_) => assert_eq!(canonical(mutant), canonical(&valid), "accepted mutant"),
            Err(err) => {
                assert_eq!(err.http_status(), 401, "{err}");
                refused += 1;
            }
        }
    }
    assert!(refused > 50, "only {refused} refused");
}

/// Decoded segments, to tell a real change from a non-canonical base64 spelling.
fn canonical(token: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    token
        .split('.')
        .map(|part| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn tok_13_typ_is_judged_by_the_issuers_policy_before_any_key_lookup() {
    let key = TestKey::es256("ec-1");
    let server = JwksServer::start(&[&key]).await;
    let lenient = server.verifier();
    let strict = server.verifier_with(|config| config.token_type_policy = TokenTypePolicy::Strict);
    lenient.prefetch().await.expect("prefetch");
    strict.prefetch().await.expect("prefetch");
    let typed = |typ: Value| key.mint_as(key.alg, &json!({"kid": key.kid, "typ": typ}), &claims());
    let untyped = key.mint(&claims());
    for token in [&typed(json!("JWT")), &typed(json!("at+jwt")), &untyped] {
        assert!(lenient.verify(token).await.is_ok());
    }
    for typ in ["at+jwt", "AT+JWT", "application/at+jwt"] {
        assert!(strict.verify(&typed(json!(typ))).await.is_ok(), "{typ}");
    }
    let hits = server.hits();
    for typ in ["logout+jwt", "secevent+jwt", "JWT "] {
        assert_refused(&lenient, &typed(json!(typ)), typ).await;
    }
    for token in [&typed(json!("JWT")), &untyped] {
        let err = assert_refused(&strict, token, "strict").await;
        assert_eq!(err.reason(), "token typ must be at+jwt");
    }
    let id_token_shape = key.mint_as(
        key.alg,
        &json!({"kid": key.kid, "typ": "at+jwt"}),
        &with_member(claims(), "nonce", json!("n-0S6_WzA2Mj")),
    );
    let err = assert_refused(&strict, &id_token_shape, "nonce").await;
    assert!(err.reason().contains("nonce"), "{}", err.reason());
    assert!(lenient.verify(&id_token_shape).await.is_ok());
    for typ in [json!(7), json!(null), json!(["at+jwt"])] {
        let err = assert_refused(&lenient, &typed(typ.clone()), "non-string typ").await;
        assert!(matches!(err, AuthError::Malformed { .. }), "{typ}: {err}");
    }
    // An unknown kid with a refused typ costs no fetch: the type is judged first.
    let stranger = TestKey::es256("not-published");
    let token = stranger.mint_as(
        stranger.alg,
        &json!({"kid": "nope", "typ": "JWT"}),
        &claims(),
    );
    assert_refused(&strict, &token, "strict, unknown kid").await;
    assert_eq!(server.hits(), hits, "refusals for type fetch nothing");
}
