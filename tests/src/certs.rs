//! Certificates for TLS servers under test (a TLS Redis, an HTTPS gateway, hub nodes over
//! mutual TLS): throwaway CAs ([`TestCa`]) and certificates for `127.0.0.1` and
//! `localhost` they sign, generated at runtime and written as PEM files.
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

use crate::scratch::Scratch;

/// A throwaway certificate authority, kept in memory; its certificate is written where a
/// test needs it ([`TestCa::write`]).
#[derive(Debug)]
pub struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl TestCa {
    /// Generates a CA named `name`.
    pub fn generate(name: &str) -> Result<Self> {
        let key = KeyPair::generate().context("generating the CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).context("self-signing the CA")?;
        Ok(Self {
            pem: cert.pem(),
            params,
            key,
        })
    }

    /// Writes the CA certificate (PEM) to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        write(path, &self.pem)
    }

    /// Issues a certificate for `127.0.0.1` and `localhost` named `name`, for a server
    /// (`ServerAuth`) or a client (`ClientAuth`), and writes it and its key to `pair`.
    pub fn issue(&self, name: &str, usage: ExtendedKeyUsagePurpose, pair: &TlsPair) -> Result<()> {
        let key = KeyPair::generate().context("generating a leaf key")?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params
            .signed_by(&key, &issuer)
            .with_context(|| format!("signing the certificate of {name}"))?;
        write(&pair.cert, &cert.pem())?;
        write(&pair.key, &key.serialize_pem())
    }
}

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct TlsPair {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl TlsPair {
    /// `<dir>/<name>.pem` and `<dir>/<name>.key`.
    pub fn in_dir(dir: &Path, name: &str) -> Self {
        Self {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        }
    }
}

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
        let ca = TestCa::generate("hub-tests CA")?;
        let server = TlsPair::in_dir(dir, "server");
        let files = Self {
            ca: dir.join("ca.pem"),
            cert: server.cert.clone(),
            key: server.key.clone(),
        };
        ca.write(&files.ca)?;
        ca.issue(
            "hub-tests server",
            ExtendedKeyUsagePurpose::ServerAuth,
            &server,
        )?;
        Ok(files)
    }
}

/// Certificates for mutual TLS between a cluster's gateways and hub nodes: one CA that
/// signs both sides, a node (server) certificate and a gateway (client) certificate, each
/// for `127.0.0.1` and `localhost`, in a [`Scratch`] directory of their own.
#[derive(Debug)]
pub struct GrpcMtls {
    dir: Scratch,
    /// The CA certificate (what nodes require of gateways, and gateways of nodes).
    pub ca: PathBuf,
    /// The hub nodes' certificate.
    pub node: TlsPair,
    /// The gateways' client certificate.
    pub gateway: TlsPair,
}

impl GrpcMtls {
    /// Generates a fresh CA and both certificates.
    pub fn generate() -> Result<Self> {
        let dir = Scratch::new("grpc-mtls")?;
        // A name of its own: a CA named like another would make a stranger's certificate
        // fail on its signature rather than on its unknown issuer.
        let ca = TestCa::generate(&format!("hub-tests gRPC CA {}", uuid::Uuid::new_v4()))?;
        let files = Self {
            ca: dir.join("ca.pem"),
            node: TlsPair::in_dir(&dir, "node"),
            gateway: TlsPair::in_dir(&dir, "gateway"),
            dir,
        };
        ca.write(&files.ca)?;
        ca.issue("hub node", ExtendedKeyUsagePurpose::ServerAuth, &files.node)?;
        ca.issue(
            "gateway",
            ExtendedKeyUsagePurpose::ClientAuth,
            &files.gateway,
        )?;
        Ok(files)
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A hub node's flags: present the node certificate, require gateways signed by the CA.
    pub fn node_args(&self) -> Vec<String> {
        vec![
            format!("--grpc-tls-cert={}", self.node.cert.display()),
            format!("--grpc-tls-key={}", self.node.key.display()),
            format!("--grpc-client-ca={}", self.ca.display()),
        ]
    }

    /// A gateway's flags: present the gateway certificate, trust nodes signed by the CA.
    pub fn gateway_args(&self) -> Vec<String> {
        self.gateway_args_trusting(&self.ca)
    }

    /// A gateway's flags trusting nodes signed by `ca` instead (for a misconfigured one).
    pub fn gateway_args_trusting(&self, ca: &Path) -> Vec<String> {
        vec![
            format!("--grpc-tls-ca={}", ca.display()),
            format!("--grpc-client-cert={}", self.gateway.cert.display()),
            format!("--grpc-client-key={}", self.gateway.key.display()),
        ]
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
