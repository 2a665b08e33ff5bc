//! In a cluster every gateway serves every topic (DESIGN §4, "Attach … on *any* gateway"):
//! a subscription made through one gateway is attached through a second and fed by
//! publishes through a third; its unsubscription through the first reaches the socket on
//! the second as a denial and a normal close; and a socket dropped abnormally on one gateway
//! re-attaches the same endpoint through another and gets what it missed, in order, with
//! the original ids (P3 across gateways; the client side of FLT-02).

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};

use super::{MSG, expect_id, publish};
use crate::cluster::{Cluster, ClusterBuilder};
use crate::conformance::assert::expect_denial_then_close;
use crate::eventually::eventually;
use crate::payloads::random_topic;
use crate::proxy::{TcpProxy, with_address};
use crate::subscriber::Subscriber;

/// Long enough that the dropped subscriber is back before any SyncError would be raised.
const RECONNECT_GRACE: Duration = Duration::from_millis(5000);
/// The whole scenario, cluster start and stop included.
const BUDGET: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_attach_publish_and_unsubscribe_through_different_gateways() -> Result<()> {
    let cluster = ClusterBuilder::new()
        .gateways(3)
        .reconnect_grace(RECONNECT_GRACE)
        .start()
        .await?;
    let outcome = tokio::time::timeout(BUDGET, scenario(&cluster)).await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow::anyhow!("the scenario took longer than {BUDGET:?}")),
    };
    if let Err(error) = outcome {
        return Err(error.context(cluster.logs_tail()));
    }
    cluster.stop().await
}

async fn scenario(cluster: &Cluster) -> Result<()> {
    let topic = random_topic();
    let on_gw0 = cluster.client(0, &topic)?;
    let on_gw2 = cluster.client(2, &topic)?;
    let gw1 = cluster.gateways()[1].address()?;
    // gw-1 is reached through a proxy, so its connections can be cut like a network does.
    let proxy = TcpProxy::start(gw1).await?;

    // Subscribed through gw-0, attached through gw-1, published to through gw-2.
    let endpoint = on_gw0.subscribe("Patient-open").await?;
    ensure!(
        endpoint.contains(&cluster.gateways()[0].address()?.to_string()),
        "the endpoint does not name the gateway that took the subscription: {endpoint}"
    );
    let mut app = Subscriber::connect_confirmed(&proxy.url_for(&endpoint), MSG)
        .await
        .context("attach through gw-1")?;
    let first = publish(&on_gw2, "first").await?;
    expect_id(&mut app, &first, "an event published through gw-2, on gw-1").await?;
    let context = cluster.client(1, &topic)?.context().await?;
    ensure!(
        context
            .pointer("/context/0/resource/id")
            .and_then(|id| id.as_str())
            .is_some_and(|id| id.starts_with("first-")),
        "the context read through gw-1 misses the event: {context}"
    );

    // The socket on gw-1 drops abnormally; what is published meanwhile waits for it.
    proxy.cut_all();
    let mut missed = Vec::new();
    for n in 0..3 {
        missed.push(publish(&on_gw2, &format!("missed-{n}")).await?);
    }
    // The app comes back to the same endpoint through gw-0 (the URL it was given). Until
    // the owner has seen the drop, the endpoint is still in use and the handshake refused.
    let mut app = eventually("re-attach through gw-0", MSG, || async {
        Ok(Subscriber::connect_confirmed(&endpoint, MSG).await.ok())
    })
    .await?;
    for (n, id) in missed.iter().enumerate() {
        expect_id(
            &mut app,
            id,
            &format!("missed event {n}, after the re-attach"),
        )
        .await?;
    }
    let live = publish(&on_gw2, "live").await?;
    expect_id(&mut app, &live, "a live event after the re-attach").await?;

    // Unsubscribed through gw-0: the socket on gw-1 gets its denial and a normal close.
    let other = on_gw0.subscribe("Patient-open").await?;
    let mut doomed = Subscriber::connect_confirmed(&with_address(&other, gw1), MSG)
        .await
        .context("attach the second subscription through gw-1")?;
    // The confirmation is followed by the current context (P4).
    expect_id(
        &mut doomed,
        &live,
        "the current context after the confirmation",
    )
    .await?;
    on_gw0
        .unsubscribe(&other)
        .await?
        .expect(202, "unsubscribe through gw-0")?;
    expect_denial_then_close(&mut doomed, &topic, MSG)
        .await
        .context("the socket on gw-1 after the unsubscribe through gw-0")?;

    // The first subscription is untouched by the second one's end.
    let last = publish(&on_gw2, "last").await?;
    expect_id(&mut app, &last, "an event after the other unsubscribe").await?;
    Ok(())
}
