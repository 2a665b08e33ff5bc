//! One `fhircast-hub-node` process under test: locating the binary, its command line, and the
//! fault hooks the cluster scenarios use (kill -9, SIGSTOP/SIGCONT, SIGTERM, restart with
//! the same node id).
//!
//! The binary is taken from `HUB_NODE_BIN`, else `<target dir>/debug/fhircast-hub-node`
//! (see [`target_binary`]). A node serves gRPC on `127.0.0.1:0` and announces the bound
//! address with one stdout line `listening grpc://127.0.0.1:PORT`; [`NodeBuilder::start`]
//! waits for that line. Whether the node has joined the membership is the cluster's
//! business ([`Cluster`](super::Cluster) reads it from Redis).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::process::{Process, target_binary};

/// How long a node may take to print its listening line (it connects to Redis first).
const START_DEADLINE: Duration = Duration::from_secs(20);
/// How long a node may take to exit after SIGTERM (its drain grace is 10 s by default).
pub const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// Returns the path of the hub node binary, or explains how to build it.
pub fn hub_node_binary() -> Result<PathBuf> {
    target_binary("HUB_NODE_BIN", "fhircast-hub-node")
}

/// Builds the command line of a hub node under test. The Redis URL, the topic key and the
/// node id are required; everything else keeps the node's defaults unless set.
#[derive(Debug, Default, Clone)]
pub struct NodeBuilder {
    binary: Option<PathBuf>,
    redis_url: Option<String>,
    topic_key: Option<String>,
    node_id: Option<String>,
    grpc_listen: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl NodeBuilder {
    /// Starts from an empty command line (gRPC on `127.0.0.1:0`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses this binary instead of the default lookup.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Sets the Redis the node keeps its topics in (`--redis-url`).
    pub fn redis_url(mut self, url: &str) -> Self {
        self.redis_url = Some(url.to_owned());
        self
    }

    /// Sets the deployment's topic key (`--topic-key`, at least 32 characters).
    pub fn topic_key(mut self, key: &str) -> Self {
        self.topic_key = Some(key.to_owned());
        self
    }

    /// Sets the node id (`--node-id`), which a restart keeps.
    pub fn node_id(mut self, id: &str) -> Self {
        self.node_id = Some(id.to_owned());
        self
    }

    /// Overrides the gRPC listen address (only for tests that expect a refusal to start).
    pub fn grpc_listen(mut self, address: &str) -> Self {
        self.grpc_listen = Some(address.to_owned());
        self
    }

    /// Sets the attach window of the node's topics.
    pub fn attach_window(self, window: Duration) -> Self {
        self.millis("--attach-window-ms", window)
    }

    /// Sets the re-attach window of the node's topics (0: single-use endpoints).
    pub fn reattach_window(self, window: Duration) -> Self {
        self.millis("--reattach-window-ms", window)
    }

    /// Sets the reconnect grace before an abnormal close's SyncError.
    pub fn reconnect_grace(self, grace: Duration) -> Self {
        self.millis("--reconnect-grace-ms", grace)
    }

    /// Sets how many consecutive ack timeouts unsubscribe a subscriber.
    pub fn unresponsive_threshold(self, count: u32) -> Self {
        self.arg("--unresponsive-threshold").arg(count.to_string())
    }

    /// Sets the topic ownership lease (`--lease-ms`, at least 300 ms).
    pub fn lease(self, lease: Duration) -> Self {
        self.millis("--lease-ms", lease)
    }

    /// Sets how many replicas must hold a change before it is acknowledged
    /// (`--redis-wait-replicas`; 0 acknowledges what the primary holds).
    pub fn wait_replicas(self, replicas: u32) -> Self {
        self.arg(format!("--redis-wait-replicas={replicas}"))
    }

    fn millis(self, flag: &str, duration: Duration) -> Self {
        self.arg(flag).arg(duration.as_millis().to_string())
    }

    /// Sets an environment variable of the process (e.g. `RUST_LOG`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Appends one raw argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Returns the node id.
    pub fn id(&self) -> Option<&str> {
        self.node_id.as_deref()
    }

    fn command_line(&self) -> Result<Vec<String>> {
        let (Some(redis_url), Some(topic_key), Some(node_id)) =
            (&self.redis_url, &self.topic_key, &self.node_id)
        else {
            bail!("a hub node needs a Redis URL, a topic key and a node id");
        };
        // `--flag=value`: a value may start with `-` (a random topic key does at times).
        let mut args = vec![
            format!(
                "--grpc-listen={}",
                self.grpc_listen.as_deref().unwrap_or("127.0.0.1:0")
            ),
            format!("--redis-url={redis_url}"),
            format!("--topic-key={topic_key}"),
            format!("--node-id={node_id}"),
        ];
        args.extend(self.args.iter().cloned());
        Ok(args)
    }

    /// Spawns the node without waiting for anything (for start-up refusal tests).
    pub fn spawn(&self) -> Result<Process> {
        let binary = match &self.binary {
            Some(path) => path.clone(),
            None => hub_node_binary()?,
        };
        let name = format!("node-{}", self.node_id.as_deref().unwrap_or("unnamed"));
        Process::spawn_with_env(
            &name,
            &binary,
            &self.command_line()?,
            Some("FHIRCAST_"),
            &self.env,
        )
    }

    /// Spawns the node and expects it to refuse its configuration: exit 64 (EX_USAGE)
    /// before binding anything, saying `reason` (case aside) on stderr.
    pub async fn expect_refused(&self, reason: &str) -> Result<()> {
        self.spawn()?.expect_refusal(reason, STOP_DEADLINE).await
    }

    /// Spawns the node and waits until it prints its gRPC address.
    pub async fn start(&self) -> Result<Node> {
        let (process, grpc_address) = self.launch().await?;
        Ok(Node {
            builder: self.clone(),
            process: Some(process),
            grpc_address,
        })
    }

    async fn launch(&self) -> Result<(Process, SocketAddr)> {
        let mut process = self.spawn()?;
        let line = process
            .wait_for_stdout_line("listening ", START_DEADLINE)
            .await?;
        let address = line
            .strip_prefix("grpc://")
            .and_then(|address| address.parse::<SocketAddr>().ok())
            .filter(SocketAddr::is_ipv4);
        match address {
            Some(address) if address.ip().is_loopback() => Ok((process, address)),
            _ => bail!(
                "unexpected listening line `{line}`\n{}",
                process.logs_tail()
            ),
        }
    }
}

/// A hub node: running, or killed until [`Node::restart`].
#[derive(Debug)]
pub struct Node {
    builder: NodeBuilder,
    process: Option<Process>,
    grpc_address: SocketAddr,
}

impl Node {
    /// Returns the node id (the same across restarts).
    pub fn id(&self) -> &str {
        self.builder.id().unwrap_or_default()
    }

