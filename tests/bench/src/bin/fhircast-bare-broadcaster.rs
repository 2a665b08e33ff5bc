//! `fhircast-bare-broadcaster --listen 127.0.0.1:0`: the machine's WebSocket fan-out limit
//! (no protocol, no auth). Prints `listening http://ADDR` once bound.

use std::sync::Arc;

use clap::Parser;
use fhircast_bench::broadcaster::server::{Topics, serve};

#[derive(Parser)]
#[command(about = "A bare WebSocket broadcaster: the machine's fan-out limit")]
struct Args {
    /// Address to bind (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen).await?;
        println!("listening http://{}", listener.local_addr()?);
        tokio::select! {
            r = serve(listener, Arc::new(Topics::default())) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
