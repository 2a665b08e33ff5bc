//! Slow consumers (catalogue DOS-04): a socket that stops reading is cut once its bounded
//! outbox is full, never buffered without limit, while the topic's other subscribers keep
//! receiving every event in order.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{MSG, Rig};
use crate::payloads::{patient_open, random_topic};

/// Events published; their total (about 16 MB) exceeds what loopback TCP buffers hold.
const EVENTS: usize = 80;
/// Padding per event, under the 256 KiB body limit.
const PADDING: usize = 200_000;

#[tokio::test]
async fn dos_04_a_socket_that_stops_reading_is_cut_and_the_others_keep_up() -> Result<()> {
    let rig = Rig::start_with(|builder| builder.arg("--outbox-capacity").arg("4")).await?;
    let client = rig.client(&random_topic())?;
    let mut healthy = rig.subscriber(&client, "Patient-open").await?;
    let slow_endpoint = client.subscribe("Patient-open").await?;
    let (mut slow, _) = tokio_tungstenite::connect_async(slow_endpoint.as_str())
        .await
        .context("slow subscriber connects")?;
    let confirmation = tokio::time::timeout(MSG, slow.next())
        .await
        .context("slow subscriber's confirmation")?;
    ensure!(
        matches!(confirmation, Some(Ok(Message::Text(_)))),
        "{confirmation:?}"
    );

    // From here on the slow subscriber reads nothing.
    let padding = "x".repeat(PADDING);
    for index in 0..EVENTS {
        let mut event = patient_open(client.topic(), &format!("p-{index}"));
        event["event"]["context"][0]["resource"]["text"] =
            json!({"status": "generated", "div": padding});
        client.publish_ok(&event).await?;
        let delivered = healthy
            .next_event(MSG)
            .await
            .with_context(|| format!("healthy subscriber, event {index}"))?;
        ensure!(
            delivered["id"] == event["id"],
            "healthy subscriber out of order at {index}"
        );
    }

    // Reading now drains what the kernel buffered, then the connection must end.
    let mut received = 0usize;
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(message) = slow.next().await {
            match message {
                Ok(Message::Text(_)) => received += 1,
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    ensure!(drained.is_ok(), "the slow socket was never cut");
    ensure!(
        received < EVENTS,
        "the slow socket received all {received} events: it was buffered, not cut"
    );
    rig.gateway.stop().await
}
