//! Bearer credential parsing (RFC 6750 §2.1): the token travels in exactly one
//! `Authorization` header, scheme case-insensitive; never in the query string.

use axum::http::{HeaderMap, header::AUTHORIZATION};

use super::AuthError;

/// Longest bearer token read; real access tokens are a few KiB at most.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Extracts the bearer token from the request headers.
///
/// No header is [`AuthError::Missing`], two or more is [`AuthError::DuplicateHeader`]
/// (400), any other scheme or a token outside the RFC 6750 `b64token` alphabet is
/// [`AuthError::Malformed`].
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::DuplicateHeader);
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::malformed("authorization header is not visible ascii"))?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::malformed("authorization scheme must be bearer"));
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    super::token::check_length(token)?;
    if !is_b64token(token) {
        return Err(AuthError::malformed(
            "bearer token contains characters outside the b64token alphabet",
        ));
    }
    Ok(token)
}

/// Refuses a request whose query string carries `access_token` (RFC 6750 §2.3 is not
/// supported: URLs end up in logs and histories). Call with `uri.query()`.
pub fn reject_token_in_query(query: Option<&str>) -> Result<(), AuthError> {
    let Some(query) = query else {
        return Ok(());
    };
    if form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "access_token") {
        return Err(AuthError::TokenInQuery);
    }
    Ok(())
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                AUTHORIZATION,
                HeaderValue::from_str(value).expect("test header value"),
            );
        }
        map
    }

    #[test]
    fn tok_17_scheme_is_case_insensitive() {
        for value in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER  a.b.c",
            "bEaReR a.b.c ",
        ] {
            assert_eq!(bearer_token(&headers(&[value])).expect(value), "a.b.c");
        }
    }

    #[test]
    fn tok_17_two_authorization_headers_are_400() {
        let err = bearer_token(&headers(&["Bearer a.b.c", "Bearer d.e.f"]))
            .expect_err("two headers must be refused");
        assert!(matches!(err, AuthError::DuplicateHeader));
        assert_eq!(err.http_status(), 400);
    }

    #[test]
    fn tok_17_missing_and_other_schemes_are_401() {
        assert!(matches!(
            bearer_token(&headers(&[])),
            Err(AuthError::Missing)
        ));
        for value in [
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer ",
            "Token a.b.c",
            "Bearera.b.c",
        ] {
            let err = bearer_token(&headers(&[value])).expect_err(value);
            assert_eq!(err.http_status(), 401, "{value}");
        }
        for value in ["Bearer a b", "Bearer a,b", "Bearer ===", "Bearer a\"b"] {
            let err = bearer_token(&headers(&[value])).expect_err(value);
            assert!(matches!(err, AuthError::Malformed { .. }), "{value}");
        }
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert!(bearer_token(&headers(&[&long])).is_err());
    }

    #[test]
    fn tok_17_token_in_query_string_is_400() {
        let err = reject_token_in_query(Some("x=1&access_token=abc")).expect_err("query token");
        assert_eq!(err.http_status(), 400);
        assert!(!err.reason().contains("abc"));
        assert!(reject_token_in_query(Some("hub.topic=abc")).is_ok());
        assert!(reject_token_in_query(None).is_ok());
    }
}
