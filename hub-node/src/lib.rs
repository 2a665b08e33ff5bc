//! Hub node: the owner of FHIRcast topics.
//!
//! Each live topic is one actor (a tokio task) owning a pure [`topic::TopicState`]; every
//! change is committed to a [`store::Store`], which publishes the topic's envelopes on a
//! [`bus::Bus`] for gateways to fan out. The embedded hub wires the in-memory store and
//! bus; the cluster fills the same seams with Redis.
//!
//! # Layout
//!
//! - [`topic`]: state machine (`state.rs`, `context.rs`), mailbox (`command.rs`), actor
//!   loop (`actor.rs`), handle (`handle.rs`), settings.
//! - [`registry`]: topic ref → running actor; spawn on demand, respawn when stopped.
//! - [`high_water`]: what this node last committed per topic, to notice a rolled-back store.
//! - [`store`]: the system-of-record seam and its in-memory implementation.
//! - [`bus`]: the fan-out seam and its in-process implementation.
//! - [`tls`]: certificate pairs that reload when rotated, CA bundles, rustls
//!   configurations; shared with the gateway (HTTPS) and used by [`cluster::grpc_tls`].

pub mod bus;
pub mod cluster;
pub mod config;
pub mod high_water;
pub mod registry;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod topic;

pub use fhircast_proto::hub::TopicError;
pub use registry::Registry;
