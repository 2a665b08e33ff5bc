//! A subscription lives for its lease, not for one socket (STU3: a subscriber that shuts
//! down unsubscribes over HTTP): after a socket closes, the endpoint can be attached again
//! within the re-attach window, and the re-attached socket gets what it missed, at least
//! once, with the original ids, in topic order. An abnormal close raises its SyncError only
//! if the subscriber does not come back within the reconnect grace; 1000, 1001 and a
//! code-less close never do. Ended endpoints answer a reconnect with a denial and a normal
//! close, so clients that retry forever stop; ids never issued are 404.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

use super::{MSG, Rig, expect_id, publish};
use crate::client::HubClient;
use crate::conformance::assert::{expect_denial_then_close, expect_event};
use crate::eventually::eventually;
use crate::payloads::{envelope, random_topic};
use crate::proxy::TcpProxy;
use crate::subscriber::{Ack, ConnectError, Subscriber};

const ACK_TIMEOUT: Duration = Duration::from_millis(800);
const GRACE: Duration = Duration::from_millis(2500);

async fn rig() -> Result<Rig> {
    Rig::start_with(|builder| builder.ack_timeout(ACK_TIMEOUT).reconnect_grace(GRACE)).await
}

/// Makes a subscriber refuse a marker event (409) and asserts the SyncError about it is
/// the watcher's next message: nothing else reached the watcher before it. The marker is a
/// proprietary event, which no replay precedes.
async fn marker_sync_error(rig: &Rig, client: &HubClient, watcher: &mut Subscriber) -> Result<()> {
    let mut refuser = rig.subscriber(client, "org.example.marker").await?;
    refuser.set_ack(Ack::Status(409));
    let marker = envelope(client.topic(), "org.example.marker", Vec::new());
    client.publish_ok(&marker).await?;
    let id = marker["id"].as_str().unwrap_or_default().to_owned();
    expect_event(&mut refuser, "org.example.marker", Some(&id)).await?;
    let next = watcher
        .next_event(MSG)
        .await
        .context("the marker SyncError")?;
    ensure!(
        next.to_string().contains(&id),
        "the watcher got another SyncError before the marker: {next}"
    );
    Ok(())
}

/// Asserts a handshake on `endpoint` is upgraded, sent a denial for `topic` whose reason
/// contains `reason`, and closed with 1000.
async fn expect_denied(endpoint: &str, topic: &str, reason: &str) -> Result<()> {
    let mut socket = Subscriber::connect(endpoint).await?;
    let denial = expect_denial_then_close(&mut socket, topic, MSG).await?;
    ensure!(
        denial["hub.reason"]
            .as_str()
            .is_some_and(|text| text.contains(reason)),
        "denial reason: {denial}"
    );
    Ok(())
}

#[tokio::test]
async fn reattach_after_a_dropped_connection_resends_what_was_missed() -> Result<()> {
    let rig = rig().await?;
    let client = rig.client(&random_topic())?;
    let mut watcher = rig.subscriber(&client, "SyncError").await?;
    let proxy = TcpProxy::start(rig.gateway.address()?).await?;
    let endpoint = client.subscribe("Patient-open").await?;
    let via_proxy = proxy.url_for(&endpoint);
    let mut app = Subscriber::connect_confirmed(&via_proxy, MSG).await?;
    let lease = app.confirmation()["hub.lease_seconds"]
        .as_u64()
        .unwrap_or(0);

    let acked = publish(&client, "acked").await?;
    expect_id(&mut app, &acked, "the acknowledged event").await?;
    app.set_ack(Ack::Silent);
    let unacked = publish(&client, "unacked").await?;
    expect_id(&mut app, &unacked, "the unacknowledged event").await?;

    proxy.cut_all();
    let mut missed = Vec::new();
    for n in 0..3 {
        missed.push(publish(&client, &format!("missed-{n}")).await?);
    }
    // The client comes back to the same endpoint (through the proxy, like an SDK would).
    let mut app = eventually("re-attach", MSG, || async {
        Ok(Subscriber::connect_confirmed(&via_proxy, MSG).await.ok())
    })
    .await?;
    let again = app.confirmation()["hub.lease_seconds"]
        .as_u64()
        .unwrap_or(u64::MAX);
    ensure!(again <= lease, "the lease restarted: {again} > {lease}");
    // What it had not acknowledged, then what it missed: original ids, topic order.
    expect_id(&mut app, &unacked, "the unacknowledged event, again").await?;
    for (n, id) in missed.iter().enumerate() {
        expect_id(&mut app, id, &format!("missed event {n}")).await?;
    }
    let live = publish(&client, "live").await?;
    expect_id(&mut app, &live, "a live event after the re-attach").await?;

    // Deliberately time-based: no SyncError may follow, neither for the drop (the app came
    // back within the grace) nor for the ack that was pending at the drop.
    tokio::time::sleep(GRACE + ACK_TIMEOUT).await;
    marker_sync_error(&rig, &client, &mut watcher).await?;
    drop((app, watcher));
    rig.gateway.stop().await
}

#[tokio::test]
async fn reattach_after_a_normal_close_and_twice_in_a_row() -> Result<()> {
    let rig = rig().await?;
    let client = rig.client(&random_topic())?;
    let endpoint = client.subscribe("Patient-open").await?;
    for round in 0..3 {
        // Until the hub has seen the previous close the endpoint is still in use (409).
        let mut app = eventually(&format!("attach {round}"), MSG, || async {
            Ok(Subscriber::connect_confirmed(&endpoint, MSG).await.ok())
        })
        .await?;
        let id = publish(&client, &format!("round-{round}")).await?;
        expect_id(&mut app, &id, "an event").await?;
        app.close(1000)?;
        app.expect_close(MSG).await?;
    }
    rig.gateway.stop().await
}

