//! Reaching the sentinel set's servers.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::redis::{RedisSentinelSet, RedisServer, info_field};

pub(super) fn sentinel_set(cluster: &Cluster) -> Result<&RedisSentinelSet> {
    cluster
        .deployment()
        .sentinel_set()
        .context("the cluster does not run on a sentinel set")
}

pub(super) fn other_server(set: &RedisSentinelSet, address: SocketAddr) -> Result<SocketAddr> {
    set.servers()
        .iter()
        .map(RedisServer::address)
        .find(|other| *other != address)
        .context("the set has no second server")
}

pub(super) fn server_at_mut(
    cluster: &mut Cluster,
    address: SocketAddr,
) -> Result<&mut RedisServer> {
    cluster
        .deployment_mut()
        .sentinel_set_mut()
        .context("the cluster does not run on a sentinel set")?
        .servers_mut()
        .iter_mut()
        .find(|server| server.address() == address)
        .with_context(|| format!("{address} is not one of the set's servers"))
}

pub(super) fn server_at(set: &RedisSentinelSet, address: SocketAddr) -> Result<&RedisServer> {
    set.servers()
        .iter()
        .find(|server| server.address() == address)
        .with_context(|| format!("{address} is not one of the set's servers"))
}

/// The server's role (`master` or `slave`).
pub(super) async fn role(server: &RedisServer) -> Result<String> {
    replication_field(server, "role").await
}

/// One field of a server's `INFO replication`.
pub(super) async fn replication_field(server: &RedisServer, field: &str) -> Result<String> {
    let mut command = ::redis::cmd("INFO");
    command.arg("replication");
    let info: String = server.query(&command).await?;
    Ok(info_field(&info, field).unwrap_or_default().to_owned())
}

/// `at - reference` in ms, negative when `at` came first.
pub(super) fn signed_ms(at: Instant, reference: Instant) -> i128 {
    if at >= reference {
        at.duration_since(reference).as_millis() as i128
    } else {
        -(reference.duration_since(at).as_millis() as i128)
    }
}
