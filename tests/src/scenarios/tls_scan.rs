//! TLS-01, the scan a hospital's security team runs first, done with the `openssl` command
//! line against a TLS gateway: TLS 1.2 and 1.3 only; in TLS 1.2 only forward-secret AEAD
//! suites (ECDHE with AES-GCM or ChaCha20-Poly1305), so no RC4, 3DES, NULL, EXPORT,
//! anonymous, static-RSA or CBC suite is ever agreed; no TLS compression. Each refusal has a
//! positive control (the same client, allowed a good suite, connects), so a client that
//! cannot even offer the old protocol does not pass the check by itself.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use tokio::process::Command;

use super::Rig;
use crate::certs::TlsFiles;
use crate::scratch::Scratch;

/// One `openssl s_client` handshake: whether it completed, and what it printed.
struct Handshake {
    completed: bool,
    output: String,
}

impl Handshake {
    fn field(&self, name: &str) -> Option<&str> {
        self.output.lines().find_map(|line| {
            let (key, value) = line.trim().split_once(':')?;
            (key.trim() == name).then(|| value.trim())
        })
    }
}

/// Runs `openssl s_client` with `args` (`-brief` prints the protocol and suite; without it
/// the whole session, compression included).
async fn handshake(port: u16, args: &[&str]) -> Result<Handshake> {
    let run = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", "localhost"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .context("openssl s_client did not finish in 10 s")?
        .context("running openssl s_client (install the openssl package)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(Handshake {
        completed: output.status.success()
            && (text.contains("CONNECTION ESTABLISHED")
                || text.contains("Cipher is ") && !text.contains("Cipher is (NONE)")),
        output: text,
    })
}

/// The TLS 1.2 suites this OpenSSL can offer, at any security level.
async fn every_tls12_suite() -> Result<Vec<String>> {
    let output = Command::new("openssl")
        .args(["ciphers", "-s", "-tls1_2", "ALL:eNULL:@SECLEVEL=0"])
        .output()
        .await
        .context("running openssl ciphers")?;
    let list = String::from_utf8_lossy(&output.stdout);
    Ok(list
        .trim()
        .split(':')
        .filter(|suite| !suite.is_empty() && !suite.starts_with("TLS_"))
        .map(str::to_owned)
        .collect())
}

fn forward_secret_aead(suite: &str) -> bool {
    suite.starts_with("ECDHE-") && (suite.contains("GCM") || suite.contains("CHACHA20"))
}

#[tokio::test]
async fn tls_01_only_tls_1_2_and_1_3_with_forward_secret_aead_suites_and_no_compression()
-> Result<()> {
    let dir = Scratch::new("tls-scan")?;
    let files = TlsFiles::generate(&dir.join("pair"))?;
    let rig = Rig::start_with(|builder| builder.tls(&files)).await?;
    let port = rig.gateway.address()?.port();

    for (flag, protocol) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let done = handshake(port, &["-brief", flag]).await?;
        ensure!(done.completed, "{protocol} refused:\n{}", done.output);
        ensure!(
            done.field("Protocol version") == Some(protocol),
            "{flag} agreed {:?}",
            done.field("Protocol version")
        );
    }
    // Old protocols, offered with every suite the client has: never agreed.
    for flag in ["-tls1", "-tls1_1"] {
        let old = handshake(port, &["-brief", flag, "-cipher", "ALL:@SECLEVEL=0"]).await?;
        ensure!(!old.completed, "{flag} was agreed:\n{}", old.output);
    }

    // Every TLS 1.2 suite on its own: only forward-secret AEAD ones are agreed.
    let suites = every_tls12_suite().await?;
    ensure!(
        suites.len() > 20,
        "openssl offers only {} suites",
        suites.len()
    );
    let mut agreed = Vec::new();
    for suite in &suites {
        let cipher = format!("{suite}:@SECLEVEL=0");
        let attempt = handshake(port, &["-brief", "-tls1_2", "-cipher", &cipher]).await?;
        if attempt.completed {
            ensure!(
                forward_secret_aead(suite),
                "a weak TLS 1.2 suite was agreed: {suite}"
            );
            agreed.push(suite.clone());
        }
    }
    ensure!(
        !agreed.is_empty(),
        "no TLS 1.2 suite was agreed at all (the check proves nothing)"
    );
    // No compression (CRIME): OpenSSL reports it in its full session printout.
    let full = handshake(port, &["-tls1_2"]).await?;
    ensure!(
        full.completed && full.field("Compression") == Some("NONE"),
        "TLS compression was not reported off:\n{}",
        full.output
    );
    eprintln!(
        "TLS-01: {} of {} TLS 1.2 suites agreed, all forward-secret AEAD: {}",
        agreed.len(),
        suites.len(),
        agreed.join(", ")
    );
    rig.gateway.stop().await
}
