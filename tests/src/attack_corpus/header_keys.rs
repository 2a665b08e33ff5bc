//! Key-choice attacks: TOK-05 keys supplied by the token header (`jwk`, `jku`, `x5u`,
//! `x5c`), TOK-06 hostile and wrong `kid` values, TOK-07 keys the issuer publishes that the
//! gateway must not use.

use serde_json::{Value, json};

use super::Case;
use super::forge::{Forge, Object, set};
use crate::jose;

pub(super) fn cases() -> Vec<Case> {
    let mut cases = header_supplied_keys();
    cases.extend(key_ids());
    cases.extend(untrustworthy_published_keys());
    cases
}

/// Which `kid` a forged header names.
#[derive(Clone, Copy, Debug)]
enum Kid {
    /// The issuer's ES256 key id: only the signature check can refuse.
    Issuers,
    /// The attacker's own key id, unknown to the JWKS.
    Attackers,
    /// No `kid` at all (the JWKS has several keys).
    Absent,
}

impl Kid {
    const ALL: [(&'static str, Self); 3] = [
        ("the_issuers_kid", Self::Issuers),
        ("the_attackers_kid", Self::Attackers),
        ("no_kid", Self::Absent),
    ];

    fn apply(self, forge: &Forge<'_>, header: &mut Object) {
        match self {
            Self::Issuers => set(header, "kid", json!(forge.es256().kid())),
            Self::Attackers => set(header, "kid", json!(forge.keys().attacker.kid())),
            Self::Absent => {
                header.remove("kid");
            }
        }
    }
}

/// A header member carrying a key or a key location.
#[derive(Clone, Copy, Debug)]
enum Supplied {
    /// The attacker's public JWK embedded as `jwk`.
    Jwk,
    /// The issuer's own public JWK embedded as `jwk` (the token is still the attacker's).
    IssuersJwk,
    /// `jku` at the canary, which serves the attacker's JWKS.
    Jku,
    /// `x5u` at the canary.
    X5u,
    /// A self-signed certificate of the attacker's key as `x5c`.
    X5c,
}

impl Supplied {
    const ALL: [(&'static str, Self); 5] = [
        ("embedded_jwk", Self::Jwk),
        ("embedded_issuer_jwk", Self::IssuersJwk),
        ("jku_at_the_canary", Self::Jku),
        ("x5u_at_the_canary", Self::X5u),
        ("self_signed_x5c", Self::X5c),
    ];

    fn apply(self, forge: &Forge<'_>, header: &mut Object) {
        let (member, value) = match self {
            Self::Jwk => ("jwk", forge.keys().attacker.jwk().clone()),
            Self::IssuersJwk => ("jwk", forge.es256().jwk().clone()),
            Self::Jku => ("jku", json!(forge.canary_url("jwks.json"))),
            Self::X5u => ("x5u", json!(forge.canary_url("cert.pem"))),
            Self::X5c => ("x5c", json!([forge.keys().attacker_x5c])),
        };
        set(header, member, value);
    }
}

/// TOK-05: the attacker signs; the header offers the key or where to fetch it.
fn header_supplied_keys() -> Vec<Case> {
    let mut cases = Vec::new();
    for (supplied_label, supplied) in Supplied::ALL {
        for (kid_label, kid) in Kid::ALL {
            let case = Case::refused(
                format!("tok_05_{supplied_label}_with_{kid_label}"),
                move |forge| {
                    attacker_signed(forge, |header| {
                        supplied.apply(forge, header);
                        kid.apply(forge, header);
                    })
                },
            );
            cases.push(match kid {
                Kid::Attackers => case.may_refetch(),
                Kid::Issuers | Kid::Absent => case,
            });
        }
    }
    cases.push(
        Case::refused("tok_05_every_key_member_at_once", |forge| {
            attacker_signed(forge, |header| {
                for (_, supplied) in Supplied::ALL {
                    supplied.apply(forge, header);
                }
                Kid::Attackers.apply(forge, header);
            })
        })
        .may_refetch(),
    );
    cases
}

/// A token with the valid claims, signed by the attacker's key.
fn attacker_signed(forge: &Forge<'_>, change: impl FnOnce(&mut Object)) -> anyhow::Result<String> {
    forge.header_changed_by(&forge.keys().attacker, change)
}

/// A `kid` value computed from the forge.
type KidOf = fn(&Forge<'_>) -> Value;

/// TOK-06: the issuer's real ES256 signature under other key ids.
fn key_ids() -> Vec<Case> {
    // Key ids the gateway has never seen: it may refresh its JWKS once, then refuses.
    let unknown: [(&str, KidOf); 8] = [
        ("unknown", |_| json!("no-such-key")),
        ("path_traversal", |_| json!("../../x")),
        ("sql_injection", |_| json!("' OR 1=1 --")),
        ("upper_cased", |forge| {
            json!(forge.es256().kid().to_uppercase())
        }),
        ("with_a_trailing_space", |forge| {
            json!(format!("{} ", forge.es256().kid()))
        }),
        ("with_a_cyrillic_homoglyph", |forge| {
            json!(forge.es256().kid().replacen('e', "\u{435}", 1))
        }),
        ("a_url_at_the_canary", |forge| {
            json!(forge.canary_url("key"))
        }),
        ("of_the_encryption_key", |forge| {
            json!(forge.keys().encryption.kid())
        }),
    ];
    // Key ids refused on sight, or naming a key that cannot verify ES256: no fetch.
    let refused_on_sight: [(&str, KidOf); 10] = [
        ("10_kib_long", |_| json!("k".repeat(10 * 1024))),
        ("257_characters_long", |_| json!("k".repeat(257))),
        ("with_a_nul", |forge| {
            json!(format!("{}\u{0}", forge.es256().kid()))
        }),
        ("with_a_crlf", |forge| {
            json!(format!("{}\r\n", forge.es256().kid()))
        }),
        ("empty", |_| json!("")),
        ("a_number", |_| json!(1)),
        ("null", |_| Value::Null),
        ("an_array", |forge| json!([forge.es256().kid()])),
        ("an_object", |forge| json!({"kid": forge.es256().kid()})),
        ("of_the_rsa_key", |forge| json!(forge.keys().rsa.kid())),
    ];
    let mut cases = Vec::new();
    for (label, kid) in unknown {
        cases.push(
            Case::refused(format!("tok_06_kid_{label}"), move |forge| {
                forge.header_changed(|header| set(header, "kid", kid(forge)))
            })
            .may_refetch(),
        );
    }
    for (label, kid) in refused_on_sight {
        cases.push(Case::refused(format!("tok_06_kid_{label}"), move |forge| {
            forge.header_changed(|header| set(header, "kid", kid(forge)))
        }));
    }
    cases.extend([
        Case::refused("tok_06_kid_not_utf8", |forge| {
            // `"kid":"<kid>\xff\xfe"`: the JSON text itself is not UTF-8.
            let header = format!(
                r#"{{"alg":"ES256","typ":"JWT","kid":"{}"#,
                forge.es256().kid()
            );
            let mut bytes = header.into_bytes();
            bytes.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
            forge.raw_header(&bytes)
        }),
        Case::refused("tok_06_kid_missing_with_several_keys_published", |forge| {
            forge.header_changed(|header| {
                header.remove("kid");
            })
        }),
    ]);
    cases
}

/// TOK-07: tokens signed with keys the JWKS holds but the gateway must drop.
fn untrustworthy_published_keys() -> Vec<Case> {
    let mut cases = Vec::new();
    for alg in ["HS256", "HS384", "HS512"] {
        cases.push(Case::refused(
            format!(
                "tok_07_{}_forged_with_the_published_oct_secret",
                alg.to_lowercase()
            ),
            move |forge| {
                let oct = &forge.keys().oct;
                forge.header_changed_by(oct, |header| set(header, "alg", json!(alg)))
            },
        ));
    }
    cases.extend([
        Case::refused("tok_07_es256_signed_by_the_use_enc_key", |forge| {
            forge.valid_from(&forge.keys().encryption)
        })
        .may_refetch(),
        Case::refused("tok_07_es256_signed_by_the_wrap_key_ops_key", |forge| {
            forge.valid_from(&forge.keys().wrap_only)
        })
        .may_refetch(),
        Case::refused("tok_07_rs256_signed_by_the_1024_bit_rsa_key", |forge| {
            forge.valid_from(&forge.keys().rsa1024)
        })
        .may_refetch(),
        Case::refused("tok_07_es256k_signed_by_the_secp256k1_key", |forge| {
            forge.valid_from(&forge.keys().secp256k1)
        }),
        // The curve the header's algorithm implies is not the key's.
        Case::refused("tok_07_es256_header_signed_by_the_secp256k1_key", |forge| {
            let key = &forge.keys().secp256k1;
            forge.header_changed_by(key, |header| set(header, "alg", json!("ES256")))
        })
        .may_refetch(),
        Case::refused("tok_07_es256_header_signed_by_the_p521_key", |forge| {
            let key = &forge.keys().p521;
            forge.header_changed_by(key, |header| set(header, "alg", json!("ES256")))
        })
        .may_refetch(),
        Case::refused("tok_07_rs256_1024_bit_key_under_the_rsa_kid", |forge| {
            // The weak key's signature presented under the trusted RSA key's id.
            let header = forge.header(&forge.keys().rsa);
            jose::sign_compact(
                &forge.keys().rsa1024,
                "RS256",
                &serde_json::to_vec(&header)?,
                &forge.payload()?,
            )
        }),
    ]);
    cases
}
