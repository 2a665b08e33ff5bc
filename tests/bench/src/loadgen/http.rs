//! HTTP clients (reqwest over rustls, HTTP/1.1 keep-alive): one per `--source-addrs`
//! address, so subscribe and publish connections leave from the same addresses as the
//! WebSockets do.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client per source address.
#[derive(Debug, Clone)]
pub struct Http {
    clients: Vec<(IpAddr, reqwest::Client)>,
}

impl Http {
    /// Builds the clients; `pool` is how many idle keep-alive connections each keeps per host.
    pub fn new(sources: &[IpAddr], ca_file: Option<&Path>, pool: usize) -> Result<Self> {
        let ca = match ca_file {
            Some(path) => Some(
                reqwest::Certificate::from_pem_bundle(
                    &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
                )
                .with_context(|| format!("parsing {}", path.display()))?,
            ),
            None => None,
        };
        let mut clients = Vec::new();
        for &source in sources {
            let mut builder = reqwest::Client::builder()
                .http1_only()
                .no_proxy()
                .tcp_nodelay(true)
                .timeout(REQUEST_TIMEOUT)
                .pool_max_idle_per_host(pool)
                .local_address(source);
            if let Some(certs) = &ca {
                builder = builder.tls_certs_merge(certs.iter().cloned());
            }
            clients.push((source, builder.build().context("building the HTTP client")?));
        }
        Ok(Self { clients })
    }

    /// The client whose connections leave from `source` (else the first).
    pub fn client(&self, source: IpAddr) -> &reqwest::Client {
        self.clients
            .iter()
            .find(|(addr, _)| *addr == source)
            .or(self.clients.first())
            .map(|(_, client)| client)
            .expect("at least one source address")
    }

    /// The client of the `index`-th source address, round-robin.
    pub fn nth(&self, index: usize) -> &reqwest::Client {
        &self.clients[index % self.clients.len()].1
    }
}
