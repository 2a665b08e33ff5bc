//! The admin API in a cluster (AUZ-04 `owner`, AUZ-10): a topic minted through one
//! gateway is known to every gateway and hub node (the record lives in Redis), and its
//! revocation through another gateway closes its sockets on every gateway within a second.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use serde_json::json;

use super::MSG;
use super::admin_api::revoke_and_expect_closed;
use crate::admin::{AdminClient, AdminSecretFile};
use crate::client::HubClient;
use crate::cluster::{Cluster, ClusterBuilder};
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::Subscriber;
use crate::token::ALL_SCOPES;

/// The whole scenario, cluster start and stop included.
const BUDGET: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auz_10_a_revocation_through_one_gateway_closes_sockets_on_every_gateway() -> Result<()> {
    let secret = AdminSecretFile::new()?;
    let cluster = ClusterBuilder::new()
        .gateways(2)
        .configure_gateways(|builder| builder.admin(&secret.path()).arg("--topic-binding=owner"))
        .start()
        .await?;
    let outcome = tokio::time::timeout(BUDGET, scenario(&cluster)).await;
    let outcome = outcome.unwrap_or_else(|_| Err(anyhow::anyhow!("took longer than {BUDGET:?}")));
    if let Err(error) = outcome {
        return Err(error.context(cluster.logs_tail()));
    }
    cluster.stop().await
}

/// A client through gateway `gateway` whose token names user `sub` and no topic.
fn user_client(cluster: &Cluster, gateway: usize, topic: &str, sub: &str) -> Result<HubClient> {
    let mut claims = cluster.issuer().claims(topic, ALL_SCOPES, 3600);
    claims["sub"] = json!(sub);
    if let Some(claims) = claims.as_object_mut() {
        claims.remove("hub.topic");
    }
    let token = cluster.issuer().sign(&claims)?;
    Ok(cluster.client(gateway, topic)?.with_token(Some(token)))
}

fn admin_of(cluster: &Cluster, gateway: usize) -> Result<AdminClient> {
    let url = cluster.gateways()[gateway]
        .admin_url()
        .context("the gateway serves no admin API")?;
    Ok(AdminClient::new(url))
}

async fn scenario(cluster: &Cluster) -> Result<()> {
    let topic = admin_of(cluster, 0)?.mint("alice").await?;
    let listed = admin_of(cluster, 1)?.list("user=alice").await?;
    ensure!(
        listed.json()?["topics"][0]["topic"] == topic.as_str(),
        "the other gateway does not list the minted topic: {}",
        listed.body
    );
    let mut sockets = Vec::new();
    for gateway in [0, 1] {
        let alice = user_client(cluster, gateway, &topic, "alice")?;
        let endpoint = alice.subscribe("Patient-open").await?;
        sockets.push(Subscriber::connect_confirmed(&endpoint, MSG).await?);
    }
    let alice = user_client(cluster, 1, &topic, "alice")?;
    alice.publish_ok(&patient_open(&topic, "p-1")).await?;
    for socket in &mut sockets {
        socket.next_event(MSG).await?;
    }
    let bob = user_client(cluster, 0, &topic, "bob")?;
    let on_minted = bob.get_context().await?;
    let on_unknown = bob.with_topic(&random_topic()).get_context().await?;
    ensure!(
        on_minted.status == 403 && on_minted.body == on_unknown.body,
        "bob on alice's topic: {} {:?}; on an unknown topic: {} {:?}",
        on_minted.status,
        on_minted.body,
        on_unknown.status,
        on_unknown.body
    );

    revoke_and_expect_closed(&admin_of(cluster, 1)?, &topic, &mut sockets).await?;
    user_client(cluster, 0, &topic, "alice")?
        .subscribe_with("Patient-open", &[])
        .await?
        .expect_error(403, "alice subscribing to her revoked topic")?;
    Ok(())
}
