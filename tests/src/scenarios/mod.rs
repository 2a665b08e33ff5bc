//! Cross-process scenarios: each test spawns its own `fhircast-gateway` through the harness,
//! trusting the in-process test issuer, and talks to it over real sockets. The `cluster_*`
//! scenarios spawn a whole cluster instead (Redis, hub nodes, gateways: [`crate::cluster`]).
//!
//! One file per behaviour; all compile into this crate's single test binary.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

use crate::client::{HubClient, Reply};
use crate::conformance::assert::expect_event;
use crate::gateway::{Gateway, GatewayBuilder};
use crate::issuer::TestIssuer;
use crate::payloads::{new_id, patient_open, random_topic};
use crate::subscriber::Subscriber;
use crate::token::ALL_SCOPES;

mod admin_api;
mod bad_frames;
mod bad_input;
mod bad_tokens;
mod bounds;
mod cluster_admin_api;
mod cluster_any_gateway;
mod cluster_dead_after_unsubscribe;
mod cluster_endpoint_url;
mod cluster_faults_gateway_bus;
mod cluster_faults_gateway_loss;
mod cluster_faults_owner_pause;
mod cluster_faults_redis_loss;
mod cluster_grpc_mtls;
mod cluster_malformed;
mod cluster_node_loss;
mod cluster_placement;
mod cluster_redis_tls;
mod cluster_rollback;
mod cluster_sentinel_failover;
mod cluster_single_attach;
mod conformance;
mod dev_issuer;
mod enumeration_timing;
mod forwarded_for;
mod graceful_shutdown;
mod http_surface;
mod hub_closes;
mod idempotency;
mod input_limits;
mod interop_medplum;
mod interop_medplum_cluster;
mod jwks_discovery;
mod jwks_refresh;
mod keepalive;
mod leniency;
mod log_canary;
mod operator_log;
mod origin;
mod rate_limits;
mod reattach;
mod redis_store;
mod redis_topologies;
mod second_handshake;
mod several_issuers;
mod slow_consumer;
mod subscription_cap;
mod subscription_owner;
mod tls;
mod tls_scan;
mod topic_binding;
mod walkthrough;
mod weak_topics;

/// How long a scenario waits for a message it expects.
const MSG: Duration = Duration::from_secs(5);
/// How long a scenario waits to show that nothing arrives.
const SILENCE: Duration = Duration::from_millis(400);

/// A gateway trusting a fresh test issuer.
#[derive(Debug)]
struct Rig {
    issuer: Arc<TestIssuer>,
    gateway: Gateway,
}

impl Rig {
    async fn start() -> Result<Self> {
        Self::start_with(|builder| builder).await
    }

    async fn start_with(configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> Result<Self> {
        Self::start_with_issuer(|builder, issuer| configure(builder.issuer(issuer))).await
    }

    /// Like [`Rig::start_with`], choosing how the gateway is told about the issuer.
    async fn start_with_issuer(
        configure: impl FnOnce(GatewayBuilder, &TestIssuer) -> GatewayBuilder,
    ) -> Result<Self> {
        let issuer = Arc::new(TestIssuer::start().await?);
        let gateway = configure(GatewayBuilder::new(), &issuer).start().await?;
        Ok(Self { issuer, gateway })
    }

    fn client(&self, topic: &str) -> Result<HubClient> {
        let token = self.issuer.mint(topic, ALL_SCOPES, 3600)?;
        Ok(HubClient::new(&self.gateway.hub_url(), topic, Some(token)))
    }

    /// A token for `topic` that names another app (`client_id`).
    fn token_as(&self, topic: &str, client_id: &str) -> Result<String> {
        let mut claims = self.issuer.claims(topic, ALL_SCOPES, 3600);
        claims["client_id"] = serde_json::json!(client_id);
        self.issuer.sign(&claims)
    }

    /// A client whose token names another app (`client_id`).
    fn client_as(&self, topic: &str, client_id: &str) -> Result<HubClient> {
        let token = self.token_as(topic, client_id)?;
        Ok(HubClient::new(&self.gateway.hub_url(), topic, Some(token)))
    }

    async fn subscriber(&self, client: &HubClient, events: &str) -> Result<Subscriber> {
        let endpoint = client.subscribe(events).await?;
        Subscriber::connect_confirmed(&endpoint, MSG).await
    }
}

/// A gateway with a topic, a watcher socket on it, and the context as it was before the bad
/// input; [`Stage::finish`] proves nothing changed and the gateway still serves.
#[derive(Debug)]
struct Stage {
    rig: Rig,
    client: HubClient,
    watcher: Subscriber,
    before: Value,
}

impl Stage {
    async fn start() -> Result<Self> {
        Self::start_with(|builder| builder).await
    }

    /// Like [`Stage::start`], with the gateway configured by `configure`.
    async fn start_with(configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder) -> Result<Self> {
        let rig = Rig::start_with(configure).await?;
        let client = rig.client(&random_topic())?;
        let mut watcher = rig
            .subscriber(&client, "Patient-open,Patient-close,SyncError")
            .await?;
        let open = patient_open(client.topic(), "p-stage");
        client.publish_ok(&open).await?;
        watcher
            .next_event(MSG)
            .await
            .context("watcher sees the staging Patient-open")?;
        let before = client.context().await?;
        Ok(Self {
            rig,
            client,
            watcher,
            before,
        })
    }

    fn topic(&self) -> &str {
        self.client.topic()
    }

    /// Asserts no state changed, the process is alive and a valid publish still works;
    /// then stops the gateway cleanly.
    async fn finish(mut self) -> Result<()> {
        self.watcher
            .expect_silence(SILENCE)
            .await
            .context("bad input caused a delivery")?;
        let after = self.client.context().await?;
        ensure!(
            after == self.before,
            "context changed: {} → {after}",
            self.before
        );
        self.rig.gateway.assert_ready().await?;
        let open = patient_open(self.client.topic(), "p-after");
        self.client
            .publish_ok(&open)
            .await
            .context("a valid publish after the bad input")?;
        let echo = self
            .watcher
            .next_event(MSG)
            .await
            .context("delivery after the bad input")?;
        ensure!(echo["id"] == open["id"], "unexpected delivery {echo}");
        drop(self.watcher);
        self.rig.gateway.stop().await
    }
}

/// Publishes a Patient-open for a fresh patient labelled `label` and returns its id.
async fn publish(client: &HubClient, label: &str) -> Result<String> {
    let event = patient_open(client.topic(), &format!("{label}-{}", new_id()));
    client.publish_ok(&event).await?;
    Ok(event["id"].as_str().unwrap_or_default().to_owned())
}

/// Reads the next event and asserts it is the Patient-open `id`.
async fn expect_id(subscriber: &mut Subscriber, id: &str, what: &str) -> Result<Value> {
    expect_event(subscriber, "Patient-open", Some(id))
        .await
        .with_context(|| what.to_owned())
}

/// Asserts a 4xx with `status` and a non-empty text reason.
fn refused(reply: &Reply, status: u16, what: &str) -> Result<()> {
    reply.expect_error(status, what)?;
    Ok(())
}
