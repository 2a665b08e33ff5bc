//! A whole FHIRcast cluster on loopback: a Redis topology, M hub nodes and N gateways, all
//! real processes on free ports, sharing one topic key and trusting one test issuer (so a
//! token works on every gateway).
//!
//! [`ClusterBuilder`] says what to start; [`ClusterBuilder::start`] starts, in this order:
//!
//! 1. the Redis topology ([`RedisTopology::Single`]: one [`RedisServer`] with AOF
//!    `appendfsync always` by default; sentinel and cluster come later);
//! 2. the nodes `hub-0 … hub-{M-1}` ([`NodeBuilder`]), then waits until every one of them is
//!    in the live node set in Redis (`ZRANGEBYSCORE fhc:v1:members:node <now> +inf`);
//! 3. the gateways `gw-0 … gw-{N-1}` ([`GatewayBuilder`] with `--redis-url`, `--topic-key`,
//!    `--gateway-id`), each ready when `/readyz` answers 200, then waits until every one of
//!    them is in the live gateway set. A gateway started after the nodes joined reads all of
//!    them on its first heartbeat, so placement agrees everywhere from the start.
//!
//! Each gateway hands out endpoints under its own address by default. With
//! [`ClusterBuilder::front_door`] the gateways share one public URL instead, as behind a
//! Kubernetes Service: a round-robin [`TcpProxy::balancer`] in front of them, passed to every
//! gateway as `--public-url`, so endpoints name the balancer and each attach lands on the
//! next gateway in turn.
//!
//! Topic flags (attach window, re-attach window, reconnect grace, unresponsive threshold,
//! lease) go to the nodes, which host the topics; socket flags (ack timeout, ping interval)
//! go to the gateways, which hold the sockets. A cluster gateway ignores topic flags.
//!
//! [`ClusterBuilder::grpc_mtls`] runs the gRPC hop over mutual TLS.
//!
//! Fault hooks: [`Node::kill_9`], [`Node::sigstop`], [`Node::restart`] (same id), through
//! [`Cluster::nodes_mut`]; [`Cluster::restart_node`] also waits for the node to rejoin.
//! Gateways: [`Cluster::kill_gateway`], [`Cluster::drain_gateway`] (SIGTERM),
//! [`Cluster::restart_gateway`] (same id, new port), and [`Cluster::add_gateway`] for one
//! that reaches Redis another way (through a fault proxy).
//! Ownership is read from Redis: [`Cluster::owner`] returns the node holding a topic's lease.
//! [`Cluster::stop`] stops gateways, then nodes, then Redis, each with SIGTERM and a clean
//! exit; dropping a cluster kills whatever still runs.

mod deployment;
mod node;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use fhircast_proto::TopicKey;
use fhircast_proto::redis_schema::{Role, TopicKeys, members_key};
use futures_util::future::try_join_all;

pub use deployment::{RedisDeployment, RedisTopology};
pub use node::{Node, NodeBuilder, STOP_DEADLINE as NODE_STOP_DEADLINE, hub_node_binary};

use crate::certs::GrpcMtls;
use crate::client::HubClient;
use crate::eventually::eventually;
use crate::gateway::{Gateway, GatewayBuilder};
use crate::issuer::TestIssuer;
use crate::proxy::TcpProxy;
use crate::redis::RedisServer;
use crate::token::{ALL_SCOPES, TokenSource};

/// How long the members of a freshly started (or restarted) cluster may take to show up in
/// the membership.
const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(20);
/// Lifetime of the tokens [`Cluster::client`] mints.
const TOKEN_LIFETIME: i64 = 3600;

