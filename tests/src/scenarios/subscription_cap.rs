//! INP-11, subscriptions per client: one app and user holds at most
//! `--max-subscriptions-per-client` subscriptions on a topic, connected or not. One more is
//! refused with 429 and a text reason and creates no endpoint; re-subscribing an endpoint
//! it holds does not count again; other apps are unaffected. The topic's owner counts, so
//! the cap holds across the gateways of a cluster.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};

use super::{MSG, Rig, refused};
use crate::client::{HubClient, endpoint_of};
use crate::cluster::ClusterBuilder;
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::Subscriber;

const CAP: usize = 2;
/// The whole cluster scenario, start and stop included.
const BUDGET: Duration = Duration::from_secs(120);

/// Asserts `client` is refused one more subscription, with the cap's reason.
async fn expect_capped(client: &HubClient, what: &str) -> Result<()> {
    let reply = client.subscribe_with("Patient-open", &[]).await?;
    refused(&reply, 429, what)?;
    ensure!(
        reply.body.contains(&format!("at most {CAP}")) && !reply.body.contains("ws://"),
        "{what}: reason {}",
        reply.body
    );
    Ok(())
}

#[tokio::test]
async fn inp_11_one_client_holds_at_most_max_subscriptions_per_client_on_a_topic() -> Result<()> {
    let rig =
        Rig::start_with(|builder| builder.arg(format!("--max-subscriptions-per-client={CAP}")))
            .await?;
    let topic = random_topic();
    let client = rig.client(&topic)?;
    let mut connected = rig.subscriber(&client, "Patient-open").await?;
    let unconnected = client.subscribe("Patient-open").await?;
    expect_capped(&client, "a third subscription").await?;
    // Re-subscribing a held endpoint replaces it; it is not one more.
    let resubscribed = client
        .subscribe_with(
            "Patient-open,Patient-close",
            &[("hub.channel.endpoint", unconnected.as_str())],
        )
        .await?;
    let again = endpoint_of(resubscribed.expect(202, "re-subscribe a held endpoint")?)?;
    ensure!(again == unconnected, "re-subscribe gave {again}");
    // Another app on the topic has its own cap.
    let other = rig.client_as(&topic, "other-app")?;
    other
        .subscribe("Patient-open")
        .await
        .context("another app")?;
    // The refusals took no slot: one unsubscribe makes room for exactly one.
    client
        .unsubscribe(&unconnected)
        .await?
        .expect_success("unsubscribe")?;
    let replacement = client.subscribe("Patient-open").await?;
    Subscriber::connect_confirmed(&replacement, MSG).await?;
    expect_capped(&client, "one beyond the cap after the unsubscribe").await?;
    // The held socket still receives.
    let open = patient_open(&topic, "p-cap");
    client.publish_ok(&open).await?;
    let event = connected.next_event(MSG).await?;
    ensure!(event["id"] == open["id"], "unexpected delivery {event}");
    drop(connected);
    rig.gateway.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inp_11_the_subscriptions_cap_holds_across_two_gateways() -> Result<()> {
    let cluster = ClusterBuilder::new()
        .gateways(2)
        .configure_nodes(|node| node.arg(format!("--max-subscriptions-per-client={CAP}")))
        .start()
        .await?;
    let topic = random_topic();
    let outcome = tokio::time::timeout(BUDGET, async {
        let (via_gw0, via_gw1) = (cluster.client(0, &topic)?, cluster.client(1, &topic)?);
        let endpoint = via_gw0.subscribe("Patient-open").await?;
        let _socket = Subscriber::connect_confirmed(&endpoint, MSG).await?;
        let held = via_gw1.subscribe("Patient-open").await?;
        expect_capped(&via_gw0, "a third subscription through gateway 0").await?;
        expect_capped(&via_gw1, "a third subscription through gateway 1").await?;
        // Re-subscribing through the other gateway counts once.
        via_gw0
            .subscribe_with("Patient-open", &[("hub.channel.endpoint", held.as_str())])
            .await?
            .expect(202, "re-subscribe through gateway 0")?;
        via_gw1
            .unsubscribe(&held)
            .await?
            .expect_success("unsubscribe")?;
        via_gw0
            .subscribe("Patient-open")
            .await
            .context("room after the unsubscribe")?;
        expect_capped(&via_gw1, "one beyond the cap after the unsubscribe").await
    })
    .await;
    let outcome = outcome.unwrap_or_else(|_| Err(anyhow::anyhow!("took longer than {BUDGET:?}")));
    if let Err(error) = outcome {
        return Err(error.context(cluster.logs_tail()));
    }
    cluster.stop().await
}
