//! HTTPS and WSS on the gateway's own listener (rustls, TLS 1.2 and 1.3 only).
//!
//! The certificate chain and private key are PEM files (what cert-manager, a hospital PKI
//! or `openssl` hand out). They are read at start-up (a bad pair stops the start) and then
//! watched: when either file changes, the pair is loaded again and new connections get it;
//! open connections keep the certificate they were made with. A pair that fails to load is
//! logged and the previous one stays in use, so a half-copied rotation never takes the hub
//! down.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Why a certificate and key pair could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no PEM object of the expected kind.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key does not suit the certificate, or rustls refused the pair.
    #[error("the certificate and key do not make a usable pair: {0}")]
    Pair(String),
}

/// Where the certificate chain and its private key are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Loads the pair.
    pub fn load(&self) -> Result<CertifiedKey, TlsError> {
        let file_error = |path: &Path, reason: String| TlsError::File {
            path: path.to_owned(),
            reason,
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|err| file_error(&self.cert, err.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|err| file_error(&self.cert, err.to_string()))?;
        if chain.is_empty() {
            return Err(file_error(&self.cert, "no certificate in it".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|err| file_error(&self.key, err.to_string()))?;
        let provider = aws_lc_rs::default_provider();
        CertifiedKey::from_der(chain, key, &provider).map_err(|err| TlsError::Pair(err.to_string()))
    }

    /// When each file last changed, to notice a rotation.
    fn stamps(&self) -> Option<(SystemTime, SystemTime)> {
        let modified = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified());
        Some((modified(&self.cert).ok()?, modified(&self.key).ok()?))
    }
}

/// Hands every handshake the current certificate; swapped when the files change.
pub struct ReloadingCert {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReloadingCert({})", self.files.cert.display())
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        ))
    }
}

impl ReloadingCert {
    /// Loads the pair once (start-up fails on a bad one).
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let current = files.load()?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// Checks the files every `interval` until `shutdown`, loading the pair again when one
    /// changed.
    pub async fn watch(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut seen = self.files.stamps();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let now = self.files.stamps();
            if now.is_none() || now == seen {
                continue;
            }
            seen = now;
            match self.files.load() {
                Ok(pair) => {
                    *self
                        .current
                        .write()
                        .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(pair);
                    info!(cert = %self.files.cert.display(), "loaded the rotated TLS certificate");
                }
                Err(err) => warn!(
                    error = %err,
                    "the TLS certificate or key changed but cannot be used; keeping the previous one"
                ),
            }
        }
    }

    /// The server configuration: TLS 1.2 and 1.3, HTTP/1.1 (the WebSocket upgrade needs it),
    /// no client certificates.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|err| TlsError::Pair(err.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
