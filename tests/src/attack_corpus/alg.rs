//! Algorithm attacks: TOK-02 `alg: none` in its spellings, TOK-03 HMAC tokens keyed with
//! the issuer's public key (algorithm confusion), TOK-04 algorithms outside the allowlist
//! signed with the issuer's real keys.

use serde_json::{Value, json};

use super::Case;
use super::forge::{Forge, Object, segments, set};
use crate::jose::{self, TestKey};

pub(super) fn cases() -> Vec<Case> {
    let mut cases = alg_none();
    cases.extend(hmac_with_public_key());
    cases.extend(not_allowlisted());
    cases
}

/// TOK-02: `alg: none` spellings × signature (none, the valid token's, garbage).
fn alg_none() -> Vec<Case> {
    let spellings = [
        ("none", json!("none")),
        ("none_capitalised", json!("None")),
        ("none_upper", json!("NONE")),
        ("none_mixed_case", json!("nOnE")),
        ("empty", json!("")),
        ("null", Value::Null),
    ];
    let signatures = [
        ("without_signature", Signature::Empty),
        ("with_real_signature", Signature::Real),
        ("with_garbage_signature", Signature::Garbage),
    ];
    let mut cases = Vec::new();
    for (spelling, alg) in spellings {
        for (label, signature) in signatures {
            let alg = alg.clone();
            cases.push(Case::refused(
                format!("tok_02_alg_{spelling}_{label}"),
                move |forge| unsigned(forge, |header| set(header, "alg", alg.clone()), signature),
            ));
        }
    }
    for (label, signature) in [
        ("without_signature", Signature::Empty),
        ("with_real_signature", Signature::Real),
    ] {
        cases.push(Case::refused(
            format!("tok_02_alg_missing_{label}"),
            move |forge| {
                unsigned(
                    forge,
                    |header| {
                        header.remove("alg");
                    },
                    signature,
                )
            },
        ));
    }
    cases.push(Case::refused(
        "tok_02_alg_none_without_kid_or_signature",
        |forge| {
            unsigned(
                forge,
                |header| {
                    set(header, "alg", json!("none"));
                    header.remove("kid");
                },
                Signature::Empty,
            )
        },
    ));
    cases
}

/// The signature segment an unsigned token carries.
#[derive(Clone, Copy, Debug)]
enum Signature {
    Empty,
    /// The signature of the valid token (over the original header).
    Real,
    Garbage,
}

fn unsigned(
    forge: &Forge<'_>,
    change: impl FnOnce(&mut Object),
    signature: Signature,
) -> anyhow::Result<String> {
    let mut header = forge.header(forge.es256());
    change(&mut header);
    let signature = match signature {
        Signature::Empty => String::new(),
        Signature::Real => segments(&forge.valid()?)?[2].clone(),
        Signature::Garbage => "AAAA".to_owned(),
    };
    Ok(jose::unsigned(
        &serde_json::to_vec(&header)?,
        &forge.payload()?,
        &signature,
    ))
}

/// A secret derived from a public key, as an attacker would try it.
#[derive(Clone, Copy, Debug)]
enum PublicSecret {
    Pem,
    PemWithoutNewline,
    Der,
    /// The JWK's `n` (RSA) or `x` (EC) member, as text.
    JwkMember,
    /// The JWK's `n` or `x` member, base64url-decoded.
    JwkMemberBytes,
    /// The whole public JWK as JSON text.
    JwkJson,
}

