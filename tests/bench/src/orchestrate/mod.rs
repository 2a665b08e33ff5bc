//! The `make bench` orchestrator: starts each system under test pinned to one core, drives
//! it with the load generator pinned to another, collects the steps and writes the report.

pub mod keys;
pub mod machine;
pub mod process;
pub mod procfs;
pub mod run;
pub mod scenarios;
pub mod sut;
