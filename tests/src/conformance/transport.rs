//! Checklist items 5 and 7: HTTPS only, and `wss://` endpoints. They run against an
//! `https://` hub; against a plain-HTTP one (a hub on loopback, as `make run` starts it)
//! [`super::plan`] skips them and says why.

use std::time::Duration;

use anyhow::{Result, ensure};

use super::{Check, Ctx, MSG, check};
use crate::client::endpoint_of;
use crate::payloads::random_topic;
use crate::subscriber::Subscriber;

/// How long a refused plain-HTTP request may take to fail.
const PLAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(5, c15_05_https_only),
        check!(7, c15_07_endpoint_is_wss),
    ]
}

/// Whether the suite's target is an `https://` hub (else items 5 and 7 are skipped).
pub(super) fn applies(ctx: &Ctx) -> bool {
    ctx.hub_url().starts_with("https://")
}

/// 15.05: the hub answers over HTTPS, and the same URL over plain HTTP gets no answer
/// (no 2xx, no hub document).
async fn c15_05_https_only(ctx: Ctx) -> Result<()> {
    ensure!(
        applies(&ctx),
        "the hub URL {} is not https://",
        ctx.hub_url()
    );
    let discovery = ctx.anonymous("discovery").discovery().await?;
    discovery.expect(200, "discovery over HTTPS")?;
    let plain = ctx.hub_url().replacen("https://", "http://", 1);
    let answer = reqwest::Client::new()
        .get(format!("{plain}/.well-known/fhircast-configuration"))
        .timeout(PLAIN_TIMEOUT)
        .send()
        .await;
    if let Ok(response) = answer {
        ensure!(
            !response.status().is_success(),
            "plain HTTP was answered {}",
            response.status()
        );
    }
    Ok(())
}

/// 15.07: a subscription's endpoint is `wss://`, a socket attaches over it and gets its
/// confirmation, and the same endpoint over `ws://` is refused.
async fn c15_07_endpoint_is_wss(ctx: Ctx) -> Result<()> {
    ensure!(
        applies(&ctx),
        "the hub URL {} is not https://",
        ctx.hub_url()
    );
    let client = ctx.client(&random_topic()).await?;
    let reply = client.subscribe_with("Patient-open", &[]).await?;
    reply.expect(202, "subscribe")?;
    let endpoint = endpoint_of(&reply)?;
    ensure!(endpoint.starts_with("wss://"), "the endpoint is {endpoint}");
    let plain = endpoint.replacen("wss://", "ws://", 1);
    ensure!(
        Subscriber::try_connect(&plain).await.is_err(),
        "{plain} was accepted"
    );
    Subscriber::connect_confirmed(&endpoint, MSG).await?;
    Ok(())
}
