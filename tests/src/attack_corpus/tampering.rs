//! TOK-14 tampering: the valid token's bytes changed after signing (bit flips in each
//! segment at several positions, truncation, wrong segment counts, characters outside
//! unpadded base64url, segments spliced from another token, other signature encodings), and
//! structurally odd tokens the issuer's real key signed (claims that are not an object,
//! duplicate members, `crit`, `b64: false`, an oversized token).

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use super::Case;
use super::forge::{Forge, segments, set};
use crate::jose::b64;
use crate::payloads::random_topic;

pub(super) fn cases() -> Vec<Case> {
    let mut cases = bit_flips();
    cases.extend(after_signing());
    cases.extend(signed_oddities());
    cases
}

/// Where in a decoded segment a bit is flipped.
#[derive(Clone, Copy, Debug)]
enum Position {
    First,
    Quarter,
    Middle,
    ThreeQuarters,
    Last,
}

impl Position {
    const ALL: [(&'static str, Self); 5] = [
        ("first", Self::First),
        ("quarter", Self::Quarter),
        ("middle", Self::Middle),
        ("three_quarter", Self::ThreeQuarters),
        ("last", Self::Last),
    ];

    fn index(self, len: usize) -> usize {
        match self {
            Self::First => 0,
            Self::Quarter => len / 4,
            Self::Middle => len / 2,
            Self::ThreeQuarters => len * 3 / 4,
            Self::Last => len.saturating_sub(1),
        }
    }
}

/// Bit flips in the decoded bytes of each segment, so every mutant really differs.
fn bit_flips() -> Vec<Case> {
    let mut cases = Vec::new();
    for (segment_label, segment) in [("header", 0_usize), ("payload", 1), ("signature", 2)] {
        for (position_label, position) in Position::ALL {
            for bit in [0_u8, 6] {
                let case = Case::refused(
                    format!(
                        "tok_14_bit_{bit}_flipped_in_the_{position_label}_{segment_label}_byte"
                    ),
                    move |forge| {
                        let mut parts = segments(&forge.valid()?)?;
                        let mut bytes = URL_SAFE_NO_PAD.decode(&parts[segment])?;
                        let index = position.index(bytes.len());
                        let byte = bytes.get_mut(index).context("an empty segment")?;
                        *byte ^= 1 << bit;
                        parts[segment] = b64(bytes);
                        Ok(parts.join("."))
                    },
                );
                // A flip in the header may turn the key id into one the gateway lacks.
                cases.push(if segment == 0 {
                    case.may_refetch()
                } else {
                    case
                });
            }
        }
    }
    cases
}

/// Changes to the valid token's text after signing.
fn after_signing() -> Vec<Case> {
    type Mutation = fn(&[String; 3], &Forge<'_>) -> Result<String>;
    let mutations: [(&str, Mutation); 30] = [
        ("truncated_by_one_character", |[h, p, s], _| {
            Ok(format!("{h}.{p}.{}", &s[..s.len() - 1]))
        }),
        ("signature_cut_in_half", |[h, p, s], _| {
            Ok(format!("{h}.{p}.{}", &s[..s.len() / 2]))
        }),
        ("signature_removed", |[h, p, _], _| Ok(format!("{h}.{p}."))),
        ("payload_cut_in_half", |[h, p, s], _| {
            Ok(format!("{h}.{}.{s}", &p[..p.len() / 2]))
        }),
        ("header_only", |[h, _, _], _| Ok(h.clone())),
        ("header_and_a_dot", |[h, _, _], _| Ok(format!("{h}."))),
        ("two_segments", |[h, p, _], _| Ok(format!("{h}.{p}"))),
        ("four_segments", |[h, p, s], _| {
            Ok(format!("{h}.{p}.{s}.{s}"))
        }),
        ("five_segments", |[h, p, s], _| {
            Ok(format!("{h}.{p}.{s}.AAAA.AAAA"))
        }),
        ("five_segments_with_a_jwe_header", |[_, p, s], forge| {
            let jwe = json!({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": forge.keys().rsa.kid()});
            Ok(format!(
                "{}.{p}.AAAA.{s}.AAAA",
                b64(serde_json::to_vec(&jwe)?)
            ))
        }),
        ("leading_dot", |[h, p, s], _| Ok(format!(".{h}.{p}.{s}"))),
        ("trailing_dot", |[h, p, s], _| Ok(format!("{h}.{p}.{s}."))),
        ("empty_payload", |[h, _, s], _| Ok(format!("{h}..{s}"))),
        ("padding_on_the_header", |[h, p, s], _| {
            Ok(format!("{h}=.{p}.{s}"))
        }),
        ("padding_on_the_payload", |[h, p, s], _| {
            Ok(format!("{h}.{p}=.{s}"))
        }),
        ("padding_on_the_signature", |[h, p, s], _| {
            Ok(format!("{h}.{p}.{s}=="))
        }),
        ("standard_base64_with_padding", |parts, _| {
            let standard: Result<Vec<String>> = parts
                .iter()
                .map(|part| Ok(STANDARD.encode(URL_SAFE_NO_PAD.decode(part)?)))
                .collect();
            Ok(standard?.join("."))
        }),
        ("plus_in_the_payload", |[h, p, s], _| {
            Ok(format!("{h}.{}.{s}", replace_middle(p, '+')))
        }),
        ("slash_in_the_signature", |[h, p, s], _| {
            Ok(format!("{h}.{p}.{}", replace_middle(s, '/')))
        }),
        ("tilde_in_the_header", |[h, p, s], _| {
            Ok(format!("{}.{p}.{s}", replace_middle(h, '~')))
        }),
        ("asterisk_in_the_signature", |[h, p, s], _| {
            Ok(format!("{h}.{p}.{}", replace_middle(s, '*')))
        }),
        ("percent_encoded_dots", |[h, p, s], _| {
            Ok(format!("{h}%2E{p}%2E{s}"))
        }),
        ("space_inside_the_payload", |[h, p, s], _| {
            Ok(format!("{h}.{}.{s}", replace_middle(p, ' ')))
        }),
        ("segments_swapped", |[h, p, s], _| {
            Ok(format!("{p}.{h}.{s}"))
        }),
        ("header_repeated_as_the_payload", |[h, _, s], _| {
            Ok(format!("{h}.{h}.{s}"))
        }),
        ("signature_of_another_topics_token", |[h, p, _], forge| {
            let [_, _, other] = segments(&other_topics_token(forge)?)?;
            Ok(format!("{h}.{p}.{other}"))
        }),
        ("payload_of_another_topics_token", |[h, _, s], forge| {
            let [_, other, _] = segments(&other_topics_token(forge)?)?;
            Ok(format!("{h}.{other}.{s}"))
        }),
        ("signature_der_encoded", |[h, p, s], _| {
            Ok(format!(
                "{h}.{p}.{}",
                b64(der_signature(&URL_SAFE_NO_PAD.decode(s)?)?)
            ))
        }),
        ("signature_r_and_s_swapped", |[h, p, s], _| {
            let raw = URL_SAFE_NO_PAD.decode(s)?;
            let (r, s) = raw.split_at(raw.len() / 2);
            Ok(format!("{h}.{p}.{}", b64([s, r].concat())))
        }),
        ("payload_reserialised_with_spaces", |[h, p, s], _| {
            let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p)?)?;
            Ok(format!(
                "{h}.{}.{s}",
                b64(serde_json::to_vec_pretty(&claims)?)
            ))
        }),
    ];
    let mut cases: Vec<Case> = mutations
        .into_iter()
        .map(|(label, mutation)| {
            Case::refused(format!("tok_14_{label}"), move |forge| {
                mutation(&segments(&forge.valid()?)?, forge)
            })
        })
        .collect();
    for (label, signature) in [
        ("signature_all_zero", vec![0_u8; 64]),
        ("signature_all_ones", vec![0xff_u8; 64]),
    ] {
        cases.push(Case::refused(format!("tok_14_{label}"), move |forge| {
            let [h, p, _] = segments(&forge.valid()?)?;
            Ok(format!("{h}.{p}.{}", b64(&signature)))
        }));
    }
    cases.extend([
        Case::refused("tok_14_signature_doubled", |forge| {
            let [h, p, s] = segments(&forge.valid()?)?;
            let raw = URL_SAFE_NO_PAD.decode(&s)?;
            Ok(format!("{h}.{p}.{}", b64([raw.clone(), raw].concat())))
        }),
        Case::refused("tok_14_payload_with_a_byte_order_mark", |forge| {
            let [h, p, s] = segments(&forge.valid()?)?;
            let with_bom = [b"\xef\xbb\xbf".to_vec(), URL_SAFE_NO_PAD.decode(&p)?].concat();
            Ok(format!("{h}.{}.{s}", b64(with_bom)))
        }),
        Case::refused("tok_14_empty", |_| Ok(String::new())),
    ]);
    cases
}

/// Tokens the issuer's real key signed whose structure is wrong.
fn signed_oddities() -> Vec<Case> {
    vec![
        Case::refused("tok_14_signed_claims_are_an_array", |forge| {
            forge.raw_payload(&serde_json::to_vec(&json!([forge.claims()?]))?)
        }),
        Case::refused("tok_14_signed_claims_are_a_string", |forge| {
            forge.raw_payload(br#""claims""#)
        }),
        Case::refused("tok_14_signed_claims_are_not_json", |forge| {
            forge.raw_payload(b"iss=issuer&aud=hub")
        }),
        Case::refused("tok_14_signed_claims_are_a_nested_jwt", |forge| {
            // `cty: JWT` with another valid token as the payload (RFC 7519 §5.2).
            let inner = forge.valid()?;
            forge
                .raw_header_and_payload(|header| set(header, "cty", json!("JWT")), inner.as_bytes())
        }),
        Case::refused("tok_14_signed_claims_repeat_the_topic_member", |forge| {
            let json = String::from_utf8(forge.payload()?)?;
            let body = json.strip_suffix('}').unwrap_or(&json);
            let smuggled = format!(r#"{body},"hub.topic":"{}"}}"#, random_topic());
            forge.raw_payload(smuggled.as_bytes())
        }),
        Case::refused("tok_14_signed_header_repeats_the_alg_member", |forge| {
            let header = serde_json::to_string(&forge.header(forge.es256()))?;
            let body = header.strip_suffix('}').unwrap_or(&header);
            forge.raw_header(format!(r#"{body},"alg":"none"}}"#).as_bytes())
        }),
        Case::refused("tok_14_signed_header_with_crit", |forge| {
            forge.header_changed(|header| {
                set(header, "crit", json!(["exp"]));
                set(header, "exp", json!(1));
            })
        }),
        Case::refused("tok_14_signed_header_with_b64_false", |forge| {
            forge.header_changed(|header| set(header, "b64", json!(false)))
        }),
        Case::refused("tok_14_signed_header_is_an_array", |forge| {
            forge.raw_header(&serde_json::to_vec(&json!([forge.header(forge.es256())]))?)
        }),
        Case::refused("tok_14_signed_and_longer_than_16_kib", |forge| {
            forge.claims_changed(|claims| set(claims, "padding", json!("p".repeat(17 * 1024))))
        }),
    ]
}

/// A valid token for another topic (same issuer, same key).
fn other_topics_token(forge: &Forge<'_>) -> Result<String> {
    forge.claims_changed(|claims| set(claims, "hub.topic", json!(random_topic())))
}

/// `text` with its middle character replaced by `with`.
fn replace_middle(text: &str, with: char) -> String {
    let middle = text.len() / 2;
    let mut changed = text.to_owned();
    changed.replace_range(middle..=middle, &with.to_string());
    changed
}

/// A fixed-size ECDSA signature (`r || s`) as the ASN.1 DER `SEQUENCE { r, s }` that JWS
/// forbids (RFC 7518 §3.4).
fn der_signature(fixed: &[u8]) -> Result<Vec<u8>> {
    anyhow::ensure!(fixed.len().is_multiple_of(2), "odd signature length");
    let (r, s) = fixed.split_at(fixed.len() / 2);
    let integer = |value: &[u8]| -> Vec<u8> {
        let trimmed: Vec<u8> = value.iter().copied().skip_while(|b| *b == 0).collect();
        let mut body = if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
            vec![0]
        } else {
            Vec::new()
        };
        body.extend(trimmed);
        let mut encoded = vec![0x02, u8::try_from(body.len()).unwrap_or(u8::MAX)];
        encoded.extend(body);
        encoded
    };
    let body = [integer(r), integer(s)].concat();
    let mut sequence = vec![0x30, u8::try_from(body.len()).context("a short signature")?];
    sequence.extend(body);
    Ok(sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_signatures_are_two_integers_in_a_sequence() {
        let fixed = [[0x80_u8; 32], [0x01_u8; 32]].concat();
        let der = der_signature(&fixed).expect("der");
        assert_eq!(&der[..4], &[0x30, 2 + 33 + 2 + 32, 0x02, 33]);
        assert_eq!(der[4], 0x00, "a high bit gets a leading zero");
        assert_eq!(der.len(), 2 + 2 + 33 + 2 + 32);
    }
}
