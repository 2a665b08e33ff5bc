//! The load generator against a real embedded gateway with its dev issuer: a small fanout
//! (2 topics × 20 subscribers, three rates: a few hundred deliveries), a tiny storm and a
//! short publish run. Each must exit 0, and the fanout's JSON lines must show every
//! expected delivery received exactly once, in order. No timing is asserted.
//!
//! `fhircast-loadgen` comes from `LOADGEN_BIN`, else `<target dir>/debug/fhircast-loadgen`
//! (`make test` builds every workspace binary first).

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use hub_tests::gateway::{Gateway, GatewayBuilder};
use hub_tests::process::{Process, target_binary};
use hub_tests::scratch::Scratch;
use serde_json::Value;

/// The gateway's ack timeout: short, so a notification the generator failed to ack comes
/// back as a SyncError within the fanout run (steps of 1 s), yet far above a debug
/// gateway's ack round trip on loopback.
const ACK_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long one generator run may take (it caps itself with --max-seconds below this).
const RUN_DEADLINE: Duration = Duration::from_secs(90);

async fn gateway() -> Result<Gateway> {
    GatewayBuilder::new()
        .dev_issuer()
        .arg("--rate-limit-per-second=0")
        .arg("--max-subscriptions-per-client=1000")
        .arg("--max-unattached-per-client=1000")
        .arg(format!("--ack-timeout-ms={}", ACK_TIMEOUT.as_millis()))
        .start()
        .await
}

/// Runs the generator to its end; returns its exit code and its JSON lines.
async fn loadgen(
    gateway: &Gateway,
    scratch: &Scratch,
    name: &str,
    args: &[&str],
) -> Result<(i32, Vec<Value>)> {
    let binary = target_binary("LOADGEN_BIN", "fhircast-loadgen")?;
    let json_out = scratch.join(format!("{name}.jsonl"));
    let mut command = vec![
        "--hub-url".to_owned(),
        gateway.hub_url(),
        "--json-out".to_owned(),
        json_out.display().to_string(),
        "--watch-pid".to_owned(),
        gateway.process().pid().to_string(),
        "--max-seconds".to_owned(),
        "60".to_owned(),
        "--quiet".to_owned(),
    ];
    command.extend(args.iter().map(|arg| (*arg).to_owned()));
    let mut process = Process::spawn(name, &binary, &command)?;
    let status = process.wait_exit(RUN_DEADLINE).await?;
    let code = status.code().unwrap_or(-1);
    let text = std::fs::read_to_string(&json_out).unwrap_or_default();
    let lines = text
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("result line `{line}`")))
        .collect::<Result<Vec<Value>>>()?;
    if code != 0 {
        anyhow::bail!(
            "{name} exited {code}\nresults: {text}\n{}",
            process.logs_tail()
        );
    }
    Ok((code, lines))
}

#[tokio::test]
async fn loadgen_smoke_delivers_every_event_once_in_order() -> Result<()> {
    let gateway = gateway().await?;
    let scratch = Scratch::new("loadgen")?;

    let (_, steps) = loadgen(
        &gateway,
        &scratch,
        "loadgen-fanout",
        &[
            "fanout",
            "--topics=2",
            "--subscribers-per-topic=20",
            "--rates=5,10,20",
            "--step-seconds=1",
            "--warmup-seconds=0.2",
            "--connect-in-flight=10",
        ],
    )
    .await?;
    ensure!(steps.len() == 3, "three fanout steps: {steps:?}");
    let mut total = 0;
    for step in &steps {
        let deliveries = &step["deliveries"];
        let expected = deliveries["expected"].as_u64().unwrap_or_default();
        ensure!(expected > 0, "nothing expected: {step}");
        ensure!(
            deliveries["received"].as_u64() == Some(expected),
            "received != expected: {step}"
        );
        for check in ["lost", "duplicated", "reordered"] {
            ensure!(
                deliveries[check].as_u64() == Some(0),
                "{check} != 0: {step}"
            );
        }
        ensure!(
            step["publishes"]["failed"].as_u64() == Some(0),
            "failed publishes: {step}"
        );
        total += expected;
    }
    ensure!(total >= 200, "only {total} deliveries expected");

    let (_, steps) = loadgen(
        &gateway,
        &scratch,
        "loadgen-storm",
        &["storm", "--subscriptions=30", "--in-flight=5", "--topics=3"],
    )
    .await?;
    ensure!(
        steps.len() == 1 && steps[0]["connect"]["bound"].as_u64() == Some(30),
        "storm: {steps:?}"
    );

    let (_, steps) = loadgen(
        &gateway,
        &scratch,
        "loadgen-publish",
        &[
            "publish",
            "--connections=2",
            "--seconds=1",
            "--topics=2",
            "--rate=50",
        ],
    )
    .await?;
    ensure!(
        steps.len() == 1
            && steps[0]["publishes"]["accepted"]
                .as_u64()
                .is_some_and(|n| n > 0)
            && steps[0]["publishes"]["failed"].as_u64() == Some(0),
        "publish: {steps:?}"
    );
    gateway.stop().await
}
