//! A second handshake on an endpoint that has a live socket must not touch that socket
//! (catalogue TOP: one socket per endpoint): anyone who learns a live endpoint URL could
//! otherwise end a clinician's subscription with one handshake. The probe is refused with
//! 409 and the live socket keeps receiving, with its subscription intact, and nothing
//! reaches the log as an error. Two handshakes racing for a fresh endpoint: exactly one
//! wins.
//!
//! Before the fix, the probe replaced the live socket's fan-out registration: the first
//! test fails there at "live socket after the probes" (the socket ended with no close
//! frame and no SyncError).

use anyhow::{Context as _, Result, bail, ensure};

use super::{MSG, Rig};
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::{ConnectError, Subscriber};

/// Probes `endpoint` with a handshake that must be refused before any upgrade; returns
/// the status.
async fn probe(endpoint: &str) -> Result<u16> {
    match Subscriber::try_connect(endpoint).await {
        Err(ConnectError::Refused(status)) => Ok(status),
        Err(ConnectError::Other(error)) => Err(error.context("probing the live endpoint")),
        Ok(mut probe) => bail!(
            "the probe was upgraded and got {:?}",
            probe.next_incoming(MSG).await
        ),
    }
}

#[tokio::test]
async fn top_a_probe_of_a_live_endpoint_leaves_its_socket_alone() -> Result<()> {
    let rig = Rig::start().await?;
    let client = rig.client(&random_topic())?;
    let mut watcher = rig.subscriber(&client, "Patient-open,SyncError").await?;
    let mut live = rig.subscriber(&client, "Patient-open").await?;
    let logged_before = rig.gateway.process().stderr_text().len();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(probe(live.endpoint()).await?);
    }
    // The live socket's very next message is the next event: no denial, no close, no
    // silent end; the watcher hears no SyncError before the same event.
    for n in 0..3 {
        let event = patient_open(client.topic(), &format!("p-after-probe-{n}"));
        client.publish_ok(&event).await?;
        for (who, socket) in [("live socket", &mut live), ("watcher", &mut watcher)] {
            let next = socket
                .next_event(MSG)
                .await
                .with_context(|| format!("{who} after the probes"))?;
            ensure!(next["id"] == event["id"], "{who} got {next} first");
        }
    }
    // The subscription is intact: a re-subscribe naming it is accepted and confirmed on
    // the live socket.
    client
        .subscribe_with(
            "Patient-open,Patient-close",
            &[("hub.channel.endpoint", live.endpoint())],
        )
        .await?
        .expect(202, "re-subscribe of the probed endpoint")?;
    let confirmation = live.next_message(MSG).await?;
    ensure!(
        confirmation["hub.events"] == "Patient-open,Patient-close",
        "{confirmation}"
    );
    ensure!(
        statuses == [409; 3],
        "probes refused with {statuses:?}, expected 409"
    );
    let logs = rig.gateway.process().stderr_text();
    let logs = logs.get(logged_before..).unwrap_or_default();
    ensure!(
        !logs.contains("ERROR") && !logs.contains("WARN"),
        "the probes were logged as problems:\n{logs}"
    );
    ensure!(
        logs.matches("status=409").count() == 3,
        "each refused probe is logged once at info:\n{logs}"
    );
    drop((live, watcher));
    rig.gateway.stop().await
}

#[tokio::test]
async fn top_two_handshakes_racing_for_one_endpoint_attach_exactly_one() -> Result<()> {
    let rig = Rig::start().await?;
    for round in 0..5 {
        let client = rig.client(&random_topic())?;
        let endpoint = client.subscribe("Patient-open").await?;
        Box::pin(race_for_one_endpoint(
            &client,
            [&endpoint, &endpoint],
            round,
        ))
        .await?;
    }
    rig.gateway.stop().await
}

/// Two handshakes racing for one fresh endpoint of `client`'s topic, through `urls` (the
/// same endpoint, possibly through different gateways): exactly one attaches, the other is
/// refused with 409, and the winner is confirmed and receives the next event.
pub(super) async fn race_for_one_endpoint(
    client: &crate::client::HubClient,
    urls: [&str; 2],
    round: usize,
) -> Result<()> {
    let (first, second) = tokio::join!(
        Subscriber::try_connect(urls[0]),
        Subscriber::try_connect(urls[1])
    );
    let mut winners = Vec::new();
    for attempt in [first, second] {
        match attempt {
            Ok(socket) => winners.push(socket),
            Err(ConnectError::Refused(409)) => {}
            Err(ConnectError::Refused(status)) => {
                bail!("round {round}: the loser was refused with {status}, expected 409")
            }
            Err(ConnectError::Other(error)) => return Err(error),
        }
    }
    ensure!(
        winners.len() == 1,
        "round {round}: {} sockets attached",
        winners.len()
    );
    let mut winner = winners.remove(0);
    let confirmation = winner.next_message(MSG).await?;
    ensure!(confirmation["hub.mode"] == "subscribe", "{confirmation}");
    let event = patient_open(client.topic(), &format!("p-race-{round}"));
    client.publish_ok(&event).await?;
    let delivered = winner.next_event(MSG).await?;
    ensure!(delivered["id"] == event["id"], "{delivered}");
    Ok(())
}
