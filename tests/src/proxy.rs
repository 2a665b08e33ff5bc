//! A TCP proxy on `127.0.0.1:0` in front of a server under test, to drop connections the
//! way a network blip or a restarted load balancer does: [`TcpProxy::cut_all`] resets both
//! sides of every connection at once (no close frame, no FIN), and the proxy keeps
//! listening so clients can reconnect through it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running proxy.
#[derive(Debug)]
pub struct TcpProxy {
    address: SocketAddr,
    cut: Arc<Mutex<CancellationToken>>,
    accept_loop: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts a proxy forwarding every connection to `target`.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy")?;
        let address = listener.local_addr()?;
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let current = Arc::clone(&cut);
        let accept_loop = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let token = current
                    .lock()
                    .map(|token| token.clone())
                    .unwrap_or_default();
                tokio::spawn(forward(client, target, token));
            }
        });
        Ok(Self {
            address,
            cut,
            accept_loop,
        })
    }

    /// Returns the proxy's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Returns `url` (http, ws) with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
        let path = rest.find('/').map_or("", |slash| &rest[slash..]);
        format!("{scheme}://{}{path}", self.address)
    }

    /// Resets both sides of every connection open now; later connections go through.
    pub fn cut_all(&self) {
        if let Ok(mut token) = self.cut.lock() {
            token.cancel();
            *token = CancellationToken::new();
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut_all();
        self.accept_loop.abort();
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr, cut: CancellationToken) {
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
        () = cut.cancelled() => {
            // Zero linger: closing sends RST, as a dropped network path looks to both ends.
            let _ = client.set_zero_linger();
            let _ = upstream.set_zero_linger();
        }
    }
}
