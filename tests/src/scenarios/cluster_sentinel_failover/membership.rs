//! (c) Membership after a planned failover: no node takes a live gateway for gone.

use anyhow::{Result, ensure};
use fhircast_proto::redis_schema::Role;
use tokio::time::Instant;

use super::app::App;
use super::sentinel::sentinel_set;
use crate::cluster::Cluster;
use crate::payloads::random_topic;

/// What a node logs when it detaches the sockets of gateways it believes gone.
pub(super) const GATEWAYS_LEFT: &str = "gateways left the cluster";

/// How many planned failovers the membership scenario makes at most (it stops at the first
/// after which a node dropped a live gateway): whether a node reads the stale membership
/// first is a race each failover runs again.
pub(super) const MEMBERSHIP_FAILOVERS: usize = 3;

pub(super) async fn stale_membership(cluster: &mut Cluster) -> Result<()> {
    let topic = random_topic();
    // One socket through each gateway, so that the owner holds attachments of both.
    let first = App::start(cluster.client(0, &topic)?).await?;
    let second = App::start(cluster.client(1, &topic)?).await?;
    let mut failovers = Vec::new();
    let mut dropped = Vec::new();
    while dropped.is_empty() && failovers.len() < MEMBERSHIP_FAILOVERS {
        let commanded = Instant::now();
        sentinel_set(cluster)?.failover().await?;
        let settled = commanded.elapsed();
        wait_all_live(cluster).await?;
        failovers.push(format!(
            "settled {} ms after SENTINEL FAILOVER, every member live on the new primary \
             after {} ms",
            settled.as_millis(),
            commanded.elapsed().as_millis()
        ));
        dropped = cluster
            .nodes()
            .iter()
            .filter_map(|node| {
                let process = node.process()?;
                let text = process.stderr_text();
                let line = text.lines().find(|line| line.contains(GATEWAYS_LEFT))?;
                Some(format!("{}: {line}", node.id()))
            })
            .collect();
    }
    first.stop().await;
    second.stop().await;
    println!(
        "sentinel failover (membership): {} failovers ({}); {} of {} nodes dropped live \
         gateways",
        failovers.len(),
        failovers.join("; "),
        dropped.len(),
        cluster.nodes().len()
    );
    ensure!(
        dropped.is_empty(),
        "nodes detached the sockets of gateways that never left:\n{}",
        dropped.join("\n")
    );
    Ok(())
}

/// Waits until every node and gateway is live in the membership of the current primary.
pub(super) async fn wait_all_live(cluster: &Cluster) -> Result<()> {
    let nodes: Vec<String> = cluster
        .nodes()
        .iter()
        .map(|node| node.id().to_owned())
        .collect();
    let gateways: Vec<String> = (0..cluster.gateways().len())
        .map(|n| format!("gw-{n}"))
        .collect();
    cluster.wait_live(Role::Node, &nodes).await?;
    cluster.wait_live(Role::Gateway, &gateways).await
}
