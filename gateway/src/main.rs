//! `fhircast-gateway`: parse and check the configuration before binding anything (exit 64
//! on a bad one), bind, run until SIGTERM or SIGINT, drain.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use gateway::config::Config;

/// jemalloc rather than glibc's malloc: the gateway allocates small, short-lived buffers
/// on every request and frame, from several threads, where glibc's malloc and free took
/// about a quarter of the publish path's CPU (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// EX_USAGE: the command line or environment is wrong.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(err) = config.validate() {
        eprintln!("fhircast-gateway: {err}");
        return ExitCode::from(EXIT_USAGE);
    }
    hub_node::telemetry::init(config.log_format);
    if let Err(err) = gateway::auth::crypto_self_test() {
        eprintln!(
            "fhircast-gateway: token verification is unusable in this build: {}",
            err.reason()
        );
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("fhircast-gateway: failed to start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fhircast-gateway: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to bind {}", config.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(hub_node::shutdown::cancel_on_signal(shutdown.clone()));
    gateway::run(config, listener, shutdown).await
}
