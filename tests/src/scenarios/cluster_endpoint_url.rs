//! A subscription has one endpoint URL whichever gateway a request about it goes through:
//! a re-subscribe (15.19) and an unsubscribe (15.29) through another gateway answer the URL
//! the subscription was given ("`{"hub.channel.endpoint": "<same url>"}`"), even when the
//! gateways do not share one `--public-url`.
//!
//! KNOWN PRODUCT BUG (ignored until fixed; run with `cargo nextest run -p hub-tests
//! --run-ignored ignored-only cluster_endpoint_url`): gateway/src/http/subscribe.rs builds
//! the answer from the answering gateway's own base (`endpoint_url(&endpoint)`), so through
//! gw-1 the endpoint handed out by gw-0 comes back as `ws://<gw-1>/ws/<same id>`. Behind one
//! shared `--public-url` (the production layout, and the conformance run on a cluster) the
//! two URLs coincide and nothing shows.

use anyhow::{Result, ensure};

use crate::client::endpoint_of;
use crate::cluster::ClusterBuilder;
use crate::payloads::random_topic;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "KNOWN PRODUCT BUG: a request through another gateway answers that gateway's URL \
            for the endpoint (gateway/src/http/subscribe.rs), not the URL it was given"]
async fn c15_19_c15_29_requests_through_another_gateway_answer_the_same_endpoint_url() -> Result<()>
{
    let cluster = ClusterBuilder::new().nodes(1).gateways(2).start().await?;
    let topic = random_topic();
    let (on_gw0, on_gw1) = (cluster.client(0, &topic)?, cluster.client(1, &topic)?);
    let endpoint = on_gw0.subscribe("Patient-open,Patient-close").await?;

    let reply = on_gw1
        .subscribe_with("Patient-close", &[("hub.channel.endpoint", &endpoint)])
        .await?;
    reply.expect(202, "re-subscribe through gw-1")?;
    let resubscribed = endpoint_of(&reply)?;
    let reply = on_gw1.unsubscribe(&endpoint).await?;
    reply.expect(202, "unsubscribe through gw-1")?;
    let unsubscribed = endpoint_of(&reply)?;
    cluster.stop().await?;

    ensure!(
        resubscribed == endpoint,
        "15.19: re-subscribe through gw-1 answered {resubscribed}, the endpoint is {endpoint}"
    );
    ensure!(
        unsubscribed == endpoint,
        "15.29: unsubscribe through gw-1 answered {unsubscribed}, the endpoint is {endpoint}"
    );
    Ok(())
}
