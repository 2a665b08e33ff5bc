//! TLS material both binaries share (rustls with the aws-lc provider, TLS 1.2 and 1.3 only):
//! certificate and key pairs, CA bundles, and the configurations built from them. The
//! gateway serves HTTPS and WSS with a pair; the gRPC hop between gateways and hub nodes
//! uses one pair on each side plus a CA bundle on each side (mutual TLS,
//! [`crate::cluster::grpc_tls`]).
//!
//! The certificate chain and private key are PEM files (what cert-manager, a hospital PKI
//! or `openssl` hand out). They are read at start-up (a bad pair stops the start) and then
//! watched: when either file changes, the pair is loaded again and new connections get it;
//! open connections keep the certificate they were made with. A pair that fails to load is
//! logged and the previous one stays in use, so a half-copied rotation never takes the hub
//! down. CA bundles are read once, at start-up.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::client::ResolvesClientCert;
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, RootCertStore, ServerConfig, SignatureScheme, SupportedProtocolVersion,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The protocol versions every TLS endpoint of the hub speaks.
const VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Why TLS material could not be used.
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
    /// rustls refused the configuration built from the material.
    #[error("{0}")]
    Config(String),
}

/// The crypto provider of every TLS endpoint of the hub.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// Reads every certificate of a PEM file, failing on an empty one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |reason: String| TlsError::File {
        path: path.to_owned(),
        reason,
    };
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|err| file_error(err.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|err| file_error(err.to_string()))?;
    if certificates.is_empty() {
        return Err(file_error("no certificate in it".into()));
    }
    Ok(certificates)
}

/// Reads a PEM bundle of CA certificates (one or more; several during a CA rotation).
pub fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(path)? {
        roots.add(certificate).map_err(|err| TlsError::File {
            path: path.to_owned(),
            reason: format!("not a usable CA certificate: {err}"),
        })?;
    }
    Ok(Arc::new(roots))
}

/// Checks flags that only work together (a pair and its CA, say): `Ok(true)` when every
/// one is given, `Ok(false)` when none is, else the reason, naming the missing ones.
pub fn all_or_none(flags: &[(&str, bool)]) -> Result<bool, String> {
    let missing: Vec<&str> = flags
        .iter()
        .filter(|(_, given)| !given)
        .map(|(flag, _)| *flag)
        .collect();
    match missing.len() {
        0 => Ok(true),
        count if count == flags.len() => Ok(false),
        _ => {
            let names: Vec<&str> = flags.iter().map(|(flag, _)| *flag).collect();
            Err(format!(
                "{} go together; missing {}",
                names.join(", "),
                missing.join(", ")
            ))
        }
    }
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
        let chain = read_certificates(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|err| TlsError::File {
            path: self.key.clone(),
            reason: err.to_string(),
        })?;
        CertifiedKey::from_der(chain, key, &provider())
            .map_err(|err| TlsError::Pair(err.to_string()))
    }

    /// When each file last changed, to notice a rotation.
    fn stamps(&self) -> Option<(SystemTime, SystemTime)> {
        let modified = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified());
        Some((modified(&self.cert).ok()?, modified(&self.key).ok()?))
    }
}

/// Hands every handshake the current certificate; swapped when the files change. It serves
/// both ends: a server's certificate, or a client's certificate in mutual TLS.
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
        Some(self.current())
    }
}

impl ResolvesClientCert for ReloadingCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _schemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
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

    /// The pair new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
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

    /// A server configuration presenting this certificate: TLS 1.2 and 1.3, the given
    /// ALPN protocols, and client certificates checked by `clients` (`None`: not asked for).
    pub fn server_config(
        self: &Arc<Self>,
        clients: Option<Arc<dyn ClientCertVerifier>>,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|err| TlsError::Config(err.to_string()))?;
        let builder = match clients {
            Some(verifier) => builder.with_client_cert_verifier(verifier),
            None => builder.with_no_client_auth(),
        };
        let mut config =
            builder.with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// A client configuration presenting this certificate to servers whose certificates
    /// `roots` signed: TLS 1.2 and 1.3, the given ALPN protocols.
    pub fn client_config(
        self: &Arc<Self>,
        roots: Arc<RootCertStore>,
        alpn: &[&[u8]],
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|err| TlsError::Config(err.to_string()))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesClientCert>);
        config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::all_or_none;

    #[test]
    fn flags_that_go_together_are_given_all_or_none() {
        assert_eq!(all_or_none(&[("--a", true), ("--b", true)]), Ok(true));
        assert_eq!(all_or_none(&[("--a", false), ("--b", false)]), Ok(false));
        assert_eq!(
            all_or_none(&[("--a", true), ("--b", false), ("--c", false)]),
            Err("--a, --b, --c go together; missing --b, --c".to_owned())
        );
    }
}
