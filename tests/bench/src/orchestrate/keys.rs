//! Key material made up per run: a throwaway CA with an ECDSA P-256 server certificate for
//! `127.0.0.1` and `localhost` (the `wss` step of S3), the dev-issuer key a cluster's
//! gateways share, and the cluster's topic key.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};

/// The PEM files of a TLS server and the CA its clients trust.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Generates a CA and a server certificate it signs (both ECDSA P-256) into `dir`.
pub fn tls_files(dir: &Path) -> Result<TlsFiles> {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fhircast-bench CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .context("self-signing the CA")?;

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("server key")?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params
        .distinguished_name
        .push(DnType::CommonName, "fhircast-bench server");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let cert = params
        .signed_by(&key, &issuer)
        .context("signing the server certificate")?;

    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    write_private(&files.ca, &ca_cert.pem())?;
    write_private(&files.cert, &cert.pem())?;
    write_private(&files.key, &key.serialize_pem())?;
    Ok(files)
}

/// Writes a PKCS#8 PEM EC P-256 private key (the dev issuer's) to `path`.
pub fn dev_issuer_key(path: &Path) -> Result<()> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("dev issuer key")?;
    write_private(path, &key.serialize_pem())
}

/// A random topic key of 64 hex characters.
pub fn topic_key() -> Result<String> {
    let mut bytes = [0u8; 32];
    let mut f = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    std::io::Read::read_exact(&mut f, &mut bytes).context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pems() -> Result<()> {
        let dir = crate::orchestrate::process::TempDir::new()?;
        let files = tls_files(dir.path())?;
        for path in [&files.ca, &files.cert, &files.key] {
            let text = std::fs::read_to_string(path)?;
            assert!(text.starts_with("-----BEGIN"), "{}", path.display());
        }
        dev_issuer_key(&dir.path().join("dev.pem"))?;
        assert_eq!(topic_key()?.len(), 64);
        Ok(())
    }
}
