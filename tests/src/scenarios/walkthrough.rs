//! The walkthroughs are promises to a newcomer: paste them and they work. These tests take
//! the walkthrough the gateway prints under `make run`, and the one in the README, and run
//! each verbatim with bash (only the hub's address and the listener's path point at this
//! build), then check what a person would see: the listener printing the confirmation and
//! the Patient-open, and the current context naming the patient.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};

use crate::eventually::eventually;
use crate::gateway::{Gateway, GatewayBuilder, gateway_binary};

/// How `make run` starts the listener in both walkthroughs.
const LISTENER_STEP: &str = "./target/release/fhircast-listen \"$EP\" &";

#[tokio::test]
async fn printed_walkthrough_works_when_pasted() -> Result<()> {
    let gateway = GatewayBuilder::new().dev_issuer().start().await?;
    let printed = gateway.process().stdout_text();
    let script = between(&printed, "  # 1.", "\nDiscovery:")?.to_owned();
    run_walkthrough(&gateway, &script).await?;
    gateway.stop().await
}

#[tokio::test]
async fn readme_walkthrough_works_when_pasted() -> Result<()> {
    let gateway = GatewayBuilder::new().dev_issuer().start().await?;
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&readme_path).context("README.md is readable")?;
    let section = between(&readme, "## A five-minute walkthrough", "\n## ")?;
    let block = between(section, "```sh\n", "```")?;
    let script = block
        .strip_prefix("```sh\n")
        .unwrap_or(block)
        .replace("http://127.0.0.1:8080", gateway.base_url());
    run_walkthrough(&gateway, &script).await?;
    gateway.stop().await
}

/// Returns the text from `start` (included) up to `end` (excluded).
fn between<'a>(text: &'a str, start: &str, end: &str) -> Result<&'a str> {
    let from = text
        .find(start)
        .with_context(|| format!("{start:?} not found"))?;
    let to = text[from + start.len()..]
        .find(end)
        .with_context(|| format!("{end:?} not found after {start:?}"))?;
    Ok(&text[from..from + start.len() + to])
}

/// Runs a walkthrough script and checks the listener's output and the final context.
async fn run_walkthrough(gateway: &Gateway, script: &str) -> Result<()> {
    let listener = gateway_binary()?.with_file_name("fhircast-listen");
    let workdir = gateway.process().dir().to_path_buf();
    let listener_out = workdir.join("listener.out");
    let pid_file = workdir.join("listener.pid");
    ensure!(
        script.contains(LISTENER_STEP),
        "the listener step changed shape:\n{script}"
    );
    let script = script.replace(
        LISTENER_STEP,
        &format!(
            "{} \"$EP\" > {} 2>&1 &\necho $! > {}",
            listener.display(),
            listener_out.display(),
            pid_file.display()
        ),
    );
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .current_dir(&workdir)
            .output(),
    )
    .await
    .context("the walkthrough did not finish")??;
    let seen = eventually(
        "the listener prints the confirmation and evt-1",
        Duration::from_secs(10),
        || {
            let out = std::fs::read_to_string(&listener_out).unwrap_or_default();
            async move {
                let done = out.contains("\"hub.mode\": \"subscribe\"") && out.contains("\"evt-1\"");
                Ok(done.then_some(()))
            }
        },
    )
    .await;
    // Stop the listener by its pid before judging, so a failure leaks no process.
    let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
    if !pid.trim().is_empty() {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "walkthrough failed: {stdout}\n{stderr}"
    );
    seen?;
    ensure!(
        stdout.contains("\"context.type\":\"Patient\"") && stdout.contains("pat-1"),
        "the last step did not show the patient: {stdout}"
    );
    Ok(())
}
