//! A Redis Cluster: three masters without replicas (`cluster-enabled yes`, each with its
//! own config file, data directory and cluster bus port), joined by
//! `redis-cli --cluster create` so that the 16384 slots are spread over the three.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use tokio::process::Command;

use super::server::Mode;
use super::{RedisOptions, RedisServer, START_DEADLINE, binary, info_field, stop_all};
use crate::eventually::eventually;

/// How many masters the cluster has.
const MASTERS: usize = 3;
/// How long `redis-cli --cluster create` may take.
const CREATE_DEADLINE: Duration = Duration::from_secs(60);

/// Three cluster masters on loopback, all slots assigned.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes, creates the cluster and waits until every node reports
    /// `cluster_state:ok` and knows the two others.
    pub async fn start() -> Result<Self> {
        let mut nodes = Vec::with_capacity(MASTERS);
        for _ in 0..MASTERS {
            nodes
                .push(RedisServer::start(RedisOptions::ephemeral().mode(Mode::ClusterNode)).await?);
        }
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(nodes.iter().map(|node| node.address().to_string()));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(str::to_owned));
        let output = tokio::time::timeout(
            CREATE_DEADLINE,
            Command::new(binary("redis-cli")?)
                .args(&args)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .context("redis-cli --cluster create did not finish in time")?
        .context("running redis-cli --cluster create")?;
        ensure!(
            output.status.success(),
            "redis-cli --cluster create failed with {}:\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes };
        eventually(
            "the cluster reports ok on every node",
            START_DEADLINE,
            || async { cluster.check_ok().await.map(Some) },
        )
        .await?;
        Ok(cluster)
    }

    /// Returns the nodes' URLs, to seed a cluster client.
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Returns a cluster client seeded with every node.
    pub fn client(&self) -> Result<::redis::cluster::ClusterClient> {
        ::redis::cluster::ClusterClient::new(self.seed_urls()).context("building a cluster client")
    }

    /// Returns the three nodes.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Returns the three nodes, for fault injection.
    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// Checks `CLUSTER INFO` on every node: `cluster_state:ok`, all three nodes known.
    pub async fn check_ok(&self) -> Result<()> {
        let known = MASTERS.to_string();
        for node in &self.nodes {
            let mut command = ::redis::cmd("CLUSTER");
            command.arg("INFO");
            let info: String = node.query(&command).await?;
            ensure!(
                info_field(&info, "cluster_state") == Some("ok")
                    && info_field(&info, "cluster_known_nodes") == Some(known.as_str()),
                "{} is not in an ok cluster of {MASTERS}:\n{info}",
                node.address()
            );
        }
        Ok(())
    }

    /// Stops every node gracefully.
    pub async fn stop(self) -> Result<()> {
        stop_all(self.nodes).await
    }
}
