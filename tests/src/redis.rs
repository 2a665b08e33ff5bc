//! Redis topologies for the cluster-mode tests, spawned from the machine's `redis-server`
//! (`make redis-deps` installs it) on free loopback ports.
//!
//! - [`RedisServer`]: one server; AOF with `appendfsync always` by default (the production
//!   setting), optionally a password or an ACL user, optionally TLS with a CA generated at
//!   runtime. Fault hooks: [`RedisServer::kill_9`], [`RedisServer::restart`] (same port and
//!   data), [`RedisServer::sigstop`] / [`RedisServer::sigcont`].
//! - [`RedisSentinelSet`]: a primary, a replica and three sentinels watching master
//!   [`MASTER_NAME`]; [`RedisSentinelSet::failover`] swaps the roles.
//! - [`RedisCluster`]: three cluster masters without replicas, all slots assigned.
//!
//! Every process binds `127.0.0.1` only and keeps its config and data in its own temporary
//! directory (logs go to the [`Process`](crate::process::Process) log directory). Waits
//! use real commands (PING, INFO, CLUSTER INFO, SENTINEL …) through [`eventually`], never
//! sleeps. Dropping a topology kills its processes; `stop()` stops them gracefully and
//! removes their directories.
//!
//! Inside this module the `redis` client crate is spelled `::redis` to keep it apart from
//! this module's own name.
//!
//! [`eventually`]: crate::eventually::eventually

mod cluster;
mod sentinel;
mod server;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

pub use cluster::RedisCluster;
pub use sentinel::{MASTER_NAME, RedisSentinelSet};
pub use server::{RedisAuth, RedisOptions, RedisServer};

/// How long a Redis process may take to answer PING after it was spawned (AOF loading
/// included), and a topology to settle (sync, discovery, slot assignment).
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a Redis process may take to exit after SIGTERM or SIGKILL.
const STOP_DEADLINE: Duration = Duration::from_secs(15);
/// Connect and response timeout of the harness's own commands.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Returns a port that was free on `127.0.0.1` a moment ago (bind to port 0, read it, let
/// go). Another process may take it in between; servers retry once on "Address already in
/// use".
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Returns a client for `url` (`redis://` or `rediss://`), trusting the PEM CA at `ca` for
/// TLS when given (else the system roots).
pub fn redis_client(url: &str, ca: Option<&Path>) -> Result<::redis::Client> {
    match ca {
        None => ::redis::Client::open(url).with_context(|| format!("parsing {url}")),
        Some(ca) => {
            let root_cert =
                std::fs::read(ca).with_context(|| format!("reading the CA {}", ca.display()))?;
            let certificates = ::redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root_cert),
            };
            ::redis::Client::build_with_tls(url, certificates)
                .with_context(|| format!("building a TLS client for {url}"))
        }
    }
}

/// Opens a multiplexed connection with the harness's connect and response timeouts.
pub async fn connect(client: &::redis::Client) -> Result<::redis::aio::MultiplexedConnection> {
    let config = ::redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .context("connecting to Redis")
}

/// Returns the value of `field` in a `field:value` reply (`INFO`, `CLUSTER INFO`).
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        line.trim_end()
            .strip_prefix(field)
            .and_then(|rest| rest.strip_prefix(':'))
    })
}

/// Stops every server gracefully, even after a failure; returns the first failure.
async fn stop_all(servers: impl IntoIterator<Item = RedisServer>) -> Result<()> {
    let mut result = Ok(());
    for server in servers {
        let stopped = server.stop().await;
        if result.is_ok() {
            result = stopped;
        }
    }
    result
}

/// Finds `name` (`redis-server`, `redis-cli`) on `PATH`, or explains how to install it.
fn binary(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    match std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
    {
        Some(found) => Ok(found),
        None => {
            bail!("{name} not found on PATH: run `make redis-deps` (apt-get install redis-server)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_info_fields() {
        let info = "# Replication\r\nrole:slave\r\nmaster_port:6380\r\nmaster_link_status:up\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master_port"), Some("6380"));
        assert_eq!(info_field(info, "master"), None);
        assert_eq!(info_field(info, "connected_slaves"), None);
    }
}