/// What a [`Cluster`] is made of: 3 nodes and 2 gateways on one AOF-always Redis by default.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    topology: RedisTopology,
    nodes: usize,
    gateways: usize,
    issuer: Option<Arc<TestIssuer>>,
    front_door: bool,
    node: NodeBuilder,
    gateway: GatewayBuilder,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ClusterBuilder {
    /// Three nodes and two gateways on one Redis with AOF `always`, product defaults.
    pub fn new() -> Self {
        Self {
            topology: RedisTopology::default(),
            nodes: 3,
            gateways: 2,
            issuer: None,
            front_door: false,
            node: NodeBuilder::new(),
            gateway: GatewayBuilder::new(),
        }
    }

    /// Chooses the Redis topology.
    pub fn topology(mut self, topology: RedisTopology) -> Self {
        self.topology = topology;
        self
    }

    /// Sets how many hub nodes to start (`hub-0`, `hub-1`, …).
    pub fn nodes(mut self, count: usize) -> Self {
        self.nodes = count;
        self
    }

    /// Sets how many gateways to start (`gw-0`, `gw-1`, …).
    pub fn gateways(mut self, count: usize) -> Self {
        self.gateways = count;
        self
    }

    /// Trusts this issuer instead of a fresh one.
    pub fn issuer(mut self, issuer: Arc<TestIssuer>) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// Puts a round-robin balancer in front of the gateways and makes its URL every
    /// gateway's `--public-url`: one public URL for the whole hub, as in production.
    pub fn front_door(mut self) -> Self {
        self.front_door = true;
        self
    }

    /// Sets the attach window of every node's topics.
    pub fn attach_window(self, window: Duration) -> Self {
        self.configure_nodes(|node| node.attach_window(window))
    }

    /// Sets the re-attach window of every node's topics.
    pub fn reattach_window(self, window: Duration) -> Self {
        self.configure_nodes(|node| node.reattach_window(window))
    }

    /// Sets the reconnect grace of every node's topics.
    pub fn reconnect_grace(self, grace: Duration) -> Self {
        self.configure_nodes(|node| node.reconnect_grace(grace))
    }

    /// Sets the unresponsive threshold of every node's topics.
    pub fn unresponsive_threshold(self, count: u32) -> Self {
        self.configure_nodes(|node| node.unresponsive_threshold(count))
    }

    /// Sets every node's topic ownership lease.
    pub fn lease(self, lease: Duration) -> Self {
        self.configure_nodes(|node| node.lease(lease))
    }

    /// Sets how many replicas must hold each change before a node acknowledges it.
    pub fn wait_replicas(self, replicas: u32) -> Self {
        self.configure_nodes(|node| node.wait_replicas(replicas))
    }

    /// Sets every gateway's ack timeout.
    pub fn ack_timeout(self, timeout: Duration) -> Self {
        self.configure_gateways(|gateway| gateway.ack_timeout(timeout))
    }

    /// Sets every gateway's ping interval.
    pub fn ping_interval(self, interval: Duration) -> Self {
        self.configure_gateways(|gateway| gateway.ping_interval(interval))
    }

    /// Runs gRPC between gateways and nodes over mutual TLS with these certificates.
    pub fn grpc_mtls(self, certs: &GrpcMtls) -> Self {
        let (node_args, gateway_args) = (certs.node_args(), certs.gateway_args());
        self.configure_nodes(|node| node_args.into_iter().fold(node, NodeBuilder::arg))
            .configure_gateways(|gateway| {
                gateway_args.into_iter().fold(gateway, GatewayBuilder::arg)
            })
    }

    /// Adds to what every node is started with (flags, environment, binary).
    pub fn configure_nodes(mut self, configure: impl FnOnce(NodeBuilder) -> NodeBuilder) -> Self {
        self.node = configure(self.node);
        self
    }

    /// Adds to what every gateway is started with (flags, environment, binary).
    pub fn configure_gateways(
        mut self,
        configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
    ) -> Self {
        self.gateway = configure(self.gateway);
        self
    }

    /// Starts Redis, the nodes and the gateways, and waits until every member is live.
    pub async fn start(self) -> Result<Cluster> {
        if self.nodes == 0 || self.gateways == 0 {
            bail!("a cluster needs at least one node and one gateway");
        }
        let redis = RedisDeployment::start(self.topology).await?;
        let issuer = match self.issuer {
            Some(issuer) => issuer,
            None => Arc::new(TestIssuer::start().await?),
        };
        let topic_key = fhircast_proto::ids::random_token();
        let redis_url = redis.url();
        // A TLS Redis has a CA of its own: the members trust it the way an operator would,
        // through the trust store rustls reads (`SSL_CERT_FILE`).
        let redis_ca = redis
            .first_server()
            .ca_path()
            .map(|path| path.display().to_string());
        let (mut node, mut gateway) = (self.node.clone(), self.gateway.clone());
        if let Some(ca) = &redis_ca {
            node = node.env("SSL_CERT_FILE", ca);
            gateway = gateway.env("SSL_CERT_FILE", ca);
        }
        let front_door = if self.front_door {
            Some(TcpProxy::balancer().await?)
        } else {
            None
        };
        let mut cluster = Cluster {
            front_door,
            clients: Vec::new(),
            key: TopicKey::new(topic_key.as_bytes()),
            topic_key,
            issuer,
            nodes: Vec::new(),
            gateway_template: gateway,
            gateway_builders: Vec::new(),
            gateways: Vec::new(),
            redis,
        };

        let nodes: Vec<NodeBuilder> = (0..self.nodes)
            .map(|n| {
                node.clone()
                    .redis_url(&redis_url)
                    .topic_key(&cluster.topic_key)
                    .node_id(&format!("hub-{n}"))
            })
            .collect();
        cluster.nodes = try_join_all(nodes.iter().map(NodeBuilder::start)).await?;
        let node_ids: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| node.id().to_owned())
            .collect();
        cluster.wait_live(Role::Node, &node_ids).await?;

        let gateway_ids: Vec<String> = (0..self.gateways).map(|n| format!("gw-{n}")).collect();
        cluster.gateway_builders = gateway_ids
            .iter()
            .map(|id| cluster.gateway_builder(id, &redis_url))
            .collect();
        cluster.gateways =
            try_join_all(cluster.gateway_builders.iter().map(GatewayBuilder::start)).await?;
        cluster.update_front_door()?;
        cluster.clients = cluster
            .gateways
            .iter()
            .map(|gateway| HubClient::new(&gateway.hub_url(), "", None))
            .collect();
        cluster.wait_live(Role::Gateway, &gateway_ids).await?;
        Ok(cluster)
    }
}

