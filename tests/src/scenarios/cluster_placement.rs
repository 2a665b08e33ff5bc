//! Placement spreads topics over the hub nodes (DESIGN §6: rendezvous hashing of the topic
//! ref over the live nodes, confirmed by the lease): after one publish to each of 1000
//! fresh topics through the gateways, each of 3 nodes holds the lease of a fair share of
//! them, read from Redis (`fhc:v1:{ref}:lease` holds the owning node's id).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::cluster::{Cluster, ClusterBuilder};
use crate::payloads::{patient_open, random_topic};

/// How many topics are placed.
const TOPICS: usize = 1000;
/// How many publishes are in flight at once.
const CONCURRENCY: usize = 8;
/// The share of the topics each of the 3 nodes must own (an even split is 33%).
const FAIR_SHARE: std::ops::RangeInclusive<f64> = 0.25..=0.42;
/// The whole scenario, cluster start and stop included.
const BUDGET: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_gives_each_of_three_nodes_a_fair_share_of_a_thousand_topics() -> Result<()> {
    let cluster = ClusterBuilder::new().nodes(3).gateways(2).start().await?;
    let outcome = match tokio::time::timeout(BUDGET, scenario(&cluster)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow::anyhow!("the scenario took longer than {BUDGET:?}")),
    };
    if outcome.is_err() {
        eprintln!("{}", cluster.logs_tail());
    }
    outcome?;
    cluster.stop().await
}

async fn scenario(cluster: &Cluster) -> Result<()> {
    let topics: Vec<String> = (0..TOPICS).map(|_| random_topic()).collect();
    let started = Instant::now();
    futures_util::stream::iter(topics.iter().enumerate())
        .map(|(n, topic)| async move {
            let client = cluster.client(n % cluster.gateways().len(), topic)?;
            client
                .publish_ok(&patient_open(topic, &format!("p-{n}")))
                .await
                .with_context(|| format!("publish to topic {n}"))
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    let published = started.elapsed();

    let owners = cluster.owners(&topics).await?;
    let mut shares: BTreeMap<String, usize> = cluster
        .nodes()
        .iter()
        .map(|node| (node.id().to_owned(), 0))
        .collect();
    for (n, owner) in owners.iter().enumerate() {
        let owner = owner
            .as_ref()
            .with_context(|| format!("topic {n} has no lease holder"))?;
        *shares
            .get_mut(owner)
            .with_context(|| format!("topic {n} is held by `{owner}`, not a node"))? += 1;
    }
    println!(
        "placement: {TOPICS} topics published in {} ms ({CONCURRENCY} at once); owned: {shares:?}",
        published.as_millis()
    );
    for (node, owned) in &shares {
        let share = *owned as f64 / TOPICS as f64;
        ensure!(
            FAIR_SHARE.contains(&share),
            "{node} owns {owned} of {TOPICS} topics ({:.1}%), outside {:.0}–{:.0}%: {shares:?}",
            share * 100.0,
            FAIR_SHARE.start() * 100.0,
            FAIR_SHARE.end() * 100.0
        );
    }
    Ok(())
}
