//! Claim attacks, each the valid claims with one claim changed and signed by the issuer's
//! real key: TOK-08 `iss` exactness, TOK-09 audience, TOK-10 `exp`, TOK-11 `nbf`, TOK-12
//! `iat`. The gateway's clock leeway is 60 s; "beyond the leeway" below means 120 s or
//! more.

use serde_json::{Value, json};

use super::Case;
use super::forge::{Forge, set};
use crate::gateway::TEST_AUDIENCE;
use crate::issuer::unix_now;

pub(super) fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (id, claim, variants) in [
        ("08", "iss", issuer_variants()),
        ("09", "aud", audience_variants()),
        ("10", "exp", expiry_variants()),
        ("11", "nbf", not_before_variants()),
        ("12", "iat", issued_at_variants()),
    ] {
        for (label, variant) in variants {
            cases.push(Case::refused(
                format!("tok_{id}_{claim}_{label}"),
                move |forge| variant.forge(forge, claim),
            ));
        }
    }
    cases
}

/// How one claim is changed.
#[derive(Clone, Copy)]
enum Variant {
    /// The claim removed.
    Missing,
    /// The claim set to a value computed from the forge (the issuer's URL, the clock).
    Value(fn(&Forge<'_>) -> Value),
    /// The payload written by hand: the valid claims' JSON without the claim, and
    /// `,"<claim>":<text>` added before the closing brace, for numbers serde_json would not
    /// write.
    Raw(fn(&Forge<'_>) -> String),
    /// Like `Raw`, keeping the valid claim: the member appears twice.
    Duplicate(fn(&Forge<'_>) -> String),
    /// Other claims added beside the changed one (the id_token shape).
    With(
        fn(&Forge<'_>) -> Value,
        &'static [(&'static str, &'static str)],
    ),
}

impl Variant {
    fn forge(self, forge: &Forge<'_>, claim: &str) -> anyhow::Result<String> {
        match self {
            Self::Missing => forge.claims_changed(|claims| {
                claims.remove(claim);
            }),
            Self::Value(value) => forge.claims_changed(|claims| set(claims, claim, value(forge))),
            Self::With(value, others) => forge.claims_changed(|claims| {
                set(claims, claim, value(forge));
                for (name, other) in others {
                    set(claims, name, json!(other));
                }
            }),
            Self::Raw(text) | Self::Duplicate(text) => {
                let mut claims = forge.claims()?;
                if let Self::Raw(_) = self {
                    claims.remove(claim);
                }
                let json = serde_json::to_string(&claims)?;
                let body = json.strip_suffix('}').unwrap_or(&json);
                forge.raw_payload(format!(r#"{body},"{claim}":{}}}"#, text(forge)).as_bytes())
            }
        }
    }
}

type Variants = Vec<(&'static str, Variant)>;

/// TOK-08: `iss` must equal the issuer byte for byte.
fn issuer_variants() -> Variants {
    use Variant::{Duplicate, Missing, Value as V};
    vec![
        (
            "with_a_trailing_slash",
            V(|f| json!(format!("{}/", f.issuer()))),
        ),
        (
            "with_https_scheme",
            V(|f| json!(f.issuer().replacen("http://", "https://", 1))),
        ),
        (
            "with_upper_case_scheme",
            V(|f| json!(f.issuer().replacen("http://", "HTTP://", 1))),
        ),
        (
            "with_localhost_for_the_address",
            V(|f| json!(f.issuer().replacen("127.0.0.1", "localhost", 1))),
        ),
        (
            "of_another_tenant",
            V(|f| json!(format!("{}/tenant-b", f.issuer()))),
        ),
        ("on_another_port", V(|f| json!(format!("{}0", f.issuer())))),
        (
            "with_a_query",
            V(|f| json!(format!("{}?tenant=a", f.issuer()))),
        ),
        ("with_a_fragment", V(|f| json!(format!("{}#", f.issuer())))),
        (
            "with_trailing_whitespace",
            V(|f| json!(format!("{} ", f.issuer()))),
        ),
        ("empty", V(|_| json!(""))),
        ("null", V(|_| Value::Null)),
        ("a_number", V(|_| json!(1))),
        ("an_array_holding_the_issuer", V(|f| json!([f.issuer()]))),
        ("missing", Missing),
        // A second `iss` after the valid one: a last-member-wins reader would see it.
        (
            "duplicated_with_another_tenant",
            Duplicate(|f| format!(r#""{}/tenant-b""#, f.issuer())),
        ),
    ]
}

/// TOK-09: `aud` must hold the hub's audience.
fn audience_variants() -> Variants {
    use Variant::{Duplicate, Missing, Value as V, With};
    vec![
        ("missing", Missing),
        ("wrong", V(|_| json!("some-other-service"))),
        (
            "an_array_without_the_hub",
            V(|_| json!(["some-other-service", "another-one"])),
        ),
        ("an_empty_array", V(|_| json!([]))),
        ("the_client_id", V(|_| json!("hub-tests"))),
        (
            "is_the_client_id_id_token_shape",
            With(
                |_| json!("hub-tests"),
                &[
                    ("nonce", "n-0S6_WzA2Mj"),
                    ("at_hash", "77QmUPtjPfzWtF2AnpK9RQ"),
                ],
            ),
        ),
        ("a_fhir_server", V(|_| json!("https://fhir.example.org/r4"))),
        ("upper_cased", V(|_| json!(TEST_AUDIENCE.to_uppercase()))),
        (
            "with_a_trailing_slash",
            V(|_| json!(format!("{TEST_AUDIENCE}/"))),
        ),
        (
            "a_prefix_of_the_hub",
            V(|_| json!(&TEST_AUDIENCE[..TEST_AUDIENCE.len() - 1])),
        ),
        (
            "the_hub_with_a_suffix",
            V(|_| json!(format!("{TEST_AUDIENCE}-evil"))),
        ),
        ("a_nested_array", V(|_| json!([[TEST_AUDIENCE]]))),
        ("an_object", V(|_| json!({"aud": TEST_AUDIENCE}))),
        ("null", V(|_| Value::Null)),
        ("empty", V(|_| json!(""))),
        (
            "duplicated_with_a_wrong_audience",
            Duplicate(|_| r#""some-other-service""#.to_owned()),
        ),
    ]
}

/// TOK-10: `exp` is required, an integer, and not past (CVE-2026-25537: a string `exp`
/// must not be skipped).
fn expiry_variants() -> Variants {
    use Variant::{Duplicate, Missing, Raw, Value as V};
    vec![
        ("missing", Missing),
        ("past_beyond_the_leeway", V(|_| json!(unix_now() - 120))),
        ("an_hour_ago", V(|_| json!(unix_now() - 3600))),
        ("zero", V(|_| json!(0))),
        ("negative", V(|_| json!(-1))),
        ("a_far_future_string", V(|_| json!("9999999999"))),
        ("a_float", V(|_| json!(unix_now() as f64 + 3600.5))),
        ("null", V(|_| Value::Null)),
        ("a_boolean", V(|_| json!(true))),
        ("an_array", V(|_| json!([unix_now() + 3600]))),
        ("in_exponent_notation", Raw(|_| "1e10".to_owned())),
        ("beyond_u64", Raw(|_| "18446744073709551616".to_owned())),
        // A second `exp` member after the valid one: duplicate members are refused.
        (
            "duplicated_with_a_past_value",
            Duplicate(|_| format!("{}", unix_now() - 3600)),
        ),
    ]
}

/// TOK-11: `nbf` in the future beyond the leeway, or not an integer date.
fn not_before_variants() -> Variants {
    use Variant::{Duplicate, Value as V};
    vec![
        ("future_beyond_the_leeway", V(|_| json!(unix_now() + 300))),
        ("a_year_ahead", V(|_| json!(unix_now() + 365 * 86_400))),
        ("a_far_future_string", V(|_| json!("9999999999"))),
        ("a_string_of_now", V(|_| json!(unix_now().to_string()))),
        ("a_float", V(|_| json!(unix_now() as f64 - 10.5))),
        ("negative", V(|_| json!(-1))),
        ("null", V(|_| Value::Null)),
        (
            "duplicated_with_a_future_value",
            Duplicate(|_| format!("{}", unix_now() + 3600)),
        ),
    ]
}

/// TOK-12: `iat` in the future beyond the leeway, or not an integer date.
fn issued_at_variants() -> Variants {
    use Variant::Value as V;
    vec![
        ("future_beyond_the_leeway", V(|_| json!(unix_now() + 300))),
        ("a_year_ahead", V(|_| json!(unix_now() + 365 * 86_400))),
        ("a_string", V(|_| json!(unix_now().to_string()))),
        ("a_float", V(|_| json!(unix_now() as f64 + 0.5))),
        ("negative", V(|_| json!(-1))),
        ("null", V(|_| Value::Null)),
    ]
}