/// A running cluster. Dropping it kills every process it started.
#[derive(Debug)]
pub struct Cluster {
    issuer: Arc<TestIssuer>,
    /// One client per gateway, without topic or token: [`Cluster::client`] derives from it,
    /// so every client of a gateway shares one connection pool (building an HTTP client is
    /// costly next to a request).
    clients: Vec<HubClient>,
    front_door: Option<TcpProxy>,
    redis: RedisDeployment,
    topic_key: String,
    key: TopicKey,
    nodes: Vec<Node>,
    /// What every gateway is started with before its own flags.
    gateway_template: GatewayBuilder,
    /// Each gateway's full command line, kept for [`Cluster::restart_gateway`].
    gateway_builders: Vec<GatewayBuilder>,
    gateways: Vec<Gateway>,
}

impl Cluster {
    /// The command line of gateway `id` talking to Redis at `redis_url`.
    fn gateway_builder(&self, id: &str, redis_url: &str) -> GatewayBuilder {
        let gateway = match self.public_url() {
            Some(url) => self
                .gateway_template
                .clone()
                .arg(format!("--public-url={url}")),
            None => self.gateway_template.clone(),
        };
        // `--flag=value`: a random topic key may start with `-`.
        gateway
            .name(id)
            .issuer(&self.issuer)
            .arg(format!("--redis-url={redis_url}"))
            .arg(format!("--topic-key={}", self.topic_key))
            .arg(format!("--gateway-id={id}"))
    }

