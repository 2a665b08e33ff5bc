//! TOK-13 typing: the JOSE `typ` of a token and the id_token shape, judged by the issuer's
//! token type policy. Every case is the issuer's real ES256 signature over the valid
//! claims, so a refusal can only come from the type.
//!
//! The rig's main gateway trusts the issuer with the default `lenient` policy (`typ` absent,
//! `JWT`, `JOSE` or `at+jwt`, any case, `application/` optional); a second gateway
//! trusts the same issuer with `--token-type-policy strict` (`at+jwt` only, no `nonce`).
//! Controls under both keep a policy that refuses everything from passing.

use serde_json::{Value, json};

use super::Case;
use super::forge::{Forge, set};

pub(super) fn cases() -> Vec<Case> {
    let mut cases = controls();
    cases.extend(lenient_refusals());
    cases.extend(strict_refusals());
    cases
}

/// The valid token with `typ` set to `typ` (`None`: no `typ` member).
fn typed(forge: &Forge<'_>, typ: Option<Value>) -> anyhow::Result<String> {
    forge.header_changed(|header| match typ {
        Some(typ) => set(header, "typ", typ),
        None => {
            header.remove("typ");
        }
    })
}

/// The id_token shape: `typ` as given, and `nonce` (with `at_hash` and `azp`) in claims
/// whose `aud` still includes the hub, so only the shape can refuse it.
fn id_token_shaped(forge: &Forge<'_>, typ: &str) -> anyhow::Result<String> {
    let mut claims = forge.claims()?;
    set(&mut claims, "nonce", json!("n-0S6_WzA2Mj"));
    set(&mut claims, "at_hash", json!("77QmUPtjPfzWtF2AnpK9RQ"));
    set(&mut claims, "azp", json!("hub-tests"));
    let audience = claims.get("aud").cloned().unwrap_or(Value::Null);
    set(&mut claims, "aud", json!(["hub-tests", audience]));
    let mut header = forge.header(forge.es256());
    set(&mut header, "typ", json!(typ));
    forge.sign(forge.es256(), &header, &claims)
}

/// Types both policies, or the lenient one, accept.
fn controls() -> Vec<Case> {
    let mut cases = Vec::new();
    let lenient: [(&str, Option<&str>); 7] = [
        ("absent", None),
        ("jwt", Some("JWT")),
        ("lower_case_jwt", Some("jwt")),
        ("application_jwt", Some("application/jwt")),
        ("jose", Some("JOSE")),
        ("at_jwt", Some("at+jwt")),
        ("application_at_jwt", Some("application/at+jwt")),
    ];
    for (label, typ) in lenient {
        cases.push(Case::accepted(
            format!("tok_13_lenient_accepts_typ_{label}"),
            move |forge| typed(forge, typ.map(|typ| json!(typ))),
        ));
    }
    let strict: [(&str, &str); 3] = [
        ("at_jwt", "at+jwt"),
        ("upper_case_at_jwt", "AT+JWT"),
        ("application_at_jwt", "application/at+jwt"),
    ];
    for (label, typ) in strict {
        cases.push(
            Case::accepted(format!("tok_13_strict_accepts_typ_{label}"), move |forge| {
                typed(forge, Some(json!(typ)))
            })
            .strict(),
        );
    }
    cases
}

/// Types no issuer's access token has: other JWT kinds the same keys sign, JWE content
/// types, near misses and values that are not strings.
fn wrong_types() -> Vec<(&'static str, Value)> {
    vec![
        ("logout_jwt", json!("logout+jwt")),
        ("secevent_jwt", json!("secevent+jwt")),
        ("token_introspection_jwt", json!("token-introspection+jwt")),
        ("dpop_jwt", json!("dpop+jwt")),
        ("oauth_authz_req_jwt", json!("oauth-authz-req+jwt")),
        ("id_token_jwt", json!("id_token+jwt")),
        ("jwe", json!("JWE")),
        ("jwt_with_a_trailing_space", json!("JWT ")),
        (
            "at_jwt_with_a_charset_parameter",
            json!("at+jwt; charset=utf-8"),
        ),
        ("text_at_jwt", json!("text/at+jwt")),
        ("empty", json!("")),
        ("null", Value::Null),
        ("a_number", json!(7)),
        ("an_array", json!(["at+jwt"])),
    ]
}

/// Under the lenient policy: anything but absent, `JWT`, `JOSE` and `at+jwt`.
fn lenient_refusals() -> Vec<Case> {
    wrong_types()
        .into_iter()
        .map(|(label, typ)| {
            Case::refused(
                format!("tok_13_lenient_refuses_typ_{label}"),
                move |forge| typed(forge, Some(typ.clone())),
            )
        })
        .collect()
}

/// Under the strict policy: every type but `at+jwt`, and the id_token shape.
fn strict_refusals() -> Vec<Case> {
    let mut types: Vec<(&str, Option<Value>)> = vec![
        ("absent", None),
        ("jwt", Some(json!("JWT"))),
        ("application_jwt", Some(json!("application/jwt"))),
        ("jose", Some(json!("JOSE"))),
        (
            "at_jwt_misspelt_as_at_jwt_with_a_dash",
            Some(json!("at-jwt")),
        ),
    ];
    types.extend(
        wrong_types()
            .into_iter()
            .map(|(label, typ)| (label, Some(typ))),
    );
    let mut cases: Vec<Case> = types
        .into_iter()
        .map(|(label, typ)| {
            Case::refused(format!("tok_13_strict_refuses_typ_{label}"), move |forge| {
                typed(forge, typ.clone())
            })
            .strict()
        })
        .collect();
    cases.push(
        Case::refused(
            "tok_13_strict_refuses_an_id_token_shape_typed_jwt",
            |forge| id_token_shaped(forge, "JWT"),
        )
        .strict(),
    );
    cases.push(
        Case::refused(
            "tok_13_strict_refuses_an_id_token_shape_typed_at_jwt",
            |forge| id_token_shaped(forge, "at+jwt"),
        )
        .strict(),
    );
    cases
}
