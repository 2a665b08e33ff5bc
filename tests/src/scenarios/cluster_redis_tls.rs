//! The cluster on Redis as a hospital runs it: TLS only (`rediss://`, a CA of its own that
//! the processes trust through the trust store) with an ACL user and the `default` user
//! disabled. Hub nodes and gateways connect, heartbeat, commit and fan out through it.

use anyhow::{Result, ensure};

use super::{MSG, expect_id, publish};
use crate::cluster::{ClusterBuilder, RedisTopology};
use crate::payloads::random_topic;
use crate::redis::RedisOptions;
use crate::subscriber::Subscriber;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_runs_on_a_tls_redis_with_an_acl_user() -> Result<()> {
    let redis = RedisOptions::new()
        .user("fhircast-hub", "s3cret-for-tests")
        .tls();
    let cluster = ClusterBuilder::new()
        .topology(RedisTopology::Single(redis))
        .nodes(2)
        .gateways(2)
        .start()
        .await?;
    let url = cluster.redis().url();
    ensure!(
        url.starts_with("rediss://fhircast-hub:"),
        "not a TLS ACL URL: {url}"
    );

    let topic = random_topic();
    let subscriber_side = cluster.client(0, &topic)?;
    let publisher_side = cluster.client(1, &topic)?;
    let endpoint = subscriber_side.subscribe("Patient-open").await?;
    let mut app = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    let id = publish(&publisher_side, "over tls").await?;
    expect_id(&mut app, &id, "an event committed and fanned out over TLS").await?;
    ensure!(
        cluster.owner(&topic).await?.is_some(),
        "no node holds the topic's lease"
    );
    drop(app);
    cluster.stop().await
}