    /// Returns the issuer every gateway trusts.
    pub fn issuer(&self) -> &Arc<TestIssuer> {
        &self.issuer
    }

    /// Returns a token source minting tokens every gateway accepts.
    pub fn tokens(&self) -> TokenSource {
        TokenSource::Issuer(Arc::clone(&self.issuer))
    }

    /// Returns the (first) Redis data server: the single server, the sentinel set's initial
    /// primary, or the first master of a Redis Cluster.
    pub fn redis(&self) -> &RedisServer {
        self.redis.first_server()
    }

    /// Returns the (first) Redis data server, mutably (to kill or restart it).
    pub fn redis_mut(&mut self) -> &mut RedisServer {
        self.redis.first_server_mut()
    }

    /// Returns the Redis deployment, whatever its topology.
    pub fn deployment(&self) -> &RedisDeployment {
        &self.redis
    }

    /// Returns the Redis deployment, mutably (to kill or restart its servers).
    pub fn deployment_mut(&mut self) -> &mut RedisDeployment {
        &mut self.redis
    }

    /// Returns the topic key every member shares.
    pub fn topic_key(&self) -> &str {
        &self.topic_key
    }

    /// Returns the topic key every member shares, as a key.
    pub fn key(&self) -> &TopicKey {
        &self.key
    }

    /// Returns the Redis keys of `topic` under this cluster's topic key.
    pub fn keys_of(&self, topic: &str) -> TopicKeys {
        TopicKeys::of(&self.key.topic_ref(topic))
    }

    /// Returns the nodes, `hub-0` first.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Returns the nodes, mutably (to kill, freeze or restart one).
    pub fn nodes_mut(&mut self) -> &mut [Node] {
        &mut self.nodes
    }

