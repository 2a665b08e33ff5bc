//! A sentinel-managed Redis: one primary, one replica and three sentinels monitoring
//! [`MASTER_NAME`] with quorum 2 (`down-after-milliseconds 1000`, `failover-timeout 3000`).
//!
//! Roles change on failover, so the set keeps its two data servers in start order and asks
//! the sentinels which one is the primary. Each sentinel has its own config file, which it
//! rewrites as it learns the topology.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail, ensure};

use super::server::Mode;
use super::{RedisOptions, RedisServer, START_DEADLINE, info_field, stop_all};
use crate::eventually::eventually;

/// The master name the sentinels monitor.
pub const MASTER_NAME: &str = "fhircast";
/// How many sentinels must agree the primary is down.
const QUORUM: u8 = 2;
/// How many sentinels the set runs.
const SENTINELS: usize = 3;
/// How long a failover may take, from `SENTINEL FAILOVER` to a settled set.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);

/// A primary, a replica and three sentinels, all on loopback.
#[derive(Debug)]
pub struct RedisSentinelSet {
    servers: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
}

impl RedisSentinelSet {
    /// Starts the set and waits until it is settled: every sentinel names the primary and
    /// knows the replica (in sync) and the two other sentinels.
    pub async fn start() -> Result<Self> {
        let primary = RedisServer::start(RedisOptions::ephemeral()).await?;
        let replica =
            RedisServer::start(RedisOptions::ephemeral().replica_of(primary.address())).await?;
        let mut sentinels = Vec::with_capacity(SENTINELS);
        for _ in 0..SENTINELS {
            let options = RedisOptions::new()
                .mode(Mode::Sentinel)
                .directive(&format!(
                    "sentinel monitor {MASTER_NAME} 127.0.0.1 {} {QUORUM}",
                    primary.port()
                ))
                .directive(&format!(
                    "sentinel down-after-milliseconds {MASTER_NAME} 1000"
                ))
                .directive(&format!("sentinel failover-timeout {MASTER_NAME} 3000"));
            sentinels.push(RedisServer::start(options).await?);
        }
        let set = Self {
            servers: vec![primary, replica],
            sentinels,
        };
        let (primary, replica) = (set.servers[0].address(), set.servers[1].address());
        eventually("the sentinel set settles", START_DEADLINE, || async {
            set.check_settled(primary, replica).await.map(Some)
        })
        .await?;
        Ok(set)
    }

