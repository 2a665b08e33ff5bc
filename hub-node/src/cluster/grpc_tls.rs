//! Mutual TLS on a hub node's gRPC listener (TLS-03). The node presents its certificate,
//! which must name the host gateways dial (the address it advertises in the membership),
//! and serves only clients presenting a certificate signed by `--grpc-client-ca`: a
//! client without one, or with one from another CA, fails the handshake before a byte of
//! gRPC is read. The gateway's side is `gateway::cluster::grpc_tls`.
//!
//! The accept loop is ours (not tonic's `ServerTlsConfig`) so that the node's certificate
//! is reloaded when its files are rotated ([`ReloadingCert`]). Handshakes run concurrently,
//! each within [`HANDSHAKE_TIMEOUT`] and at most [`MAX_HANDSHAKES`] at a time, and are
//! handed to tonic as they complete. A refused handshake is logged with the peer address
//! and rustls' reason (at most one warning a second).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::telemetry::LogThrottle;
use crate::tls::{ReloadingCert, TlsError, TlsFiles, load_roots, provider};

/// The ALPN protocol of gRPC.
pub const ALPN_H2: &[u8] = b"h2";
/// Longest a client may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once; connections beyond it are closed at once.
pub const MAX_HANDSHAKES: usize = 256;
/// Pause after a failed accept (e.g. out of file descriptors), so the loop never spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The host part of a `host:port` address (brackets of an IPv6 literal removed): the name
/// a node's certificate must carry and a gateway checks.
pub fn dialed_host(address: &str) -> &str {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _port)| host);
    host.strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
}

/// The node's side of mutual TLS: its certificate and the CA gateways' certificates must
/// chain to.
#[derive(Clone)]
pub struct GrpcServerTls {
    cert: Arc<ReloadingCert>,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for GrpcServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GrpcServerTls({:?})", self.cert)
    }
}

impl GrpcServerTls {
    /// Loads the node's pair and the client CA bundle.
    pub fn load(files: TlsFiles, client_ca: &Path) -> Result<Self, TlsError> {
        let roots = load_roots(client_ca)?;
        let clients = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|err| TlsError::Config(format!("{}: {err}", client_ca.display())))?;
        let cert = ReloadingCert::load(files)?;
        let config = cert.server_config(Some(clients), &[ALPN_H2])?;
        Ok(Self {
            cert,
            acceptor: TlsAcceptor::from(config),
        })
    }

    /// Checks that the certificate is valid for `host`, as a gateway dialing it will check.
    pub fn check_names(&self, host: &str) -> Result<(), String> {
        let name = ServerName::try_from(host)
            .map_err(|_| format!("{host:?} is neither a DNS name nor an IP address"))?;
        let pair = self.cert.current();
        let leaf = pair
            .end_entity_cert()
            .map_err(|err| format!("no certificate: {err}"))?;
        webpki::EndEntityCert::try_from(leaf)
            .map_err(|err| format!("the certificate cannot be read: {err}"))?
            .verify_is_valid_for_subject_name(&name)
            .map_err(|_| {
                format!(
                    "the certificate does not name {host}, the host gateways dial \
                     (--advertise-address, else the listen address): add it as a \
                     subjectAltName (DNS or IP)"
                )
            })
    }

    /// The certificate, to watch for rotations.
    pub fn certificate(&self) -> &Arc<ReloadingCert> {
        &self.cert
    }

    /// Accepts connections on `listener` until `shutdown` and yields those whose handshake
    /// succeeded, for tonic's `serve_with_incoming`.
    pub fn incoming(
        &self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> ReceiverStream<io::Result<TlsStream<TcpStream>>> {
        let (sender, receiver) = mpsc::channel(MAX_HANDSHAKES);
        tokio::spawn(accept_loop(
            listener,
            self.acceptor.clone(),
            sender,
            shutdown,
        ));
        ReceiverStream::new(receiver)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    established: mpsc::Sender<io::Result<TlsStream<TcpStream>>>,
    shutdown: CancellationToken,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let refusals = Arc::new(LogThrottle::default());
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                warn!(error = %err, "accepting a gRPC connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&handshakes).try_acquire_owned() else {
            debug!(%peer, "too many gRPC TLS handshakes in progress; closing a connection");
            continue;
        };
        let (acceptor, established) = (acceptor.clone(), established.clone());
        let refusals = Arc::clone(&refusals);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = established.send(Ok(stream)).await;
                }
                Ok(Err(err)) => log_refused(peer, &err, &refusals),
                Err(_) => debug!(%peer, "a gRPC TLS handshake timed out"),
            }
        });
    }
}

/// A TLS refusal (no client certificate, one from another CA, a plaintext client) is
/// worth a warning (at most one a second, with the count of those left out); a connection
/// that merely closed is not.
fn log_refused(peer: SocketAddr, err: &io::Error, refusals: &LogThrottle) {
    let Some(reason) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        debug!(%peer, error = %err, "a gRPC connection closed during the TLS handshake");
        return;
    };
    match refusals.admit() {
        Some(also_refused) => warn!(
            %peer,
            %reason,
            also_refused,
            "refused a gRPC connection: TLS handshake failed"
        ),
        None => debug!(%peer, %reason, "refused a gRPC connection: TLS handshake failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::dialed_host;

    #[test]
    fn the_dialed_host_drops_the_port_and_ipv6_brackets() {
        assert_eq!(dialed_host("hub-0.hub.svc:50051"), "hub-0.hub.svc");
        assert_eq!(dialed_host("10.0.0.7:50051"), "10.0.0.7");
        assert_eq!(dialed_host("[fd00::7]:50051"), "fd00::7");
        assert_eq!(dialed_host("hub-0"), "hub-0");
    }
}
