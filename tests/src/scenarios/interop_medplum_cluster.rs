//! The Medplum SDK interop scenario (`tests/interop/scenario.mjs`, see
//! [`interop_medplum`](super::interop_medplum)) against a cluster instead of the embedded
//! hub: 3 hub nodes and 2 gateways behind one public URL (the harness's round-robin front
//! door, as a Kubernetes Service), so the SDK's requests and sockets land on either gateway
//! in turn. Both SDK lines run the whole scenario (4.x on Node 20, 5.x on Node 24).
//!
//! Then FLT-02 with the real client (5.x, `SCENARIO_MODE=gateway-loss`): the app subscribes
//! and attaches while the front door routes to gw-0 only, so its socket is on gw-0; the
//! front door then lists both gateways again (a Service does not know yet that a pod died)
//! and gw-0 is killed with SIGKILL. The SDK notices the drop and reconnects on its own,
//! forever, through the public URL: attempts routed to the dead gw-0 are reset, attempts
//! reaching gw-1 are refused (409, the endpoint is still attached) until the nodes see gw-0
//! leave the membership (about 2 s), then the same endpoint re-attaches through gw-1. The
//! app keeps its subscription (no SyncError, no denial), receives the two events published
//! while it was away and then live ones. The reconnect time is printed.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::time::Instant;

use super::interop_medplum::{ACK_TIMEOUT, SCENARIO_DEADLINE, Sdk};
use crate::cluster::{Cluster, ClusterBuilder};
use crate::payloads::random_topic;

/// The gateway the app's socket is routed to, and killed.
const VICTIM: usize = 0;
/// The gateway that survives.
const SURVIVOR: usize = 1;

/// Three nodes, two gateways behind a front door, the scenario's hub settings.
async fn start_cluster() -> Result<Cluster> {
    ClusterBuilder::new()
        .nodes(3)
        .gateways(2)
        .front_door()
        .ack_timeout(ACK_TIMEOUT)
        .reconnect_grace(Duration::from_millis(1000))
        .configure_gateways(|gateway| gateway.arg("--base-path").arg("/api/hub,/fhircast/STU3"))
        .start()
        .await
}

fn public_url(cluster: &Cluster) -> Result<String> {
    cluster
        .public_url()
        .context("the cluster has no front door")
}

/// Runs the whole scenario for one SDK line against a fresh cluster.
async fn run_line(line: &'static str) -> Result<()> {
    let sdk = Sdk::locate(line).await?;
    let cluster = start_cluster().await?;
    let stdout = sdk
        .run_full(
            &public_url(&cluster)?,
            cluster.issuer(),
            ACK_TIMEOUT,
            || cluster.logs_tail(),
        )
        .await?;
    println!(
        "Medplum {line}.x on Node {} against a cluster behind {}:\n{stdout}",
        sdk.major,
        public_url(&cluster)?
    );
    cluster.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_medplum_sdk_4_on_node_20_against_a_cluster() -> Result<()> {
    run_line("4").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_medplum_sdk_5_on_node_24_against_a_cluster() -> Result<()> {
    run_line("5").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flt02_medplum_5_reattaches_through_the_front_door_after_its_gateway_dies() -> Result<()> {
    let sdk = Sdk::locate("5").await?;
    let mut cluster = start_cluster().await?;
    let outcome =
        match tokio::time::timeout(SCENARIO_DEADLINE, gateway_loss(&sdk, &mut cluster)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(anyhow!(
                "the gateway-loss scenario took longer than {SCENARIO_DEADLINE:?}"
            )),
        };
    if let Err(error) = outcome {
        return Err(error.context(cluster.logs_tail()));
    }
    cluster.stop().await
}

async fn gateway_loss(sdk: &Sdk, cluster: &mut Cluster) -> Result<()> {
    let victim = cluster.gateways()[VICTIM].address()?;
    let survivor = cluster.gateways()[SURVIVOR].address()?;
    // Until the app is attached, the public URL leads to gw-0 only: its socket is there.
    cluster
        .front_door()
        .context("the cluster has no front door")?
        .set_targets(&[victim]);
    let topic = random_topic();
    let mut command = sdk.command(
        &public_url(cluster)?,
        cluster.issuer(),
        &topic,
        ACK_TIMEOUT,
        &[("SCENARIO_MODE", "gateway-loss")],
    )?;
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().context("starting node")?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut stderr = child.stderr.take().context("no stderr")?;
    let stderr = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });

    let mut steps = Vec::new();
    let mut killed_at = None;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await.context("reading the scenario")? {
        let attached = killed_at.is_none() && step_of(&line).as_deref() == Some("g1.attach");
        steps.push(line);
        if attached {
            // A Service keeps listing a pod that just died: both gateways again.
            cluster
                .front_door()
                .context("the cluster has no front door")?
                .set_targets(&[victim, survivor]);
            cluster.kill_gateway(VICTIM).await?;
            killed_at = Some(Instant::now());
            stdin.write_all(b"killed\n").await?;
            stdin.flush().await?;
        }
    }
    let status = child.wait().await.context("waiting for node")?;
    let stderr = stderr.await.unwrap_or_default();
    let steps = steps.join("\n");
    if !status.success() {
        bail!(
            "Medplum 5.x gateway loss: scenario failed ({status})\n--- steps ---\n{steps}\n\
             --- node stderr ---\n{stderr}"
        );
    }
    ensure!(
        killed_at.is_some() && steps.contains("\"step\":\"done\",\"ok\":true"),
        "the scenario did not finish:\n{steps}"
    );
    let reconnect = steps
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|step| step["step"] == "g2.reconnect-after-gateway-loss")
        .context("no reconnect step")?;
    println!(
        "Medplum 5.x gateway loss: kill -9 of gw-{VICTIM} holding the socket; the SDK \
         re-attached its endpoint through the front door (gw-{SURVIVOR}) {} ms after the drop \
         ({} ms after the kill), kept its subscription and got what was published meanwhile \
         (publish attempts refused or reset while gw-{VICTIM} was dead: {}):\n{steps}",
        reconnect["reconnectMs"], reconnect["sinceKillMs"], reconnect["publishFailures"]
    );
    Ok(())
}

/// The `step` of one line of the scenario's output.
fn step_of(line: &str) -> Option<String> {
    let step: Value = serde_json::from_str(line).ok()?;
    if step["ok"] != true {
        return None;
    }
    step["step"].as_str().map(str::to_owned)
}
