//! TOP-03, no enumeration oracle: a token that may not use a topic gets the same status and
//! body, in the same time, whether the topic exists or not. 5,000 get-context requests for
//! topics that exist (with a subscriber and an open context) and 5,000 for fresh random
//! topics, interleaved, under each binding policy that refuses (`claim`, `owner`); the two
//! latency samples must not differ significantly (two-sided Mann–Whitney U, p > 0.01).
//!
//! The same measurement runs against the embedded hub and against a cluster (two hub
//! nodes behind one gateway), where the refusal is decided on the topic's owner node.
//!
//! A timing check: ignored by `make test`, run by `make soak`.

use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use fhircast_proto::placement::owner_of;
use serde_json::json;

use super::Rig;
use crate::admin::{AdminClient, AdminSecretFile};
use crate::client::HubClient;
use crate::cluster::ClusterBuilder;
use crate::gateway::GatewayBuilder;
use crate::issuer::TestIssuer;
use crate::payloads::{patient_open, random_topic};
use crate::token::ALL_SCOPES;

const SAMPLES: usize = 5000;
const EXISTING_TOPICS: usize = 50;
/// The binding policies that refuse a topic the token may not use.
const POLICIES: [&str; 2] = ["claim", "owner"];

/// The two-sided p-value of the Mann–Whitney U test (normal approximation, ties averaged).
fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut rank_sum_a = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_a += all[i..=j].iter().filter(|(_, in_a)| *in_a).count() as f64 * rank;
        i = j + 1;
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let sd = (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt();
    let z = (u - mean).abs() / sd;
    // Two-sided tail of the standard normal (Abramowitz–Stegun 7.1.26 for erfc).
    let t = 1.0 / (1.0 + 0.327_591_1 * z / std::f64::consts::SQRT_2);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    poly * (-(z * z) / 2.0).exp()
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

async fn timed(client: &HubClient) -> Result<(f64, u16, String)> {
    let started = Instant::now();
    let reply = client.get_context().await?;
    Ok((
        started.elapsed().as_secs_f64() * 1e6,
        reply.status,
        reply.body,
    ))
}

/// Returns the node a topic is placed on (a constant for the embedded hub).
type NodeOf<'a> = &'a dyn Fn(&str) -> String;

/// Returns a fresh random topic placed on the same node as `topic`.
fn fresh_beside(topic: &str, node_of: NodeOf<'_>) -> String {
    let node = node_of(topic);
    loop {
        let fresh = random_topic();
        if node_of(&fresh) == node {
            return fresh;
        }
    }
}

/// Probes `existing` and fresh topics alternately with `intruder`; returns the p-value.
/// Each fresh topic is placed on the node of the existing topic it is paired with, so a
/// difference between nodes (one slower, or owning more of the existing topics) is not
/// taken for a difference between existing and unknown topics.
async fn compare(
    policy: &str,
    intruder: &HubClient,
    existing: &[String],
    node_of: NodeOf<'_>,
) -> Result<f64> {
    let (mut on_existing, mut on_unknown) = (Vec::new(), Vec::new());
    let mut answers = std::collections::BTreeSet::new();
    for n in 0..SAMPLES {
        let target = &existing[n % existing.len()];
        let known = intruder.with_topic(target);
        let unknown = intruder.with_topic(&fresh_beside(target, node_of));
        // Which goes first alternates, so neither kind always follows the other.
        let (first, second) = if n % 2 == 0 {
            (&known, &unknown)
        } else {
            (&unknown, &known)
        };
        let (micros_first, status, body) = timed(first).await?;
        answers.insert((status, body));
        let (micros_second, status, body) = timed(second).await?;
        answers.insert((status, body));
        let (on_known, on_fresh) = if n % 2 == 0 {
            (micros_first, micros_second)
        } else {
            (micros_second, micros_first)
        };
        on_existing.push(on_known);
        on_unknown.push(on_fresh);
    }
    ensure!(
        answers.len() == 1,
        "{policy}: existing and unknown topics got different answers: {answers:?}"
    );
    let p = mann_whitney_p(&on_existing, &on_unknown);
    eprintln!(
        "TOP-03 {policy}: median {:.0} µs (existing) vs {:.0} µs (unknown), p = {p:.3}, answer {:?}",
        median(&mut on_existing),
        median(&mut on_unknown),
        answers.iter().next()
    );
    Ok(p)
}

/// A client of the hub at `hub_url` whose token names user `sub` and another topic.
fn intruder(issuer: &TestIssuer, hub_url: &str, sub: &str) -> Result<HubClient> {
    let mut claims = issuer.claims(&random_topic(), ALL_SCOPES, 3600);
    claims["sub"] = json!(sub);
    claims["client_id"] = json!("prober");
    let token = issuer.sign(&claims)?;
    Ok(HubClient::new(hub_url, &random_topic(), Some(token)))
}

/// Mints [`EXISTING_TOPICS`] topics for alice through `admin`, opens a context on each
/// through the hub at `hub_url`, then has mallory probe them against fresh topics on the
/// same nodes (`node_of`); fails unless both get one answer in indistinguishable time
/// (p > 0.01).
async fn measure(
    policy: &str,
    admin: &AdminClient,
    issuer: &TestIssuer,
    hub_url: &str,
    node_of: NodeOf<'_>,
) -> Result<()> {
    let mut existing = Vec::new();
    for _ in 0..EXISTING_TOPICS {
        let topic = admin.mint("alice").await?;
        let mut claims = issuer.claims(&topic, ALL_SCOPES, 3600);
        claims["sub"] = json!("alice");
        let owner = HubClient::new(hub_url, &topic, Some(issuer.sign(&claims)?));
        owner.publish_ok(&patient_open(&topic, "p-owner")).await?;
        existing.push(topic);
    }
    let mallory = intruder(issuer, hub_url, "mallory")?;
    let p = compare(policy, &mallory, &existing, node_of).await?;
    ensure!(
        p > 0.01,
        "{policy}: existing and unknown topics differ in time (p = {p:.4})"
    );
    Ok(())
}

/// The gateway flags of a measurement: the policy, the admin API, no rate limits.
fn probed(builder: GatewayBuilder, secret: &AdminSecretFile, policy: &str) -> GatewayBuilder {
    builder
        .admin(&secret.path())
        .arg(format!("--topic-binding={policy}"))
        .arg("--rate-limit-per-second=0")
        .arg("--topic-refusals-per-minute=0")
}

#[tokio::test]
#[ignore = "timing check: run by make soak"]
async fn top_03_forbidden_and_unknown_topics_take_the_same_time() -> Result<()> {
    let secret = AdminSecretFile::new()?;
    for policy in POLICIES {
        let rig = Rig::start_with(|builder| probed(builder, &secret, policy)).await?;
        let admin = AdminClient::new(rig.gateway.admin_url().context("admin url")?);
        let one_node = |_: &str| String::new();
        measure(
            policy,
            &admin,
            &rig.issuer,
            &rig.gateway.hub_url(),
            &one_node,
        )
        .await?;
        rig.gateway.stop().await?;
    }
    Ok(())
}

/// The same on a cluster (two hub nodes, one gateway): the refusal is decided on the
/// topic's owner, after a gRPC hop and, for a topic no node runs, an acquire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing check: run by make soak"]
async fn top_03_forbidden_and_unknown_topics_take_the_same_time_on_a_cluster() -> Result<()> {
    let secret = AdminSecretFile::new()?;
    for policy in POLICIES {
        let cluster = ClusterBuilder::new()
            .nodes(2)
            .gateways(1)
            .configure_gateways(|builder| probed(builder, &secret, policy))
            .start()
            .await?;
        let gateway = &cluster.gateways()[0];
        let admin = AdminClient::new(gateway.admin_url().context("admin url")?);
        let ids: Vec<String> = cluster
            .nodes()
            .iter()
            .map(|node| node.id().to_owned())
            .collect();
        let node_of = |topic: &str| {
            let placed = owner_of(
                &cluster.key().topic_ref(topic),
                ids.iter().map(String::as_str),
            );
            placed.unwrap_or_default().to_owned()
        };
        let measured = measure(
            &format!("{policy} (cluster)"),
            &admin,
            cluster.issuer(),
            &gateway.hub_url(),
            &node_of,
        )
        .await;
        if let Err(error) = measured {
            return Err(error.context(cluster.logs_tail()));
        }
        cluster.stop().await?;
    }
    Ok(())
}

#[test]
fn mann_whitney_tells_equal_from_shifted_samples() {
    let a: Vec<f64> = (0..500).map(|n| f64::from(n % 97)).collect();
    let same: Vec<f64> = (0..500).map(|n| f64::from((n * 7) % 97)).collect();
    let shifted: Vec<f64> = a.iter().map(|x| x + 20.0).collect();
    assert!(mann_whitney_p(&a, &same) > 0.5);
    assert!(mann_whitney_p(&a, &shifted) < 1e-6);
}
