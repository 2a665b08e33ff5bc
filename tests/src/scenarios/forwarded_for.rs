//! `X-Forwarded-For` counts only from the proxies the operator names (`--trusted-proxies`):
//! a refusal's log line then names the client the proxy forwarded for; from anyone else the
//! header is ignored and the line names the TCP peer, so a client cannot choose the address
//! it is logged under.

use anyhow::{Context as _, Result, ensure};

use super::Rig;
use crate::eventually::eventually;
use crate::payloads::random_topic;

const FORWARDED_CLIENT: &str = "203.0.113.7";

/// Sends a request without a token (refused, so logged) claiming `X-Forwarded-For`, and
/// returns the refusal's log line.
async fn refusal_line(rig: &Rig) -> Result<String> {
    let url = format!("{}/{}", rig.gateway.hub_url(), random_topic());
    let status = crate::certs::http_client()
        .get(&url)
        .header(
            "x-forwarded-for",
            format!("198.51.100.1, {FORWARDED_CLIENT}"),
        )
        .send()
        .await
        .context("GET context")?
        .status();
    ensure!(status == 401, "expected 401, got {status}");
    eventually("the refusal is logged", super::MSG, || async {
        let logs = rig.gateway.process().stderr_text();
        Ok(logs
            .lines()
            .find(|line| line.contains("request refused") && line.contains("401"))
            .map(str::to_owned))
    })
    .await
}

#[tokio::test]
async fn tls_forwarded_for_names_the_client_only_behind_a_trusted_proxy() -> Result<()> {
    // The test client reaches the gateway from 127.0.0.1: trusted as a proxy here.
    let trusting = Rig::start_with(|builder| builder.arg("--trusted-proxies=127.0.0.1/32")).await?;
    let line = refusal_line(&trusting).await?;
    ensure!(
        line.contains(&format!("source={FORWARDED_CLIENT}")),
        "behind a trusted proxy the forwarded client is not logged: {line}"
    );
    trusting.gateway.stop().await?;

    let untrusting = Rig::start().await?;
    let line = refusal_line(&untrusting).await?;
    ensure!(
        line.contains("source=127.0.0.1") && !line.contains(FORWARDED_CLIENT),
        "a client chose the address it is logged under: {line}"
    );
    untrusting.gateway.stop().await
}
