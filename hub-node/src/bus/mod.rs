//! The in-process implementation of the bus seam ([`Bus`], defined in `fhircast-proto`)
//! for the embedded hub.

mod memory;

pub use fhircast_proto::bus::{Bus, BusError, BusSubscription};
pub use memory::{HistoryLimits, MemoryBus};
