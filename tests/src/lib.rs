//! Black-box tests for the FHIRcast hub: process harness, test SMART issuer, FHIRcast client
//! and the conformance suite.
//!
//! # Layout
//!
//! - [`eventually`]: wait for a condition with a deadline (no sleeps as synchronisation).
//! - [`process`], [`gateway`]: spawn real binaries on `127.0.0.1:0`, stop them with SIGTERM.
//! - [`issuer`]: an in-process ES256 issuer with a JWKS endpoint and an RFC 7662
//!   introspection endpoint; good and bad tokens, opaque tokens and their revocation.
//! - [`jose`]: test signing keys of every kind and compact JWS built byte by byte.
//! - [`canary`]: an HTTP server that counts requests (for URLs nothing may fetch).
//! - [`log_archive`]: keeps every process's logs and records every secret the harness makes
//!   up; [`log_sweep`] searches those logs for them after a whole `make test` (LOG-01,
//!   `fhircast-log-sweep`).
//! - [`attack_corpus`]: the forged-token corpus (TOK-02…TOK-14), one named test per case.
//! - [`token`]: where the conformance suite gets tokens (issuer, token URL, command).
//! - [`client`], [`subscriber`], [`payloads`]: the FHIRcast client used by every test.
//! - [`admin`]: a client of the gateway's admin API and its secret file.
//! - [`proxy`]: a TCP proxy that drops connections the way a network blip does.
//! - [`certs`]: throwaway CA and server certificates for TLS servers under test;
//!   [`scratch`]: a temporary directory for a test's files.
//! - [`redis`]: Redis topologies (single with AOF/ACL/TLS, sentinel set, cluster) on loopback.
//! - [`cluster`]: a whole cluster (Redis, hub nodes, gateways) with node fault hooks.
//! - [`invariants`]: the history of a fault scenario and the invariants it must keep.
//! - [`faults`]: what the fault scenarios share (cycles, publisher, following subscriber).
//! - [`conformance`]: one check per conformance checklist item (docs/conformance.md), and its runner.
//! - `scenarios` (tests only): cross-process scenarios, one file per behaviour.

pub mod admin;
pub mod attack_corpus;
pub mod canary;
pub mod certs;
pub mod client;
pub mod cluster;
pub mod conformance;
pub mod eventually;
pub mod faults;
pub mod gateway;
pub mod invariants;
pub mod issuer;
pub mod jose;
pub mod log_archive;
pub mod log_sweep;
pub mod payloads;
pub mod process;
pub mod proxy;
pub mod redis;
pub mod scratch;
pub mod subscriber;
pub mod token;

#[cfg(test)]
mod scenarios;
