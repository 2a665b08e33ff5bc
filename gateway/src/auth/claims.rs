//! Reading a verified claims set into a [`Principal`], with strict types: `exp`, `nbf`
//! and `iat` must be non-negative integers (not strings, not floats), `iss` a string equal
//! to the issuer, `scope` a string or `scp` an array of strings, the topic claim a string
//! or an array of strings. These checks run after, and in addition to, jsonwebtoken's; an
//! introspection response (RFC 7662) goes through the same ones, `aud` included.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fhircast_proto::scope::ScopeSet;
use serde_json::{Map, Value};

use super::{AuthError, Principal, VerifierConfig};

/// Builds the principal of a token whose signature has been verified.
pub(crate) fn principal(
    claims: &Map<String, Value>,
    config: &VerifierConfig,
    now: SystemTime,
) -> Result<Principal, AuthError> {
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let leeway = config.leeway.as_secs();

    let exp = numeric_date(claims, "exp")?
        .ok_or_else(|| AuthError::invalid("token lacks the exp claim"))?;
    if exp.saturating_add(leeway) < now_secs {
        return Err(AuthError::invalid("token expired"));
    }
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > now_secs.saturating_add(leeway)) {
        return Err(AuthError::invalid("token is not valid yet"));
    }
    if numeric_date(claims, "iat")?.is_some_and(|iat| iat > now_secs.saturating_add(leeway)) {
        return Err(AuthError::invalid("token is issued in the future"));
    }
    match claims.get("iss") {
        Some(Value::String(iss)) if *iss == config.issuer => {}
        _ => return Err(AuthError::invalid("token issuer is not accepted")),
    }

    let scopes = match (claims.get("scope"), claims.get("scp")) {
        (Some(Value::String(scope)), _) => ScopeSet::parse(scope),
        (Some(_), _) => return Err(AuthError::invalid("token scope claim is malformed")),
        (None, Some(Value::String(scp))) => ScopeSet::parse(scp),
        (None, Some(scp)) => ScopeSet::from_iter(
            strings(scp).ok_or_else(|| AuthError::invalid("token scp claim is malformed"))?,
        ),
        (None, None) => ScopeSet::default(),
    };
    let topics = match claims.get(&config.topic_claim) {
        None => Vec::new(),
        Some(value) => strings(value)
            .ok_or_else(|| AuthError::invalid("token topic claim is malformed"))?
            .into_iter()
            .map(str::to_owned)
            .collect(),
    };
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(Principal {
        subject: text("sub"),
        client_id: text("client_id").or_else(|| text("azp")),
        scopes,
        topics,
        expires_at: UNIX_EPOCH + Duration::from_secs(exp),
    })
}

/// Refuses claims whose `aud` (a string or an array of strings) does not contain
/// `audience`. jsonwebtoken checks this for a JWS; an introspection response is checked here.
pub(crate) fn check_audience(claims: &Map<String, Value>, audience: &str) -> Result<(), AuthError> {
    match claims.get("aud") {
        None => Err(AuthError::invalid("token lacks the aud claim")),
        Some(aud) => match strings(aud) {
            Some(values) if values.contains(&audience) => Ok(()),
            Some(_) => Err(AuthError::invalid(
                "token audience does not include this hub",
            )),
            None => Err(AuthError::invalid("token aud claim is malformed")),
        },
    }
}

/// A NumericDate claim as whole seconds; anything but a non-negative integer is refused.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .filter(|secs| *secs <= MAX_NUMERIC_DATE)
            .map(Some)
            .ok_or_else(|| AuthError::Invalid {
                reason: format!("token {name} claim is not an integer date").into(),
            }),
    }
}

/// Year 9999: later dates are not plausible and would overflow `SystemTime` arithmetic.
const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// A string or an array of strings (an array element of another type fails the whole).
fn strings(value: &Value) -> Option<Vec<&str>> {
    match value {
        Value::String(one) => Some(vec![one.as_str()]),
        Value::Array(many) => many.iter().map(Value::as_str).collect(),
        _ => None,
    }
}
