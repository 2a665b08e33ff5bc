//! `fhircast-hub-node`: parse and check the configuration before connecting anything
//! (exit 64 on a bad one), run until SIGTERM or SIGINT, drain.

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use hub_node::cluster::node::run;
use hub_node::cluster::node_config::NodeConfig;
use hub_node::shutdown::cancel_on_signal;

/// jemalloc rather than glibc's malloc: the hub node allocates small, short-lived buffers
/// on every request and frame, from several threads, where glibc's malloc and free took
/// about a quarter of the publish path's CPU (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// EX_USAGE: the command line or environment is wrong.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let config = NodeConfig::parse();
    if let Err(err) = config.validate() {
        eprintln!("fhircast-hub-node: {err}");
        return ExitCode::from(EXIT_USAGE);
    }
    hub_node::telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("fhircast-hub-node: failed to start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    let result = runtime.block_on(async {
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        run(config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fhircast-hub-node: {err:#}");
            ExitCode::FAILURE
        }
    }
}
