//! Tests of token verification against real keys and a JWKS served over real HTTP.
//! Test names carry the ids of the security catalogue (TOK-01…TOK-18).

mod claims;
mod header;
mod introspection;
mod introspection_server;
mod issuers;
mod jwks;
mod support;
