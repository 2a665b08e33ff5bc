//! `TokenTypePolicy`: which JOSE `typ` values, and which token shapes, an issuer's signed
//! tokens may have to be taken as access tokens (security catalogue TOK-13).
//!
//! An issuer signs more than access tokens with the same keys: id_tokens, logout and
//! security event tokens, signed introspection responses. RFC 9068 types access tokens
//! `at+jwt` so that none of these can pass for one, but many EHR servers send `typ: JWT` or
//! no `typ` at all, so the policy is chosen per issuer:
//!
//! - [`TokenTypePolicy::Lenient`] (default): `typ` absent, `JWT`, `JOSE` or `at+jwt`.
//!   Any other value names a token that is not an access token (`logout+jwt`,
//!   `secevent+jwt`, `token-introspection+jwt`, `dpop+jwt`, a JWE's content type…) and is
//!   refused; so is a `typ` that is not a string.
//! - [`TokenTypePolicy::Strict`] (RFC 9068 §2.1, §4): `typ` must be `at+jwt`, and a token
//!   carrying `nonce` is refused as an id_token shape (OpenID Connect puts `nonce` in
//!   id_tokens; RFC 9068 access tokens do not carry it).
//!
//! `typ` is a media type (RFC 7515 §4.1.9): compared case-insensitively, with
//! `application/` implied when it has no `/`, so `AT+JWT` and `application/at+jwt` are
//! `at+jwt`; media type parameters are not accepted. The policy applies to signed tokens
//! only: an opaque token has no header, and introspection vouches for it.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use super::AuthError;

/// How strictly an issuer's tokens must be typed as access tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenTypePolicy {
    /// `typ` absent, `JWT`, `JOSE` or `at+jwt`; any other `typ` is refused.
    #[default]
    Lenient,
    /// `typ` must be `at+jwt`, and a `nonce` claim (an id_token shape) is refused.
    Strict,
}

impl TokenTypePolicy {
    /// The policy's name in flags and the issuers file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lenient => "lenient",
            Self::Strict => "strict",
        }
    }

    /// Refuses a token whose `typ` header, or whose claims, this policy does not accept as
    /// an access token's. Reads only values the signature covers.
    pub(crate) fn check(
        self,
        typ: Option<&str>,
        claims: &Map<String, Value>,
    ) -> Result<(), AuthError> {
        let media_type = typ.map(media_type);
        match self {
            Self::Lenient => match media_type.as_deref() {
                None | Some(JWT | JOSE | AT_JWT) => Ok(()),
                Some(_) => Err(AuthError::invalid(
                    "token typ is not that of an access token",
                )),
            },
            Self::Strict => {
                if media_type.as_deref() != Some(AT_JWT) {
                    return Err(AuthError::invalid("token typ must be at+jwt"));
                }
                if claims.contains_key("nonce") {
                    return Err(AuthError::invalid(
                        "token carries a nonce claim (an id_token, not an access token)",
                    ));
                }
                Ok(())
            }
        }
    }
}

const JWT: &str = "application/jwt";
const JOSE: &str = "application/jose";
const AT_JWT: &str = "application/at+jwt";

/// `typ` as a full, lowercase media type: `application/` prepended when it has no `/`.
fn media_type(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    if lower.contains('/') {
        lower
    } else {
        format!("application/{lower}")
    }
}

impl fmt::Display for TokenTypePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given is neither `lenient` nor `strict`.
#[derive(Debug, thiserror::Error)]
#[error("unknown token type policy {0:?} (expected lenient or strict)")]
pub struct UnknownTokenTypePolicy(String);

impl FromStr for TokenTypePolicy {
    type Err = UnknownTokenTypePolicy;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "lenient" => Ok(Self::Lenient),
            "strict" => Ok(Self::Strict),
            other => Err(UnknownTokenTypePolicy(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(extra: Value) -> Map<String, Value> {
        let mut claims = json!({"iss": "i", "aud": "a", "exp": 1});
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            claims.extend(extra);
        }
        match claims {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn tok_13_lenient_accepts_the_usual_access_token_types() {
        let plain = claims(json!({}));
        for typ in [
            None,
            Some("JWT"),
            Some("jwt"),
            Some("application/jwt"),
            Some("JOSE"),
            Some("at+jwt"),
            Some("AT+JWT"),
            Some("application/at+jwt"),
            Some("Application/At+Jwt"),
        ] {
            assert!(
                TokenTypePolicy::Lenient.check(typ, &plain).is_ok(),
                "{typ:?}"
            );
        }
        let with_nonce = claims(json!({"nonce": "n"}));
        assert!(TokenTypePolicy::Lenient.check(None, &with_nonce).is_ok());
    }

    #[test]
    fn tok_13_lenient_refuses_other_token_types() {
        let plain = claims(json!({}));
        for typ in [
            "",
            "JWT ",
            "logout+jwt",
            "secevent+jwt",
            "token-introspection+jwt",
            "dpop+jwt",
            "id_token+jwt",
            "application/jwt; charset=utf-8",
            "text/jwt",
            "at+jwt+jwe",
            "JWE",
        ] {
            let err = TokenTypePolicy::Lenient
                .check(Some(typ), &plain)
                .expect_err(typ);
            assert_eq!(err.http_status(), 401, "{typ}");
        }
    }

    #[test]
    fn tok_13_strict_wants_at_jwt_and_no_nonce() {
        let plain = claims(json!({}));
        for typ in ["at+jwt", "AT+JWT", "application/at+jwt"] {
            assert!(
                TokenTypePolicy::Strict.check(Some(typ), &plain).is_ok(),
                "{typ}"
            );
        }
        for typ in [None, Some("JWT"), Some("application/jwt"), Some("JOSE")] {
            assert!(
                TokenTypePolicy::Strict.check(typ, &plain).is_err(),
                "{typ:?}"
            );
        }
        let id_token_shape = claims(json!({"nonce": "n", "azp": "app"}));
        let err = TokenTypePolicy::Strict
            .check(Some("at+jwt"), &id_token_shape)
            .expect_err("nonce");
        assert!(err.reason().contains("nonce"), "{}", err.reason());
    }

    #[test]
    fn policy_names_round_trip() {
        for policy in [TokenTypePolicy::Lenient, TokenTypePolicy::Strict] {
            assert_eq!(
                policy.as_str().parse::<TokenTypePolicy>().ok(),
                Some(policy)
            );
        }
        assert!("Strict".parse::<TokenTypePolicy>().is_err());
    }
}
