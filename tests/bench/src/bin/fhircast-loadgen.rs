//! `fhircast-loadgen`: the load generator for any FHIRcast hub; see
//! [`fhircast_bench::loadgen`] and `--help`.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(fhircast_bench::loadgen::main())
}
