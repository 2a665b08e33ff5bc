//! TOP-06 across gateways: two handshakes racing for one fresh endpoint through two
//! different gateways attach exactly one socket; the loser is refused with 409 and the
//! winner keeps receiving. (The same race on one gateway is in `second_handshake`.)

use std::time::Duration;

use anyhow::{Result, ensure};

use super::second_handshake::race_for_one_endpoint;
use crate::cluster::{Cluster, ClusterBuilder};
use crate::payloads::random_topic;

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
        Box::pin(race_for_one_endpoint(&client, [&on_gw0, &on_gw1], round)).await?;
    }
    eprintln!("TOP-06: {rounds} races across two gateways, one socket attached in each");
    Ok(())
}
