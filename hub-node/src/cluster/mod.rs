//! Cluster mechanics of a hub node (DESIGN §6): membership heartbeats, the tonic service
//! that gateways call (over mutual TLS when configured, [`grpc_tls`]), and start-up of a
//! node against Redis.

pub mod grpc_tls;
pub mod membership;
pub mod node;
pub mod node_config;
pub mod redis;
pub mod sentinel_watch;
pub mod service;
