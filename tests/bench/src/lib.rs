//! Benchmarking a FHIRcast hub: the load generator (`fhircast-loadgen`), the bare WebSocket
//! broadcaster that shows what this machine allows (`fhircast-bare-broadcaster`), and the
//! orchestrator behind `make bench` (`fhircast-bench`). They share [`results`], the shape of
//! one measured step, which the load generator writes and the orchestrator reads.

pub mod broadcaster;
pub mod loadgen;
pub mod orchestrate;
pub mod report;
pub mod results;
