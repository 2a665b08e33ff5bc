//! The unverified outside of a compact JWS: three base64url segments, a protected header
//! read only for `alg`, `kid` and `typ`, and claims read only for `iss`. Nothing here is trusted:
//! it only chooses which configured issuer and key to try, and the signature check that
//! follows covers the very bytes read here. Header-supplied keys (`jwk`, `jku`, `x5u`,
//! `x5c`) are never read.

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::AuthError;
use super::bearer::MAX_TOKEN_LEN;

/// Longest header segment read (encoded).
const MAX_HEADER_LEN: usize = 4 * 1024;
/// Longest key id accepted; anything longer is refused without a JWKS lookup.
const MAX_KID_LEN: usize = 256;
/// Nesting allowed in header and claims JSON.
pub(crate) const MAX_JSON_DEPTH: usize = 16;

/// What the protected header says, before any verification.
#[derive(Debug)]
pub(crate) struct UnverifiedHeader {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    /// The media type of the token (`JWT`, `at+jwt`…), judged by the issuer's
    /// [`TokenTypePolicy`](super::TokenTypePolicy).
    pub(crate) typ: Option<String>,
}

/// A compact JWS read but not verified. Only [`read`] builds one, so its claims are always
/// those of its token's payload: verifying the token's signature vouches for them.
#[derive(Debug)]
pub(crate) struct UnverifiedJws<'a> {
    token: &'a str,
    header: UnverifiedHeader,
    /// The payload, parsed strictly (duplicate members refused).
    claims: serde_json::Map<String, Value>,
}

impl<'a> UnverifiedJws<'a> {
    /// The whole token, as read.
    pub(crate) fn token(&self) -> &'a str {
        self.token
    }

    /// The protected header's `alg`, `kid` and `typ`.
    pub(crate) fn header(&self) -> &UnverifiedHeader {
        &self.header
    }

    /// The claims of the payload.
    pub(crate) fn claims(&self) -> &serde_json::Map<String, Value> {
        &self.claims
    }

    /// The `iss` claim, which picks the issuer whose keys and rules apply.
    pub(crate) fn issuer(&self) -> Result<&str, AuthError> {
        match self.claims.get("iss") {
            Some(Value::String(iss)) => Ok(iss),
            Some(_) => Err(AuthError::invalid("token iss claim is malformed")),
            None => Err(AuthError::invalid("token lacks the iss claim")),
        }
    }
}

/// Refuses a token longer than any real access token before anything reads it.
pub(crate) fn check_length(token: &str) -> Result<(), AuthError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(AuthError::malformed("bearer token is too long"));
    }
    Ok(())
}

/// Whether the token has the shape of a compact JWS (exactly three dot-separated segments);
/// anything else is opaque to the hub.
pub(crate) fn is_compact_jws(token: &str) -> bool {
    token.split('.').count() == 3
}

/// Reads a compact JWS's header and claims without verifying anything.
pub(crate) fn read(token: &str) -> Result<UnverifiedJws<'_>, AuthError> {
    check_length(token)?;
    let segments = split(token)?;
    let header = read_header(segments.header)?;
    let claims = decode_json_segment(segments.payload, "token claims are not a json object")?;
    Ok(UnverifiedJws {
        token,
        header,
        claims,
    })
}

/// The segments of a compact JWS.
#[derive(Debug)]
pub(crate) struct Segments<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
}

/// Splits a token into its three segments, refusing JWE (5 segments) and odd alphabets.
pub(crate) fn split(token: &str) -> Result<Segments<'_>, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::malformed(
            "token is not a compact jws (three segments)",
        ));
    };
    if header.is_empty() || payload.is_empty() {
        return Err(AuthError::malformed("token has an empty segment"));
    }
    if signature.is_empty() {
        return Err(AuthError::invalid("token is not signed"));
    }
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !(base64url(header) && base64url(payload) && base64url(signature)) {
        return Err(AuthError::malformed(
            "token segments must be unpadded base64url",
        ));
    }
    Ok(Segments { header, payload })
}

/// Decodes one segment into a JSON object, refusing duplicate members.
pub(crate) fn decode_json_segment(
    segment: &str,
    what: &'static str,
) -> Result<serde_json::Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::malformed(what))?;
    match fhircast_proto::json::parse_strict(&bytes, MAX_JSON_DEPTH) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AuthError::malformed(what)),
    }
}

/// Reads `alg`, `kid` and `typ` from the protected header.
pub(crate) fn read_header(segment: &str) -> Result<UnverifiedHeader, AuthError> {
    if segment.len() > MAX_HEADER_LEN {
        return Err(AuthError::malformed("token header is too long"));
    }
    let header = decode_json_segment(segment, "token header is not a json object")?;
    if header.contains_key("crit") {
        return Err(AuthError::invalid(
            "token header has critical parameters the hub does not understand",
        ));
    }
    if header
        .get("b64")
        .is_some_and(|b64| b64 != &Value::Bool(true))
    {
        return Err(AuthError::invalid(
            "unencoded jws payloads are not accepted",
        ));
    }
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => Algorithm::from_str(alg)
            .map_err(|_| AuthError::invalid("token algorithm is not allowed"))?,
        Some(_) => return Err(AuthError::malformed("token header alg is not a string")),
        None => return Err(AuthError::malformed("token header has no alg")),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) if is_plausible_kid(kid) => Some(kid.clone()),
        Some(_) => return Err(AuthError::invalid("token key id is malformed")),
    };
    let typ = match header.get("typ") {
        None => None,
        Some(Value::String(typ)) => Some(typ.clone()),
        Some(_) => return Err(AuthError::malformed("token header typ is not a string")),
    };
    Ok(UnverifiedHeader { alg, kid, typ })
}

/// Key ids are opaque, but a hostile one (huge, control characters) is refused before it
/// can reach the key cache.
fn is_plausible_kid(kid: &str) -> bool {
    !kid.is_empty() && kid.len() <= MAX_KID_LEN && !kid.chars().any(char::is_control)
}
