//! Certificates for TLS servers under test (a TLS Redis, an HTTPS gateway): a throwaway CA
//! and a server certificate for `127.0.0.1` and `localhost`, generated at runtime and
//! written as PEM files.
//!
//! A test process that talks to such a server trusts its CA with [`trust`]: every HTTP
//! client ([`http_client`]) and WebSocket connection ([`websocket_connector`]) the harness
//! makes afterwards accepts certificates it signed, besides the system's roots.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// The PEM files a TLS server needs, and the CA its clients trust.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate clients trust.
    pub ca: PathBuf,
    /// The server's certificate (signed by the CA).
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Generates a CA and a server certificate signed by it into `dir`.
    pub fn generate(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let ca_key = KeyPair::generate().context("generating the CA key")?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hub-tests CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .context("self-signing the CA")?;

        let server_key = KeyPair::generate().context("generating the server key")?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params
            .distinguished_name
            .push(DnType::CommonName, "hub-tests server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let cert = params
            .signed_by(&server_key, &issuer)
            .context("signing the server certificate")?;

        let files = Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        write(&files.ca, &ca_cert.pem())?;
        write(&files.cert, &cert.pem())?;
        write(&files.key, &server_key.serialize_pem())?;
        Ok(files)
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// CA certificates this process trusts besides the system's roots.
static TRUSTED: Mutex<Vec<CertificateDer<'static>>> = Mutex::new(Vec::new());

fn trusted() -> Vec<CertificateDer<'static>> {
    TRUSTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Trusts the CA certificate(s) in the PEM file `ca` from now on, in this process.
pub fn trust(ca: &Path) -> Result<()> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading {}", ca.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", ca.display()))?;
    TRUSTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .extend(certs);
    Ok(())
}

/// An HTTP client trusting the system's roots and every CA given to [`trust`].
pub fn http_client() -> reqwest::Client {
    let extra: Vec<reqwest::Certificate> = trusted()
        .iter()
        .filter_map(|cert| reqwest::Certificate::from_der(cert).ok())
        .collect();
    reqwest::Client::builder()
        .tls_certs_merge(extra)
        .build()
        .unwrap_or_else(|err| {
            eprintln!("hub-tests: an HTTP client trusting the test CAs failed ({err}); using one that does not");
            reqwest::Client::new()
        })
}

/// The TLS connector for `wss://` when [`trust`] was called (else the default: the
/// system's roots).
pub fn websocket_connector() -> Option<tokio_tungstenite::Connector> {
    let extra = trusted();
    if extra.is_empty() {
        return None;
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_roots() {
        let _ = roots.add(cert);
    }
    for cert in extra {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(tokio_tungstenite::Connector::Rustls(Arc::new(config)))
}

/// The system's trusted roots (none when they cannot be read).
fn rustls_native_roots() -> Vec<CertificateDer<'static>> {
    rustls_native_certs::load_native_certs().certs
}
