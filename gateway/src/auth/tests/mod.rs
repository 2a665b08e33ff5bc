//! Tests of token verification against real keys and a JWKS served over real HTTP.
//! Test names carry the ids of the security catalogue (TOK-01…TOK-17).

mod claims;
mod header;
mod jwks;
mod support;
