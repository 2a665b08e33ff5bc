//! TOP-06 across gateways: two handshakes racing for one fresh endpoint through two
//! different gateways attach exactly one socket; the loser is refused with 409 and the
//! winner keeps receiving. (The same race on one gateway is in `second_handshake`.)

use std::time::Duration;

use anyhow::{Result, bail, ensure};

use super::MSG;
use crate::cluster::{Cluster, ClusterBuilder};
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::{ConnectError, Subscriber};

/// The whole scenario, cluster start and stop included.
const BUDGET: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_06_handshakes_racing_through_two_gateways_attach_exactly_one() -> Result<()> {
    let cluster = ClusterBuilder::new().gateways(2).start().await?;
    let rounds = crate::faults::cycles().max(20);
    let outcome = Box::pin(tokio::time::timeout(BUDGET, races(&cluster, rounds))).await;
    let outcome = outcome.unwrap_or_else(|_| Err(anyhow::anyhow!("took longer than {BUDGET:?}")));
    if let Err(error) = outcome {
        return Err(error.context(cluster.logs_tail()));
    }
    cluster.stop().await
}

async fn races(cluster: &Cluster, rounds: usize) -> Result<()> {
    let (gw0, gw1) = (cluster.gateway_address(0)?, cluster.gateway_address(1)?);
    for round in 0..rounds {
        let client = cluster.client(0, &random_topic())?;
        let on_gw0 = client.subscribe("Patient-open").await?;
        let on_gw1 = on_gw0.replace(&gw0.to_string(), &gw1.to_string());
        ensure!(
            on_gw1 != on_gw0,
            "the endpoint does not name gateway 0: {on_gw0}"
        );
        let (first, second) = tokio::join!(
            Subscriber::try_connect(&on_gw0),
            Subscriber::try_connect(&on_gw1)
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
    }
    eprintln!("TOP-06: {rounds} races across two gateways, one socket attached in each");
    Ok(())
}