#[tokio::test]
async fn reattach_after_the_window_gets_a_denial_and_a_normal_close() -> Result<()> {
    let window = Duration::from_millis(400);
    let rig = Rig::start_with(|builder| builder.reattach_window(window)).await?;
    let client = rig.client(&random_topic())?;
    let endpoint = client.subscribe("Patient-open").await?;
    let app = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    app.drop_connection();
    // Deliberately time-based: the window passing is the behaviour under test.
    tokio::time::sleep(window * 3).await;
    expect_denied(&endpoint, client.topic(), "not resumed in time").await?;
    // A client that keeps retrying keeps getting the denial, never a 404.
    expect_denied(&endpoint, client.topic(), "not resumed in time").await?;
    rig.gateway.stop().await
}

#[tokio::test]
async fn reconnecting_to_an_ended_endpoint_gets_its_denial_and_unknown_ids_404() -> Result<()> {
    let rig = rig().await?;
    let client = rig.client(&random_topic())?;
    let mut app = rig.subscriber(&client, "Patient-open").await?;
    client
        .unsubscribe(app.endpoint())
        .await?
        .expect(202, "unsubscribe")?;
    let denial = app.next_message(MSG).await?;
    ensure!(denial["hub.mode"] == "denied", "{denial}");
    for _ in 0..3 {
        expect_denied(app.endpoint(), client.topic(), "unsubscribed").await?;
    }
    let (base, _) = app.endpoint().rsplit_once('/').unwrap_or_default();
    match Subscriber::try_connect(&format!("{base}/{}", random_topic())).await {
        Err(ConnectError::Refused(404)) => {}
        Err(ConnectError::Refused(status)) => bail!("unknown id refused with {status}"),
        Err(ConnectError::Other(error)) => return Err(error),
        Ok(_) => bail!("an id the hub never issued was upgraded"),
    }
    rig.gateway.stop().await
}

#[tokio::test]
async fn an_abnormal_close_raises_its_sync_error_only_after_the_grace() -> Result<()> {
    let rig = rig().await?;
    let client = rig.client(&random_topic())?;
    let mut watcher = rig.subscriber(&client, "SyncError").await?;
    // A SyncError names an event; on a topic that never carried one there is nothing to
    // be out of step with (and none is raised).
    publish(&client, "context").await?;

    // Comes back within the grace: no SyncError.
    let reply = client
        .subscribe_with("Patient-open", &[("subscriber.name", "Returning app")])
        .await?;
    let returning_endpoint = crate::client::endpoint_of(&reply)?;
    let returning = Subscriber::connect_confirmed(&returning_endpoint, MSG).await?;
    returning.close(4001)?;
    drop(returning);
    let _back = eventually("the app comes back", MSG, || async {
        Ok(Subscriber::connect_confirmed(&returning_endpoint, MSG)
            .await
            .ok())
    })
    .await?;

    // Never comes back: a SyncError naming it, no earlier than the grace.
    let reply = client
        .subscribe_with("Patient-open", &[("subscriber.name", "Vanished app")])
        .await?;
    let vanished = Subscriber::connect_confirmed(&crate::client::endpoint_of(&reply)?, MSG).await?;
    let dropped_at = Instant::now();
    vanished.drop_connection();
    let sync_error = watcher
        .next_event(GRACE + MSG)
        .await
        .context("no SyncError for the vanished app")?;
    let waited = dropped_at.elapsed();
    ensure!(
        sync_error.to_string().contains("Vanished app"),
        "the first SyncError is not about the vanished app: {sync_error}"
    );
    ensure!(
        waited >= GRACE - Duration::from_millis(100),
        "the SyncError came after {waited:?}, before the {GRACE:?} grace"
    );
    marker_sync_error(&rig, &client, &mut watcher).await?;
    rig.gateway.stop().await
}

#[tokio::test]
async fn normal_and_codeless_closes_raise_no_sync_error() -> Result<()> {
    let rig = rig().await?;
    let client = rig.client(&random_topic())?;
    let mut watcher = rig.subscriber(&client, "SyncError").await?;
    for code in [1000, 1001] {
        let app = rig.subscriber(&client, "Patient-open").await?;
        app.close(code)?;
    }
    // A close frame without a code (1005): what browsers' ws.close() and the Medplum SDK
    // 4.x disconnect() send.
    let endpoint = client.subscribe("Patient-open").await?;
    let (mut socket, _) = tokio_tungstenite::connect_async(endpoint.as_str()).await?;
    let confirmation = tokio::time::timeout(MSG, socket.next()).await?;
    ensure!(
        matches!(confirmation, Some(Ok(Message::Text(_)))),
        "{confirmation:?}"
    );
    socket.send(Message::Close(None)).await?;
    let answer = tokio::time::timeout(MSG, async {
        while let Some(frame) = socket.next().await {
            if let Ok(Message::Close(frame)) = frame {
                return Some(frame);
            }
        }
        None
    })
    .await?;
    ensure!(answer.is_some(), "the hub did not answer the close");
    // Deliberately time-based: a SyncError for these closes could only come after the grace.
    tokio::time::sleep(GRACE + Duration::from_millis(500)).await;
    marker_sync_error(&rig, &client, &mut watcher).await?;
    rig.gateway.stop().await
}
