//! Per-client rate limits (INP, TOP-04): keyed on the token's app and user, never on the
//! source address (every client here comes from 127.0.0.1), answered 429 with
//! `Retry-After` and a reason, and changing nothing.

use anyhow::{Result, ensure};

use super::Rig;
use crate::payloads::{patient_open, random_topic};

fn retry_after(reply: &crate::client::Reply) -> Option<u64> {
    reply
        .headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[tokio::test]
async fn inp_requests_beyond_a_clients_burst_get_429_and_other_clients_do_not() -> Result<()> {
    let rig = Rig::start_with(|builder| {
        builder
            .arg("--rate-limit-per-second=1")
            .arg("--rate-limit-burst=5")
    })
    .await?;
    let topic = random_topic();
    let greedy = rig.client_as(&topic, "greedy-app")?;
    for n in 0..5 {
        greedy
            .get_context()
            .await?
            .expect(200, &format!("request {n} within the burst"))?;
    }
    let refused = greedy.publish(&patient_open(&topic, "p-over")).await?;
    refused.expect_error(429, "a publish beyond the burst")?;
    ensure!(
        retry_after(&refused).is_some_and(|seconds| seconds >= 1),
        "429 without a usable Retry-After: {:?}",
        refused.headers
    );
    // Nothing was published, and another app from the same address is served.
    let other = rig.client_as(&topic, "polite-app")?;
    let context = other.context().await?;
    ensure!(
        context["context"] == serde_json::json!([]),
        "the refused publish changed the context: {context}"
    );
    rig.gateway.stop().await
}

#[tokio::test]
async fn top_04_a_client_collecting_topic_refusals_is_throttled() -> Result<()> {
    let rig = Rig::start().await?;
    let own_topic = random_topic();
    let prober = rig.client_as(&own_topic, "prober")?;
    // Ten probes of topics its token does not name (the default limit per minute).
    for n in 0..10 {
        prober
            .with_topic(&random_topic())
            .get_context()
            .await?
            .expect_error(403, &format!("probe {n}"))?;
    }
    // From now on even its own topic is refused for the rest of the minute.
    let throttled = prober.get_context().await?;
    throttled.expect_error(429, "a request after ten topic refusals")?;
    ensure!(
        retry_after(&throttled).is_some_and(|seconds| (1..=60).contains(&seconds)),
        "429 without a Retry-After within the minute: {:?}",
        throttled.headers
    );
    rig.client_as(&own_topic, "honest-app")?
        .get_context()
        .await?
        .expect(200, "another app on the same address")?;
    rig.gateway.stop().await
}