    /// Returns the master name the sentinels monitor ([`MASTER_NAME`]).
    pub fn master_name(&self) -> &'static str {
        MASTER_NAME
    }

    /// Returns the sentinels' addresses.
    pub fn sentinel_addresses(&self) -> Vec<SocketAddr> {
        self.sentinels.iter().map(RedisServer::address).collect()
    }

    /// Returns the two data servers, in start order (the first started as the primary).
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// Returns the two data servers, for fault injection.
    pub fn servers_mut(&mut self) -> &mut [RedisServer] {
        &mut self.servers
    }

    /// Returns the three sentinels.
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// Returns the three sentinels, for fault injection.
    pub fn sentinels_mut(&mut self) -> &mut [RedisServer] {
        &mut self.sentinels
    }

    /// Asks the sentinels (the first that answers) which address is the primary.
    pub async fn primary_address(&self) -> Result<SocketAddr> {
        let mut last_error = anyhow!("no sentinel");
        for sentinel in &self.sentinels {
            match named_primary(sentinel).await {
                Ok(address) => return Ok(address),
                Err(error) => last_error = error,
            }
        }
        Err(last_error.context("no sentinel named the primary"))
    }

    /// Returns the data server the sentinels name as the primary.
    pub async fn primary(&self) -> Result<&RedisServer> {
        let address = self.primary_address().await?;
        self.server_at(address)
    }

    fn server_at(&self, address: SocketAddr) -> Result<&RedisServer> {
        self.servers
            .iter()
            .find(|server| server.address() == address)
            .with_context(|| format!("{address} is not one of the set's servers"))
    }

    /// Forces a failover (`SENTINEL FAILOVER`) and waits until the set is settled the other
    /// way round: every sentinel names the former replica, which is a primary, and the
    /// former primary replicates from it. Returns the new primary's address.
    pub async fn failover(&self) -> Result<SocketAddr> {
        let old = self.primary_address().await?;
        let new = self
            .servers
            .iter()
            .map(RedisServer::address)
            .find(|address| *address != old)
            .context("the set has no second server")?;
        let sentinel = self.sentinels.first().context("the set has no sentinel")?;
        // A sentinel refuses (NOGOODSLAVE) until it has vetted the replica; INPROG means a
        // failover is already running.
        eventually(
            "a sentinel accepts SENTINEL FAILOVER",
            FAILOVER_DEADLINE,
            || async {
                let mut command = ::redis::cmd("SENTINEL");
                command.arg("FAILOVER").arg(MASTER_NAME);
                match sentinel.query::<String>(&command).await {
                    Ok(_) => Ok(Some(())),
                    Err(error) if format!("{error:#}").contains("INPROG") => Ok(Some(())),
                    Err(error) => Err(error),
                }
            },
        )
        .await?;
        eventually(
            &format!("the failover from {old} to {new} completes"),
            FAILOVER_DEADLINE,
            || async { self.check_settled(new, old).await.map(Some) },
        )
        .await?;
        Ok(new)
    }

    /// Checks that `primary` is a primary, `replica` replicates from it (its own `INFO`
    /// says the link is up), and every sentinel names `primary`, lists `replica` as a
    /// replica that is neither down nor disconnected, and knows the other sentinels.
    ///
    /// The link status a sentinel reports is only refreshed by its `INFO` every 10 s, so
    /// the server is asked instead. After a forced failover the sentinels take about 10 s
    /// (their own fixed periods) to turn the old primary into a replica: a failover lasts
    /// at least that long, as it does in production.
    async fn check_settled(&self, primary: SocketAddr, replica: SocketAddr) -> Result<()> {
        let primary_server = self.server_at(primary)?;
        let replica_server = self.server_at(replica)?;
        let info = replication_info(primary_server).await?;
        ensure!(
            info_field(&info, "role") == Some("master"),
            "{primary} is not a primary yet:\n{info}"
        );
        let info = replication_info(replica_server).await?;
        let port = primary.port().to_string();
        ensure!(
            info_field(&info, "role") == Some("slave")
                && info_field(&info, "master_port") == Some(port.as_str())
                && info_field(&info, "master_link_status") == Some("up"),
            "{replica} is not an in-sync replica of {primary} yet:\n{info}"
        );
        for sentinel in &self.sentinels {
            let at = sentinel.address();
            let named = named_primary(sentinel).await?;
            ensure!(
                named == primary,
                "sentinel {at} names {named}, not {primary}"
            );
            let replicas = sentinel_list(sentinel, "REPLICAS").await?;
            let replica_port = replica.port().to_string();
            ensure!(
                replicas.iter().any(|entry| {
                    field(entry, "port") == Some(replica_port.as_str())
                        && field(entry, "flags") == Some("slave")
                }),
                "sentinel {at} does not list {replica} as a reachable replica: {replicas:?}"
            );
            let others = sentinel_list(sentinel, "SENTINELS").await?;
            ensure!(
                others.len() == SENTINELS - 1,
                "sentinel {at} knows {} other sentinels, not {}",
                others.len(),
                SENTINELS - 1
            );
        }
        Ok(())
    }

    /// Stops the sentinels, then the data servers, gracefully.
    pub async fn stop(self) -> Result<()> {
        stop_all(self.sentinels.into_iter().chain(self.servers)).await
    }
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME` from one sentinel.
async fn named_primary(sentinel: &RedisServer) -> Result<SocketAddr> {
    let mut command = ::redis::cmd("SENTINEL");
    command.arg("GET-MASTER-ADDR-BY-NAME").arg(MASTER_NAME);
    let Some((ip, port)) = sentinel.query::<Option<(String, String)>>(&command).await? else {
        bail!(
            "sentinel {} does not know {MASTER_NAME}",
            sentinel.address()
        );
    };
    format!("{ip}:{port}")
        .parse()
        .with_context(|| format!("sentinel {} named {ip}:{port}", sentinel.address()))
}

/// `SENTINEL REPLICAS|SENTINELS fhircast`: one field map per entry.
async fn sentinel_list(sentinel: &RedisServer, what: &str) -> Result<Vec<HashMap<String, String>>> {
    let mut command = ::redis::cmd("SENTINEL");
    command.arg(what).arg(MASTER_NAME);
    sentinel.query(&command).await
}

fn field<'a>(entry: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    entry.get(name).map(String::as_str)
}

async fn replication_info(server: &RedisServer) -> Result<String> {
    let mut command = ::redis::cmd("INFO");
    command.arg("replication");
    server.query(&command).await
}
