//! LOG-01 canary: a cluster (2 hub nodes, 2 gateways) at debug level carries a topic, tokens
//! and patient data made of recognisable canaries through every path a client can take —
//! subscribe, attach, publish, get context, unsubscribe, a refused token, a malformed
//! event, a denied handshake — and no process's log (stdout or stderr) holds any of them:
//! topics appear only as refs, tokens and PHI never.

use anyhow::{Result, ensure};
use serde_json::json;

use super::MSG;
use crate::cluster::ClusterBuilder;
use crate::subscriber::Subscriber;

/// Every canary carries this marker, so one search finds any of them.
const MARKER: &str = "CANARYx7Q";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_01_no_topic_token_or_phi_reaches_any_log() -> Result<()> {
    let cluster = ClusterBuilder::new()
        .nodes(2)
        .gateways(2)
        .configure_nodes(|node| node.env("RUST_LOG", "debug"))
        .configure_gateways(|gateway| gateway.env("RUST_LOG", "debug"))
        .start()
        .await?;
    let topic = format!("topic-{MARKER}-{}", crate::payloads::random_topic());
    let publisher = cluster.client(1, &topic)?;
    let token = cluster
        .issuer()
        .mint(&topic, crate::token::ALL_SCOPES, 3600)?;

    let endpoint = cluster.client(0, &topic)?.subscribe("Patient-open").await?;
    let mut subscriber = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    let event = json!({
        "timestamp": "2026-01-01T00:00:00Z",
        "id": format!("event-{MARKER}"),
        "event": {
            "hub.topic": topic,
            "hub.event": "Patient-open",
            "context": [{
                "key": "patient",
                "resource": {
                    "resourceType": "Patient",
                    "id": format!("patient-{MARKER}"),
                    "name": [{"family": format!("Doe{MARKER}"), "given": ["Jane"]}],
                    "identifier": [{"system": "urn:mrn", "value": format!("MRN-{MARKER}")}]
                }
            }]
        }
    });
    publisher.publish_ok(&event).await?;
    crate::conformance::assert::expect_event(&mut subscriber, "Patient-open", event["id"].as_str())
        .await?;
    publisher.context().await?;

    // Refusals carry the canaries too: a forged token, a malformed event, a wrong endpoint.
    let forged = format!("{token}{MARKER}");
    let _ = publisher.with_token(Some(forged)).publish(&event).await?;
    let mut malformed = event.clone();
    malformed["event"]["context"] = json!(format!("not-a-context-{MARKER}"));
    let _ = publisher.publish(&malformed).await?;
    let _ = Subscriber::try_connect(&format!("{endpoint}{MARKER}")).await;
    publisher.unsubscribe(&endpoint).await?;
    drop(subscriber);

    let mut hits = Vec::new();
    let secrets = [MARKER, token.as_str(), topic.as_str()];
    let logs: Vec<(String, String)> = cluster
        .member_processes()
        .into_iter()
        .map(|(name, process)| {
            (
                name,
                format!("{}\n{}", process.stdout_text(), process.stderr_text()),
            )
        })
        .collect();
    let lines: usize = logs.iter().map(|(_, text)| text.lines().count()).sum();
    for (name, text) in &logs {
        for line in text.lines() {
            if secrets.iter().any(|secret| line.contains(secret)) {
                hits.push(format!("{name}: {line}"));
            }
        }
    }
    println!(
        "LOG-01: {lines} log lines from 4 processes at debug level, {} hits",
        hits.len()
    );
    ensure!(
        hits.is_empty(),
        "canaries in the logs:\n{}",
        hits.join("\n")
    );
    cluster.stop().await
}
