//! The cluster's wire: the protobuf messages gateways and hub nodes exchange, and the
//! conversions between them and the vocabulary of [`crate::hub`] and [`crate::bus`].
//!
//! The contract itself is `proto/fhircast/hub/v1/{hub,bus}.proto`; [`v1`] is the code
//! prost and tonic generate from it (messages, the `HubNode` client and server).
//!
//! Conversions go both ways:
//!
//! - outbound (domain → message) never fails: `From` impls, and a `new` constructor per
//!   rpc request;
//! - inbound (message → domain) checks everything with the real parsers
//!   ([`crate::EndpointId::parse`], [`crate::EventName::parse`], [`crate::TopicId::parse`],
//!   [`crate::TopicRef::parse`]) and fails with a [`WireError`] naming the field: `TryFrom`
//!   impls, `into_parts` per rpc request, and `into_domain(key)` where a raw topic must be
//!   turned into a [`crate::TopicId`].
//!
//! - [`subscribe`]: Subscribe, Unsubscribe and ResolveEndpoint; owners.
//! - [`attach`]: Attach: attachments, positions, end reasons.
//! - [`event`]: Publish and CurrentContext: event requests, publish outcomes, contexts.
//! - [`access`]: MintTopic, RevokeTopic and ListTopics: the admin API's topic records.
//! - [`report`]: ReportFailure and Detach: delivery failures, detaches.
//! - [`revalidate`]: Revalidate: which endpoints of a gateway ended.
//! - [`bus`]: the bus envelope as it travels over Redis
//!   ([`crate::bus::Envelope::to_wire`], [`crate::bus::Envelope::from_wire`]).
//! - [`status`]: [`crate::hub::TopicError`] as a gRPC status.

pub mod access;
pub mod attach;
pub mod bus;
mod error;
pub mod event;
mod fields;
#[cfg(test)]
mod fixtures;
pub mod report;
pub mod revalidate;
#[cfg(test)]
mod service_tests;
pub mod status;
pub mod subscribe;

pub use bus::Trace;
pub use error::WireError;
pub use status::ERROR_METADATA_KEY;

/// The generated messages, client and server of `fhircast.hub.v1`.
#[allow(
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
pub mod v1 {
    tonic::include_proto!("fhircast.hub.v1");
}
