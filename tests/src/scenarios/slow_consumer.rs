//! Slow consumers (catalogue DOS-04): a socket that stops reading is cut once its bounded
//! outbox is full, never buffered without limit, while the topic's other subscribers keep
//! receiving every event in order. It is also cut long before that, while the kernel's
//! socket buffers still take every write, once it has stayed silent (no ack, no pong) for
//! the stall timeout after a notification was written to it, and it can then re-attach and
//! get what it missed; a subscriber that reads without acknowledging answers the stall
//! probe and stays, and an idle one is not stalled.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{MSG, Rig};
use crate::client::HubClient;
use crate::eventually::eventually;
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::{Ack, ConnectError, MAX_SILENCE, Subscriber};

/// Events published; their total (about 16 MB) exceeds what loopback TCP buffers hold.
const EVENTS: usize = 80;
/// Padding per event, under the 256 KiB body limit.
const PADDING: usize = 200_000;

#[tokio::test]
async fn dos_04_a_socket_that_stops_reading_is_cut_and_the_others_keep_up() -> Result<()> {
    let rig = Rig::start_with(|builder| builder.arg("--outbox-capacity").arg("4")).await?;
    let client = rig.client(&random_topic())?;
    let mut healthy = rig.subscriber(&client, "Patient-open").await?;
    let (mut slow, _) = stalled_subscriber(&client).await?;

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

/// The stall timeout of the stall scenarios.
const STALL: Duration = Duration::from_millis(1_000);
/// What the stall cut may take beyond the stall timeout (publish, scheduling, detach).
const STALL_MARGIN: Duration = Duration::from_millis(1_500);
/// The gateway line of a stall cut.
const STALL_CUT_LINE: &str = "closing a socket whose subscriber stopped reading";

/// A gateway with a 1 s stall timeout and an ack timeout far beyond the scenarios, so only
/// the stall watch can cut a socket.
async fn stall_rig() -> Result<Rig> {
    Rig::start_with(|builder| {
        builder
            .arg("--stall-timeout-ms")
            .arg(STALL.as_millis().to_string())
            .ack_timeout(Duration::from_secs(60))
    })
    .await
}

type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Subscribes to Patient-open and attaches a socket that reads its confirmation and then
/// nothing at all (so it sends nothing either, not even a pong); returns it and its
/// endpoint.
async fn stalled_subscriber(client: &HubClient) -> Result<(RawSocket, String)> {
    let endpoint = client.subscribe("Patient-open").await?;
    let (mut socket, _) = tokio_tungstenite::connect_async(endpoint.as_str())
        .await
        .context("stalled subscriber connects")?;
    let confirmation = tokio::time::timeout(MSG, socket.next())
        .await
        .context("stalled subscriber's confirmation")?;
    ensure!(
        matches!(confirmation, Some(Ok(Message::Text(_)))),
        "{confirmation:?}"
    );
    Ok((socket, endpoint))
}

/// Publishes a Patient-open for patient `label`; returns its id.
async fn publish(client: &HubClient, label: &str) -> Result<String> {
    let event = patient_open(client.topic(), label);
    client.publish_ok(&event).await?;
    Ok(event["id"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn dos_04_a_stalled_socket_is_cut_within_the_stall_timeout_and_resumes() -> Result<()> {
    let rig = stall_rig().await?;
    let client = rig.client(&random_topic())?;
    let (mut stalled, endpoint) = stalled_subscriber(&client).await?;

    // Events keep flowing to it (one per poll); the kernel buffers take them all, so only
    // the stall watch can notice. While its socket lives, the endpoint refuses a second
    // one (409); once it is cut, a new socket attaches.
    let started = tokio::time::Instant::now();
    let first = publish(&client, "p-stall-0").await?;
    let mut published = 1usize;
    let mut resumed = eventually("the stalled socket is cut", STALL + STALL_MARGIN, || {
        published += 1;
        let label = format!("p-stall-{published}");
        let (client, endpoint) = (&client, &endpoint);
        async move {
            publish(client, &label).await?;
            match Subscriber::try_connect(endpoint).await {
                Ok(subscriber) => Ok(Some(subscriber)),
                Err(ConnectError::Refused(409)) => Ok(None),
                Err(ConnectError::Refused(status)) => anyhow::bail!("re-attach refused: {status}"),
                Err(ConnectError::Other(error)) => Err(error),
            }
        }
    })
    .await?;
    let took = started.elapsed();
    ensure!(
        took >= STALL / 2,
        "cut after {took:?}, before the subscriber had half the stall timeout"
    );

    // The re-attached socket: confirmation, then everything from the first unacknowledged
    // event on, with the original ids.
    let confirmation = resumed.next_message(MSG).await?;
    ensure!(confirmation["hub.mode"] == "subscribe", "{confirmation}");
    let again = resumed
        .next_event(MSG)
        .await
        .context("what the stalled one missed")?;
    ensure!(
        again["id"] == first.as_str(),
        "resumed with {again}, not {first}"
    );

    // Reading the old socket now drains what the kernel held, then the hub's close: 1008.
    let close = tokio::time::timeout(MSG, async {
        while let Some(message) = stalled.next().await {
            match message {
                Ok(Message::Close(frame)) => return Ok(frame),
                Ok(_) => {}
                Err(error) => anyhow::bail!("no close frame: {error}"),
            }
        }
        anyhow::bail!("no close frame: the stream ended")
    })
    .await
    .context("draining the stalled socket")??;
    let frame = close.context("a close frame without a code")?;
    ensure!(u16::from(frame.code) == 1008, "closed with {frame:?}");
    ensure!(frame.reason.contains("stalled"), "closed with {frame:?}");
    drop(resumed);
    rig.gateway.stop().await
}

#[tokio::test]
async fn dos_04_a_subscriber_that_reads_but_never_acks_is_not_stalled() -> Result<()> {
    let rig = stall_rig().await?;
    let client = rig.client(&random_topic())?;
    // It reads everything (and so answers pings) but acknowledges nothing.
    let mut reader = rig.subscriber(&client, "Patient-open").await?;
    reader.set_ack(Ack::Silent);
    let started = tokio::time::Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(150));
    let mut index = 0usize;
    while started.elapsed() < STALL * 4 {
        pace.tick().await;
        let id = publish(&client, &format!("p-read-{index}")).await?;
        let delivered = reader
            .next_event(MSG)
            .await
            .with_context(|| format!("event {index}, {:?} in", started.elapsed()))?;
        ensure!(delivered["id"] == id.as_str(), "out of order at {index}");
        index += 1;
    }
    // Still the endpoint's live socket.
    match Subscriber::try_connect(reader.endpoint()).await {
        Err(ConnectError::Refused(409)) => {}
        Ok(_) => anyhow::bail!("the reading subscriber was detached"),
        Err(ConnectError::Refused(status)) => anyhow::bail!("second socket got {status}"),
        Err(ConnectError::Other(error)) => return Err(error),
    }
    let logs = rig.gateway.process().stderr_text();
    ensure!(!logs.contains(STALL_CUT_LINE), "a stall cut was logged");
    drop(reader);
    rig.gateway.stop().await
}

#[tokio::test]
async fn dos_04_a_healthy_subscriber_keeps_everything_while_another_stalls() -> Result<()> {
    let rig = stall_rig().await?;
    let client = rig.client(&random_topic())?;
    let mut healthy = rig.subscriber(&client, "Patient-open").await?;
    let (_stalled, _) = stalled_subscriber(&client).await?;

    // Every event reaches the healthy subscriber, in order, until the stalled one is cut.
    let mut index = 0usize;
    let mut cut = false;
    let deadline = tokio::time::Instant::now() + STALL + STALL_MARGIN;
    // Paced under the per-client rate limit.
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    while !cut {
        pace.tick().await;
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the stalled socket was not cut within {:?}",
            STALL + STALL_MARGIN
        );
        let id = publish(&client, &format!("p-healthy-{index}")).await?;
        let delivered = healthy
            .next_event(MSG)
            .await
            .with_context(|| format!("healthy subscriber, event {index}"))?;
        ensure!(
            delivered["id"] == id.as_str(),
            "healthy out of order at {index}"
        );
        index += 1;
        cut = rig.gateway.process().stderr_text().contains(STALL_CUT_LINE);
    }

    // Idle for longer than the stall timeout: waiting for nothing is not stalling.
    let quiet = tokio::time::Instant::now();
    while quiet.elapsed() < STALL * 2 {
        healthy
            .expect_silence(MAX_SILENCE)
            .await
            .context("the healthy subscriber while idle")?;
    }
    let id = publish(&client, "p-after-quiet").await?;
    let delivered = healthy
        .next_event(MSG)
        .await
        .context("the healthy subscriber after an idle stretch")?;
    ensure!(delivered["id"] == id.as_str(), "{delivered}");
    let cuts = rig
        .gateway
        .process()
        .stderr_text()
        .matches(STALL_CUT_LINE)
        .count();
    ensure!(
        cuts == 1,
        "{cuts} stall cuts logged, expected only the stalled socket's"
    );
    drop(healthy);
    rig.gateway.stop().await
}
