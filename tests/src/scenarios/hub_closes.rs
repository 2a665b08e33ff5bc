//! Closes the hub makes never raise a SyncError (2-5 reserves SyncErrors for subscribers
//! that refuse, fail or vanish): unsubscribing, lease expiry and an oversized frame end a
//! socket, and a SyncError subscriber of the same topic hears nothing about it.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};

use super::{MSG, Rig, SILENCE};
use crate::client::endpoint_of;
use crate::payloads::random_topic;
use crate::subscriber::Subscriber;

#[tokio::test]
async fn hub_initiated_closes_raise_no_sync_error() -> Result<()> {
    let rig = Rig::start().await?;
    let client = rig.client(&random_topic())?;
    let mut watcher = rig.subscriber(&client, "SyncError").await?;

    let unsubscribed = rig.subscriber(&client, "Patient-open").await?;
    client
        .unsubscribe(unsubscribed.endpoint())
        .await?
        .expect(202, "unsubscribe")?;

    let reply = client
        .subscribe_with("Patient-open", &[("hub.lease_seconds", "1")])
        .await?;
    let mut leased = Subscriber::connect_confirmed(&endpoint_of(&reply)?, MSG).await?;
    let denial = leased
        .next_message(Duration::from_secs(5))
        .await
        .context("no denial at lease end")?;
    ensure!(denial["hub.mode"] == "denied", "{denial}");

    let mut oversized = rig.subscriber(&client, "Patient-open").await?;
    oversized.send_text(&"x".repeat(70 * 1024))?;
    let code = oversized.expect_close(MSG).await?;
    ensure!(code == Some(1009), "oversized frame closed with {code:?}");

    watcher
        .expect_silence(SILENCE)
        .await
        .context("a hub-initiated close raised a SyncError")?;
    rig.gateway.stop().await
}
