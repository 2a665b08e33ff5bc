//! Mutual TLS from a gateway to the hub nodes (TLS-03), the other side of
//! `hub_node::cluster::grpc_tls`. With `--grpc-tls-ca`, `--grpc-client-cert` and
//! `--grpc-client-key` every channel to a node is TLS only: the node's certificate must
//! chain to the CA and name the host the node advertises in the membership (the host part
//! of its `host:port`, a DNS name or an IP address), and the gateway presents its own
//! certificate. A failed handshake fails the call (503 to the app once the budget runs
//! out); nothing falls back to plaintext.
//!
//! The connector is ours (not tonic's `ClientTlsConfig`) so that the gateway's certificate
//! is reloaded when its files are rotated ([`ReloadingCert`]). The channel's URI stays
//! `http://host:port`: tonic would otherwise insist on doing TLS itself.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tracing::{debug, info, warn};

use hub_node::cluster::grpc_tls::{ALPN_H2, dialed_host};
use hub_node::tls::{ReloadingCert, TlsFiles, all_or_none, load_roots};

use crate::config::{Config, ConfigError};

/// The gateway's side of mutual TLS: its certificate and the CA nodes' certificates chain
/// to.
#[derive(Clone)]
pub struct GrpcClientTls {
    cert: Arc<ReloadingCert>,
    connector: TlsConnector,
    /// Node addresses whose last handshake failed (warned about once, until one succeeds).
    failing: Arc<Mutex<HashSet<String>>>,
}

impl fmt::Debug for GrpcClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GrpcClientTls({:?})", self.cert)
    }
}

impl GrpcClientTls {
    /// The configured mutual TLS, `None` for plaintext gRPC. Refuses a partial
    /// configuration, one outside a cluster, and files that do not load.
    pub fn from_config(config: &Config) -> Result<Option<Self>, ConfigError> {
        let given = all_or_none(&[
            ("--grpc-tls-ca", config.grpc_tls_ca.is_some()),
            ("--grpc-client-cert", config.grpc_client_cert.is_some()),
            ("--grpc-client-key", config.grpc_client_key.is_some()),
        ])
        .map_err(|reason| ConfigError(format!("mutual TLS to the hub nodes: {reason}")))?;
        let (true, Some(ca), Some(cert), Some(key)) = (
            given,
            &config.grpc_tls_ca,
            &config.grpc_client_cert,
            &config.grpc_client_key,
        ) else {
            return Ok(None);
        };
        if config.redis_url.is_none() {
            return Err(ConfigError(
                "--grpc-tls-ca, --grpc-client-cert and --grpc-client-key apply only in a \
                 cluster (with --redis-url)"
                    .into(),
            ));
        }
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        };
        let loaded = load_roots(ca).and_then(|roots| {
            let cert = ReloadingCert::load(files)?;
            let config = cert.client_config(roots, &[ALPN_H2])?;
            Ok(Self {
                cert,
                connector: TlsConnector::from(config),
                failing: Arc::default(),
            })
        });
        loaded.map(Some).map_err(|err| {
            ConfigError(format!(
                "--grpc-tls-ca, --grpc-client-cert, --grpc-client-key: {err}"
            ))
        })
    }

    /// The gateway's certificate, to watch for rotations.
    pub fn certificate(&self) -> &Arc<ReloadingCert> {
        &self.cert
    }

    /// A channel to the node at `address` (`host:port`, as advertised) over mutual TLS;
    /// it connects lazily and reconnects, each time checking the node's certificate.
    pub fn channel(&self, endpoint: &Endpoint, address: &str) -> Channel {
        let tls = self.clone();
        let address = address.to_owned();
        endpoint.connect_with_connector_lazy(tower::service_fn(move |_uri: Uri| {
            let (tls, address) = (tls.clone(), address.clone());
            async move { tls.connect(&address).await.map(TokioIo::new) }
        }))
    }

    async fn connect(&self, address: &str) -> io::Result<TlsStream<TcpStream>> {
        let host = dialed_host(address);
        let name = ServerName::try_from(host.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{host:?} is neither a DNS name nor an IP address"),
            )
        })?;
        let tcp = TcpStream::connect(address).await?;
        tcp.set_nodelay(true)?;
        match self.connector.connect(name, tcp).await {
            Ok(stream) => {
                if self.failing().remove(address) {
                    info!(
                        node_address = address,
                        "TLS handshake with a hub node succeeds again"
                    );
                }
                Ok(stream)
            }
            Err(err) => {
                if self.failing().insert(address.to_owned()) {
                    warn!(
                        node_address = address,
                        error = %err,
                        "TLS handshake with a hub node failed; calls to it fail until one succeeds"
                    );
                } else {
                    debug!(node_address = address, error = %err, "TLS handshake with a hub node failed");
                }
                Err(err)
            }
        }
    }

    fn failing(&self) -> MutexGuard<'_, HashSet<String>> {
        self.failing
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// Whether a node address is on this host's loopback (where plaintext gRPC is fine).
pub fn is_loopback_address(address: &str) -> bool {
    let host = dialed_host(address);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback_address;

    #[test]
    fn only_loopback_node_addresses_count_as_local() {
        assert!(is_loopback_address("127.0.0.1:50051"));
        assert!(is_loopback_address("[::1]:50051"));
        assert!(is_loopback_address("localhost:50051"));
        assert!(!is_loopback_address("10.0.0.7:50051"));
        assert!(!is_loopback_address("hub-0.hub.svc:50051"));
    }
}
