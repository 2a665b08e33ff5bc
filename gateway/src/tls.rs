//! HTTPS and WSS on the gateway's own listener (rustls, TLS 1.2 and 1.3 only).
//!
//! The certificate and key files, their rotation and the rustls plumbing are shared with
//! the hub node ([`hub_node::tls`]): a rotated pair is used for new connections without a
//! restart, and a pair that fails to load leaves the previous one in use.

use std::sync::Arc;

use rustls::ServerConfig;

pub use hub_node::tls::{ReloadingCert, TlsError, TlsFiles};

/// The HTTPS/WSS configuration: HTTP/1.1 (the WebSocket upgrade needs it), no client
/// certificates.
pub fn server_config(cert: &Arc<ReloadingCert>) -> Result<Arc<ServerConfig>, TlsError> {
    cert.server_config(None, &[b"http/1.1"])
}
