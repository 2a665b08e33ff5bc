//! The cluster's wire: the protobuf messages gateways and hub nodes exchange.
//!
//! The contract itself is `proto/fhircast/hub/v1/{hub,bus}.proto`; [`v1`] is the code
//! prost and tonic generate from it (messages, the `HubNode` client and server).

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
