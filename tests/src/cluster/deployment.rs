//! The Redis a test cluster runs on, whichever topology: one server, a primary with a
//! replica watched by three sentinels, or a three-master Redis Cluster. It hands the
//! members their `--redis-url` in the product's forms (`redis://`, `redis+sentinel://`,
//! `redis+cluster://`) and answers the harness's own reads (membership, lease holders)
//! wherever the keys live.

use anyhow::{Context as _, Result};

use crate::redis::{RedisCluster, RedisOptions, RedisSentinelSet, RedisServer};

/// Which Redis a cluster keeps its topics in.
#[derive(Debug, Clone)]
pub enum RedisTopology {
    /// One server with these options (AOF `appendfsync always` by default).
    Single(RedisOptions),
    /// A primary and a replica (AOF always) watched by three sentinels.
    Sentinel,
    /// Three masters in a Redis Cluster; topics use sharded pub/sub.
    Cluster,
}

impl Default for RedisTopology {
    fn default() -> Self {
        Self::Single(RedisOptions::new())
    }
}

/// A running Redis of some topology.
#[derive(Debug)]
pub enum RedisDeployment {
    /// One server.
    Single(Box<RedisServer>),
    /// A sentinel set.
    Sentinel(RedisSentinelSet),
    /// A Redis Cluster.
    Cluster(RedisCluster),
}

impl RedisDeployment {
    /// Starts Redis of `topology`.
    pub async fn start(topology: RedisTopology) -> Result<Self> {
        Ok(match topology {
            RedisTopology::Single(options) => {
                Self::Single(Box::new(RedisServer::start(options).await?))
            }
            RedisTopology::Sentinel => Self::Sentinel(RedisSentinelSet::start().await?),
            RedisTopology::Cluster => Self::Cluster(RedisCluster::start().await?),
        })
    }

    /// Returns the URL the members are given.
    pub fn url(&self) -> String {
        match self {
            Self::Single(server) => server.url(),
            Self::Sentinel(set) => {
                let sentinels: Vec<String> = set
                    .sentinel_addresses()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                format!(
                    "redis+sentinel://{}/{}",
                    sentinels.join(","),
                    set.master_name()
                )
            }
            Self::Cluster(cluster) => {
                let seeds: Vec<String> = cluster
                    .nodes()
                    .iter()
                    .map(|node| node.address().to_string())
                    .collect();
                format!("redis+cluster://{}", seeds.join(","))
            }
        }
    }

    /// Runs one command where its key lives (the current primary, or the slot's master).
    pub async fn query<T: ::redis::FromRedisValue>(&self, command: &::redis::Cmd) -> Result<T> {
        match self {
            Self::Single(server) => server.query(command).await,
            Self::Sentinel(set) => set.primary().await?.query(command).await,
            Self::Cluster(cluster) => {
                let mut connection = cluster.client()?.get_async_connection().await?;
                command
                    .query_async(&mut connection)
                    .await
                    .context("querying the Redis Cluster")
            }
        }
    }

    /// Runs commands one by one where each key lives (pipelined on one server).
    pub async fn query_each<T: ::redis::FromRedisValue>(
        &self,
        commands: &[::redis::Cmd],
    ) -> Result<Vec<T>> {
        if let Self::Single(server) = self {
            let mut pipe = ::redis::pipe();
            for command in commands {
                pipe.add_command(command.clone());
            }
            let mut connection = server.connection().await?;
            return pipe
                .query_async(&mut connection)
                .await
                .context("pipelined Redis reads");
        }
        let mut answers = Vec::with_capacity(commands.len());
        for command in commands {
            answers.push(self.query(command).await?);
        }
        Ok(answers)
    }

    /// Returns the first data server: the single server, the sentinel set's initial
    /// primary, or the first master of a Redis Cluster (for fault hooks).
    pub fn first_server(&self) -> &RedisServer {
        match self {
            Self::Single(server) => server,
            Self::Sentinel(set) => &set.servers()[0],
            Self::Cluster(cluster) => &cluster.nodes()[0],
        }
    }

    /// Returns the first data server, mutably (to kill or restart it).
    pub fn first_server_mut(&mut self) -> &mut RedisServer {
        match self {
            Self::Single(server) => server,
            Self::Sentinel(set) => &mut set.servers_mut()[0],
            Self::Cluster(cluster) => &mut cluster.nodes_mut()[0],
        }
    }

    /// Returns the sentinel set, for failover scenarios.
    pub fn sentinel_set(&self) -> Option<&RedisSentinelSet> {
        match self {
            Self::Sentinel(set) => Some(set),
            _ => None,
        }
    }

    /// Returns the sentinel set, mutably (to kill or restart its servers).
    pub fn sentinel_set_mut(&mut self) -> Option<&mut RedisSentinelSet> {
        match self {
            Self::Sentinel(set) => Some(set),
            _ => None,
        }
    }

    /// Returns the tail of the data servers' logs.
    pub fn logs_tail(&self) -> String {
        match self {
            Self::Single(server) => server.logs_tail(),
            Self::Sentinel(set) => set
                .servers()
                .iter()
                .map(RedisServer::logs_tail)
                .collect::<Vec<_>>()
                .join("\n"),
            Self::Cluster(cluster) => cluster
                .nodes()
                .iter()
                .map(RedisServer::logs_tail)
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// Stops every Redis process.
    pub async fn stop(self) -> Result<()> {
        match self {
            Self::Single(server) => (*server).stop().await,
            Self::Sentinel(set) => set.stop().await,
            Self::Cluster(cluster) => cluster.stop().await,
        }
    }
}
