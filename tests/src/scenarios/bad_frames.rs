//! Bogus subscriber frames on the WebSocket: malformed or unknown acks are ignored and the
//! subscription keeps working; an oversized frame closes that socket with 1009 only.

use anyhow::{Context as _, Result, ensure};
use serde_json::json;

use super::{MSG, SILENCE, Stage};
use crate::payloads::patient_open;
use crate::subscriber::{Ack, Subscriber};

/// Consumes the replay of the stage's Patient-open that every new subscriber gets first.
async fn expect_replay(subscriber: &mut Subscriber) -> Result<()> {
    let replay = subscriber
        .next_event(MSG)
        .await
        .context("replay of the staged Patient-open")?;
    ensure!(
        replay.pointer("/event/context/0/resource/id") == Some(&json!("p-stage")),
        "unexpected first event {replay}"
    );
    Ok(())
}

#[tokio::test]
async fn inp_ws_bogus_acks_are_ignored() -> Result<()> {
    let mut stage = Stage::start().await?;
    let mut subscriber = stage.rig.subscriber(&stage.client, "Patient-open").await?;
    expect_replay(&mut subscriber).await?;
    subscriber.set_ack(Ack::Silent);
    let open = patient_open(stage.topic(), "p-ack");
    stage.client.publish_ok(&open).await?;
    let id = open["id"].as_str().context("id")?;
    subscriber.next_event(MSG).await?;
    stage.watcher.next_event(MSG).await?;
    for frame in [
        "not json".to_owned(),
        "{\"id\":\"unknown-id\",\"status\":200}".to_owned(),
        format!("{{\"id\":\"{id}\",\"status\":\"abc\"}}"),
        format!("{{\"id\":\"{id}\"}}"),
        "{\"status\":200}".to_owned(),
        "[1,2,3]".to_owned(),
    ] {
        subscriber.send_text(&frame)?;
    }
    subscriber.send_text(&json!({"id": id, "status": 200}).to_string())?;
    subscriber.set_ack(Ack::Status(200));
    let next = patient_open(stage.topic(), "p-ack-2");
    stage.client.publish_ok(&next).await?;
    let received = subscriber
        .next_event(MSG)
        .await
        .context("subscription stopped working")?;
    ensure!(received["id"] == next["id"], "unexpected {received}");
    stage.watcher.next_event(MSG).await?;
    stage.before = stage.client.context().await?;
    subscriber.expect_silence(SILENCE).await?;
    stage.finish().await
}

#[tokio::test]
async fn inp_ws_oversized_frame_closes_1009() -> Result<()> {
    let mut stage = Stage::start().await?;
    let mut subscriber = stage.rig.subscriber(&stage.client, "Patient-open").await?;
    expect_replay(&mut subscriber).await?;
    subscriber.send_text(&"x".repeat(64 * 1024 + 1))?;
    let code = subscriber.expect_close(MSG).await?;
    ensure!(code == Some(1009), "closed with {code:?}, expected 1009");
    // A hub-initiated close never produces a SyncError; finish() checks the watcher is silent.
    stage.before = stage.client.context().await?;
    stage.finish().await
}
