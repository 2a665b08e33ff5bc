//! Compiles the cluster's wire contract (`fhircast/hub/v1/*.proto`) into Rust: prost
//! messages and the tonic `HubNode` client and server. protox parses the files, so no
//! system `protoc` is needed.

const PROTOS: [&str; 2] = ["fhircast/hub/v1/hub.proto", "fhircast/hub/v1/bus.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Frames decode as `bytes::Bytes` slices of the received buffer, not copies.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