    /// Returns the gRPC address the current (or last) process bound.
    pub fn grpc_address(&self) -> SocketAddr {
        self.grpc_address
    }

    /// Returns the running process (`None` after [`Node::kill_9`]).
    pub fn process(&self) -> Option<&Process> {
        self.process.as_ref()
    }

    /// Returns the pid of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Returns the tail of the current process's logs, for failure messages.
    pub fn logs_tail(&self) -> String {
        self.process.as_ref().map_or_else(
            || format!("(node {} not running)", self.id()),
            Process::logs_tail,
        )
    }

    fn running(&self) -> Result<&Process> {
        self.process
            .as_ref()
            .with_context(|| format!("node {} is not running", self.id()))
    }

    /// Kills the process with SIGKILL (no drain, no lease release) and reaps it.
    pub async fn kill_9(&mut self) -> Result<()> {
        let mut process = self
            .process
            .take()
            .with_context(|| format!("node {} is not running", self.id()))?;
        process.signal("KILL")?;
        process.wait_exit(STOP_DEADLINE).await?;
        process.forget_child();
        let _ = std::fs::remove_dir_all(process.dir());
        Ok(())
    }

    /// Freezes the process (SIGSTOP): its port stays open, nothing answers or heartbeats.
    pub fn sigstop(&self) -> Result<()> {
        self.running()?.signal("STOP")
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn sigcont(&self) -> Result<()> {
        self.running()?.signal("CONT")
    }

    /// Starts the node again with the same id and flags (a running process is first
    /// stopped with SIGTERM and must exit cleanly); waits for its listening line. The gRPC
    /// port is a new one: the node advertises it in Redis.
    pub async fn restart(&mut self) -> Result<()> {
        if let Some(process) = self.process.take() {
            stop_process(process).await?;
        }
        let (process, grpc_address) = self.builder.launch().await?;
        self.process = Some(process);
        self.grpc_address = grpc_address;
        Ok(())
    }

    /// Stops the node with SIGTERM and asserts a clean exit (a killed node just goes).
    pub async fn stop(mut self) -> Result<()> {
        match self.process.take() {
            Some(process) => stop_process(process).await,
            None => Ok(()),
        }
    }
}

/// Resumes (in case it was frozen) and stops a node with SIGTERM, asserting a clean exit.
async fn stop_process(process: Process) -> Result<()> {
    process.signal("CONT")?;
    process.stop(STOP_DEADLINE).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_start_with_a_dash_stay_values() -> Result<()> {
        let key = "-j2xkEwBjW8yZ3n0Qd4pR5sT6uV7wX8yZ9a0b1c2d3e";
        let args = NodeBuilder::new()
            .redis_url("redis://127.0.0.1:1/")
            .topic_key(key)
            .node_id("hub-0")
            .command_line()?;
        assert!(args.contains(&format!("--topic-key={key}")), "{args:?}");
        assert!(args.contains(&"--node-id=hub-0".to_owned()), "{args:?}");
        Ok(())
    }

    #[test]
    fn a_node_needs_redis_a_key_and_an_id() {
        assert!(NodeBuilder::new().node_id("hub-0").command_line().is_err());
    }
}