impl PublicSecret {
    const ALL: [(&'static str, Self); 6] = [
        ("public_pem", Self::Pem),
        ("public_pem_without_newline", Self::PemWithoutNewline),
        ("public_der", Self::Der),
        ("jwk_member_text", Self::JwkMember),
        ("jwk_member_bytes", Self::JwkMemberBytes),
        ("jwk_json", Self::JwkJson),
    ];

    fn of(self, key: &TestKey) -> anyhow::Result<Vec<u8>> {
        let member = key.jwk()["n"]
            .as_str()
            .or(key.jwk()["x"].as_str())
            .unwrap_or_default();
        Ok(match self {
            Self::Pem => key.public_pem().into_bytes(),
            Self::PemWithoutNewline => key.public_pem().trim_end().as_bytes().to_vec(),
            Self::Der => key.public_der().to_vec(),
            Self::JwkMember => member.as_bytes().to_vec(),
            Self::JwkMemberBytes => {
                use base64::Engine as _;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(member)?
            }
            Self::JwkJson => serde_json::to_vec(key.jwk())?,
        })
    }
}

/// TOK-03: HS256/384/512 MAC'ed with the issuer's EC and RSA public keys.
fn hmac_with_public_key() -> Vec<Case> {
    let mut cases = Vec::new();
    for (key_label, rsa) in [("es256", false), ("rsa", true)] {
        for (secret_label, secret) in PublicSecret::ALL {
            for alg in ["HS256", "HS384", "HS512"] {
                let name = format!(
                    "tok_03_{}_keyed_with_the_{key_label}_{secret_label}",
                    alg.to_lowercase()
                );
                cases.push(Case::refused(name, move |forge| {
                    let key = if rsa {
                        &forge.keys().rsa
                    } else {
                        forge.es256()
                    };
                    let mut header = forge.header(key);
                    set(&mut header, "alg", json!(alg));
                    let header = serde_json::to_vec(&header)?;
                    let payload = forge.payload()?;
                    let input = jose::signing_input(&header, &payload);
                    let mac = jose::hmac(alg, &secret.of(key)?, input.as_bytes())?;
                    Ok(format!("{input}.{}", jose::b64(mac)))
                }));
            }
        }
    }
    cases
}

/// TOK-04: real signatures under algorithms the gateway does not allow, and headers that
/// name an algorithm other than the key's.
fn not_allowlisted() -> Vec<Case> {
    let mut cases = Vec::new();
    for alg in ["RS384", "RS512", "PS256", "PS384", "PS512"] {
        cases.push(Case::refused(
            format!(
                "tok_04_{}_signed_by_the_issuers_rsa_key",
                alg.to_lowercase()
            ),
            move |forge| {
                let rsa = &forge.keys().rsa;
                forge.header_changed_by(rsa, |header| set(header, "alg", json!(alg)))
            },
        ));
    }
    cases.extend([
        Case::refused("tok_04_es384_signed_by_the_issuers_p384_key", |forge| {
            forge.valid_from(&forge.keys().p384)
        }),
        Case::refused("tok_04_eddsa_signed_by_the_issuers_ed25519_key", |forge| {
            forge.valid_from(&forge.keys().ed25519)
        }),
        Case::refused("tok_04_es512_signed_by_the_issuers_p521_key", |forge| {
            forge.valid_from(&forge.keys().p521)
        }),
        Case::refused("tok_04_hs256_with_an_unpublished_secret", |forge| {
            let mut header = forge.header(forge.es256());
            set(&mut header, "alg", json!("HS256"));
            let header = serde_json::to_vec(&header)?;
            let payload = forge.payload()?;
            let input = jose::signing_input(&header, &payload);
            let mac = jose::hmac(
                "HS256",
                b"a secret only the attacker knows",
                input.as_bytes(),
            )?;
            Ok(format!("{input}.{}", jose::b64(mac)))
        }),
        // The header claims the other allowlisted algorithm than the key's.
        Case::refused("tok_04_es256_header_over_an_rs256_signature", |forge| {
            let rsa = &forge.keys().rsa;
            let mut header = forge.header(rsa);
            set(&mut header, "alg", json!("ES256"));
            let header = serde_json::to_vec(&header)?;
            jose::sign_compact(rsa, "RS256", &header, &forge.payload()?)
        }),
        Case::refused("tok_04_rs256_header_over_an_es256_signature", |forge| {
            forge.header_changed(|header| set(header, "alg", json!("RS256")))
        }),
    ]);
    let spellings = [
        ("lower_case", json!("es256")),
        ("title_case", json!("Es256")),
        ("trailing_space", json!("ES256 ")),
        ("a_number", json!(256)),
        ("an_array", json!(["ES256"])),
        ("an_object", json!({"name": "ES256"})),
    ];
    for (label, alg) in spellings {
        cases.push(Case::refused(
            format!("tok_04_alg_spelled_as_{label}"),
            move |forge| forge.header_changed(|header| set(header, "alg", alg.clone())),
        ));
    }
    cases
}