    /// Returns the index of the node with this id.
    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|node| node.id() == id)
    }

    /// Returns the gateways, `gw-0` first.
    pub fn gateways(&self) -> &[Gateway] {
        &self.gateways
    }

    /// Every running member's process, named as its logs are (`hub-0`…, `gw-0`…).
    pub fn member_processes(&self) -> Vec<(String, &crate::process::Process)> {
        let nodes = self.nodes.iter().filter_map(|node| {
            node.process()
                .map(|process| (node.id().to_owned(), process))
        });
        let gateways = self
            .gateways
            .iter()
            .enumerate()
            .map(|(n, gateway)| (format!("gw-{n}"), gateway.process()));
        nodes.chain(gateways).collect()
    }

    /// Returns the address of gateway `index` (its own, also with a front door).
    pub fn gateway_address(&self, index: usize) -> Result<std::net::SocketAddr> {
        self.gateways
            .get(index)
            .with_context(|| format!("no gateway {index} in this cluster"))?
            .address()
    }

    /// Starts one more gateway (`gw-N`, N the count so far) that reaches Redis at
    /// `redis_url` (e.g. through a [`TcpProxy`] in front of [`Cluster::redis`]) and waits
    /// until it is live; returns its index.
    pub async fn add_gateway(&mut self, redis_url: &str) -> Result<usize> {
        self.add_gateway_with(redis_url, |builder| builder).await
    }

    /// As [`Cluster::add_gateway`], with flags of its own set by `configure`.
    pub async fn add_gateway_with(
        &mut self,
        redis_url: &str,
        configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
    ) -> Result<usize> {
        let index = self.gateways.len();
        let id = format!("gw-{index}");
        let builder = configure(self.gateway_builder(&id, redis_url));
        let gateway = builder.start().await?;
        self.clients
            .push(HubClient::new(&gateway.hub_url(), "", None));
        self.gateways.push(gateway);
        self.gateway_builders.push(builder);
        self.update_front_door()?;
        self.wait_live(Role::Gateway, &[id]).await?;
        Ok(index)
    }

    /// Kills gateway `index` with SIGKILL: its sockets drop without a close frame and its
    /// membership lapses after the heartbeat TTL. [`Cluster::restart_gateway`] brings it back.
    pub async fn kill_gateway(&mut self, index: usize) -> Result<()> {
        self.gateway_mut(index)?.kill_9().await
    }

    /// Drains gateway `index` with SIGTERM (its sockets close with 1012) and waits for its
    /// clean exit. [`Cluster::restart_gateway`] brings it back.
    pub async fn drain_gateway(&mut self, index: usize) -> Result<()> {
        self.gateway_mut(index)?.drain().await
    }

    /// Starts gateway `index` again with the same id and flags (a running one is stopped
    /// with SIGTERM first) on a new port, and waits until it is live. Clients from
    /// [`Cluster::client`] made before the restart still name the old port.
    pub async fn restart_gateway(&mut self, index: usize) -> Result<()> {
        let builder = self
            .gateway_builders
            .get(index)
            .with_context(|| format!("no gateway {index} in this cluster"))?
            .clone();
        if self.gateway_mut(index)?.is_running() {
            self.drain_gateway(index).await?;
        }
        let gateway = builder.start().await?;
        self.clients[index] = HubClient::new(&gateway.hub_url(), "", None);
        let old = std::mem::replace(&mut self.gateways[index], gateway);
        let _ = std::fs::remove_dir_all(old.process().dir());
        self.update_front_door()?;
        self.wait_live(Role::Gateway, &[format!("gw-{index}")])
            .await
    }

    fn gateway_mut(&mut self, index: usize) -> Result<&mut Gateway> {
        self.gateways
            .get_mut(index)
            .with_context(|| format!("no gateway {index} in this cluster"))
    }

    /// Points the front door (if any) at the gateways' current addresses.
    fn update_front_door(&self) -> Result<()> {
        if let Some(front_door) = &self.front_door {
            let addresses = self
                .gateways
                .iter()
                .map(Gateway::address)
                .collect::<Result<Vec<_>>>()?;
            front_door.set_targets(&addresses);
        }
        Ok(())
    }

    /// Returns the public URL every gateway shares (`http://<balancer>`), with
    /// [`ClusterBuilder::front_door`].
    pub fn public_url(&self) -> Option<String> {
        self.front_door
            .as_ref()
            .map(|front_door| format!("http://{}", front_door.address()))
    }

    /// Returns the balancer in front of the gateways, with [`ClusterBuilder::front_door`].
    pub fn front_door(&self) -> Option<&TcpProxy> {
        self.front_door.as_ref()
    }

    /// Returns `hub.url` of every gateway, `gw-0` first (each gateway's own address, also
    /// with a front door).
    pub fn hub_urls(&self) -> Vec<String> {
        self.gateways.iter().map(Gateway::hub_url).collect()
    }

    /// Returns a client for `topic` on gateway `gateway` with a token allowing everything.
    pub fn client(&self, gateway: usize, topic: &str) -> Result<HubClient> {
        let client = self
            .clients
            .get(gateway)
            .with_context(|| format!("no gateway {gateway} in this cluster"))?;
        let token = self.issuer.mint(topic, ALL_SCOPES, TOKEN_LIFETIME)?;
        Ok(client.with_topic(topic).with_token(Some(token)))
    }

    /// Returns the ids of the live members of `role`, sorted (heartbeat deadline not past).
    pub async fn live(&self, role: Role) -> Result<BTreeSet<String>> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?
            .as_millis();
        let mut command = ::redis::cmd("ZRANGEBYSCORE");
        command
            .arg(members_key(role))
            .arg(now.to_string())
            .arg("+inf");
        let ids: Vec<String> = self.redis.query(&command).await?;
        Ok(ids.into_iter().collect())
    }

    /// Waits until every id in `ids` is a live member of `role`.
    pub async fn wait_live(&self, role: Role, ids: &[String]) -> Result<()> {
        let what = format!("{ids:?} live in {}", members_key(role));
        let waited = eventually(&what, MEMBERSHIP_DEADLINE, || async {
            let live = self.live(role).await?;
            Ok(ids.iter().all(|id| live.contains(id)).then_some(()))
        })
        .await;
        waited.map_err(|error| error.context(self.logs_tail()))
    }

    /// Returns the id of the node holding `topic`'s ownership lease, if any.
    pub async fn owner(&self, topic: &str) -> Result<Option<String>> {
        let mut command = ::redis::cmd("GET");
        command.arg(self.keys_of(topic).lease);
        self.redis.query(&command).await
    }

    /// Returns `topic`'s ref as the members log it (`t:…`): logs never name a topic.
    pub fn topic_ref(&self, topic: &str) -> String {
        self.key.topic_ref(topic).to_string()
    }

    /// Returns the event ids `topic`'s state has accepted, oldest first (its `idorder`
    /// list, capped by the nodes' idempotency capacity).
    pub async fn accepted_ids(&self, topic: &str) -> Result<Vec<String>> {
        let mut command = ::redis::cmd("LRANGE");
        command.arg(self.keys_of(topic).idorder).arg(0).arg(-1);
        self.redis.query(&command).await
    }

    /// Returns the lease holder of each of `topics`, in order, in one pipelined round trip.
    pub async fn owners<S: AsRef<str>>(&self, topics: &[S]) -> Result<Vec<Option<String>>> {
        let commands: Vec<::redis::Cmd> = topics
            .iter()
            .map(|topic| {
                let mut command = ::redis::cmd("GET");
                command.arg(self.keys_of(topic.as_ref()).lease);
                command
            })
            .collect();
        self.redis
            .query_each(&commands)
            .await
            .context("reading the topics' leases")
    }

    /// Restarts node `index` with the same id and waits until it is live again.
    pub async fn restart_node(&mut self, index: usize) -> Result<()> {
        let node = self
            .nodes
            .get_mut(index)
            .with_context(|| format!("no node {index} in this cluster"))?;
        node.restart().await?;
        let id = node.id().to_owned();
        self.wait_live(Role::Node, &[id]).await
    }

    /// Returns node `index`'s whole log (stderr) so far; empty while it is killed.
    pub fn node_log(&self, index: usize) -> String {
        self.nodes
            .get(index)
            .and_then(Node::process)
            .map(crate::process::Process::stderr_text)
            .unwrap_or_default()
    }

    /// Returns gateway `index`'s whole log (stderr) so far; empty while it is killed.
    pub fn gateway_log(&self, index: usize) -> String {
        self.gateways
            .get(index)
            .filter(|gateway| gateway.is_running())
            .map(|gateway| gateway.process().stderr_text())
            .unwrap_or_default()
    }

    /// Returns the tail of every member's logs, for failure messages.
    pub fn logs_tail(&self) -> String {
        let nodes = self.nodes.iter().map(Node::logs_tail);
        let gateways = self
            .gateways
            .iter()
            .map(|gateway| gateway.process().logs_tail());
        nodes
            .chain(gateways)
            .chain(std::iter::once(self.redis.logs_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops the gateways, then the nodes, then Redis, each with SIGTERM and a clean exit;
    /// stops everything even after a failure and returns the first one.
    pub async fn stop(self) -> Result<()> {
        let mut result = Ok(());
        let mut keep_first = |stopped: Result<()>| {
            if result.is_ok() {
                result = stopped;
            }
        };
        // A gateway killed or drained by the scenario (and not restarted) is already gone.
        for gateway in self.gateways.into_iter().filter(Gateway::is_running) {
            keep_first(gateway.stop().await.context("stopping a gateway"));
        }
        for node in self.nodes {
            keep_first(node.stop().await.context("stopping a node"));
        }
        keep_first(self.redis.stop().await.context("stopping Redis"));
        result
    }
}
