//! JOSE for tests: signing keys of every kind a hub may meet, their public JWKs, and compact
//! JWS assembled byte by byte.
//!
//! The test issuer signs its tokens here and the attack corpus forges its tokens here.
//! Building the protected header and the payload as raw bytes (not through a JWT library)
//! lets a forgery change exactly one thing (a header member no library would emit, a claim
//! of the wrong JSON type, bytes that are not UTF-8) and still carry a real signature.

mod compact;
mod keys;
mod weak_rsa;

pub use compact::{b64, hmac, pem, sign_compact, signing_input, unsigned};
pub use keys::{KeyKind, TestKey};
