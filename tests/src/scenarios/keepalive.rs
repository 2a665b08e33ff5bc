//! Keepalive and expiry on live sockets: the hub pings, a client that answers stays
//! connected, a silent one is cut after two ping intervals and, once it has not come back
//! within the reconnect grace, a SyncError names it (catalogue DOS-03); a socket ends with
//! a denial when its token expires (AUZ-09).

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::{MSG, Rig};
use crate::client::{HubClient, endpoint_of};
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::Subscriber;
use crate::token::ALL_SCOPES;

const PING_MS: &str = "150";

#[tokio::test]
async fn dos_03_a_client_that_answers_pings_stays_connected() -> Result<()> {
    let rig = Rig::start_with(|builder| builder.arg("--ping-interval-ms").arg(PING_MS)).await?;
    let client = rig.client(&random_topic())?;
    let endpoint = client.subscribe("Patient-open").await?;
    let (mut socket, _) = tokio_tungstenite::connect_async(endpoint.as_str()).await?;
    // Reading lets tungstenite answer each ping with a pong.
    let mut pings = 0;
    tokio::time::timeout(Duration::from_secs(10), async {
        while pings < 6 {
            match socket.next().await {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(_)) => {}
                other => anyhow::bail!("socket ended after {pings} pings: {other:?}"),
            }
        }
        Ok(())
    })
    .await
    .context("six pings did not arrive")??;
    let event = patient_open(client.topic(), "p-alive");
    client.publish_ok(&event).await?;
    let delivered = tokio::time::timeout(MSG, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
                Some(Ok(_)) => {}
                other => anyhow::bail!("socket ended: {other:?}"),
            }
        }
    })
    .await
    .context("no delivery after six ping intervals")??;
    ensure!(delivered.contains("p-alive"), "{delivered}");
    rig.gateway.stop().await
}

#[tokio::test]
async fn dos_03_a_silent_client_is_cut_with_a_sync_error() -> Result<()> {
    let rig = Rig::start_with(|builder| {
        builder
            .arg("--ping-interval-ms")
            .arg(PING_MS)
            .reconnect_grace(Duration::from_millis(300))
    })
    .await?;
    let client = rig.client(&random_topic())?;
    let mut watcher = rig.subscriber(&client, "SyncError").await?;
    // An open context: the silent client gets it replayed and never acknowledges it.
    let open = patient_open(client.topic(), "p-unheard");
    client.publish_ok(&open).await?;
    let reply = client
        .subscribe_with("Patient-open", &[("subscriber.name", "Silent Viewer")])
        .await?;
    let (mut silent, _) = tokio_tungstenite::connect_async(endpoint_of(&reply)?.as_str()).await?;
    let confirmation = tokio::time::timeout(MSG, silent.next()).await?;
    ensure!(
        matches!(confirmation, Some(Ok(Message::Text(_)))),
        "{confirmation:?}"
    );
    // From here the client reads nothing, so it answers no ping.
    let sync_error = watcher
        .next_event(MSG)
        .await
        .context("no SyncError for the silent client")?;
    ensure!(
        sync_error["event"]["hub.event"] == "SyncError",
        "{sync_error}"
    );
    ensure!(
        sync_error.to_string().contains("Silent Viewer"),
        "the SyncError does not name the silent subscriber: {sync_error}"
    );
    ensure!(
        sync_error
            .to_string()
            .contains(open["id"].as_str().unwrap_or("-")),
        "the SyncError is not about the unacknowledged event: {sync_error}"
    );
    drop(silent);
    rig.gateway.stop().await
}

#[tokio::test]
async fn auz_09_the_socket_ends_with_a_denial_when_the_token_expires() -> Result<()> {
    let rig = Rig::start().await?;
    let topic = random_topic();
    let token = rig.issuer.mint(&topic, ALL_SCOPES, 5)?;
    let client = HubClient::new(&rig.gateway.hub_url(), &topic, Some(token));
    let reply = client
        .subscribe_with("Patient-open", &[("hub.lease_seconds", "7200")])
        .await?;
    let mut subscriber = Subscriber::connect_confirmed(&endpoint_of(&reply)?, MSG).await?;
    let lease = subscriber.confirmation()["hub.lease_seconds"]
        .as_u64()
        .unwrap_or(u64::MAX);
    ensure!(lease <= 5, "lease {lease} outlives a 5 s token");
    let denial = subscriber
        .next_message(Duration::from_secs(10))
        .await
        .context("no denial at token expiry")?;
    ensure!(denial["hub.mode"] == "denied", "{denial}");
    let code = subscriber.expect_close(MSG).await?;
    ensure!(code == Some(1000), "closed with {code:?}");
    rig.gateway.stop().await
}
