//! Without one shared `--public-url`, each gateway names itself in the endpoint URLs it
//! answers: a re-subscribe (15.19) and an unsubscribe (15.29) through another gateway
//! answer the same endpoint id under that gateway's address, and that URL works, because
//! any gateway serves any endpoint. (Behind one load balancer, the production layout, the
//! gateways share `--public-url` and the URLs are identical: the conformance run on a
//! cluster checks that.)

use std::time::Duration;

use anyhow::{Result, ensure};

use crate::client::endpoint_of;
use crate::cluster::ClusterBuilder;
use crate::payloads::random_topic;
use crate::subscriber::Subscriber;

const MSG: Duration = Duration::from_secs(10);

/// The endpoint id of an endpoint URL (its last path segment).
fn id_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c15_19_c15_29_another_gateway_answers_the_same_endpoint_under_its_own_address()
-> Result<()> {
    let cluster = ClusterBuilder::new().nodes(1).gateways(2).start().await?;
    let topic = random_topic();
    let (on_gw0, on_gw1) = (cluster.client(0, &topic)?, cluster.client(1, &topic)?);
    let endpoint = on_gw0.subscribe("Patient-open,Patient-close").await?;

    let reply = on_gw1
        .subscribe_with("Patient-close", &[("hub.channel.endpoint", &endpoint)])
        .await?;
    reply.expect(202, "re-subscribe through gw-1")?;
    let resubscribed = endpoint_of(&reply)?;
    ensure!(
        id_of(&resubscribed) == id_of(&endpoint),
        "15.19: re-subscribe through gw-1 named another endpoint: {resubscribed} vs {endpoint}"
    );
    // The URL gw-1 answered is usable: the subscription attaches through it.
    let subscriber = Subscriber::connect_confirmed(&resubscribed, MSG).await?;
    drop(subscriber);

    let reply = on_gw1.unsubscribe(&endpoint).await?;
    reply.expect(202, "unsubscribe through gw-1")?;
    let unsubscribed = endpoint_of(&reply)?;
    ensure!(
        id_of(&unsubscribed) == id_of(&endpoint),
        "15.29: unsubscribe through gw-1 named another endpoint: {unsubscribed} vs {endpoint}"
    );
    cluster.stop().await
}
