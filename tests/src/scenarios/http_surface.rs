//! The HTTP surface around the protocol: a configurable base path, `--public-url` as the base
//! of returned endpoints, the STU2-era `POST {base}/{topic}`, JSON subscription requests,
//! CORS preflights, health routes, and text 404s for unknown routes.

use anyhow::{Context as _, Result, ensure};
use serde_json::json;

use super::{MSG, Rig};
use crate::client::{HubClient, endpoint_of};
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::Subscriber;
use crate::token::ALL_SCOPES;

#[tokio::test]
async fn base_path_and_public_url_shape_every_returned_url() -> Result<()> {
    let rig = Rig::start_with(|builder| {
        builder
            .arg("--base-path")
            .arg("/fhircast/hub")
            .arg("--public-url")
            .arg("https://hub.example.org")
    })
    .await?;
    let base = rig.gateway.base_url().to_owned();
    let http = reqwest::Client::new();
    let moved = http
        .get(format!(
            "{base}/fhircast/hub/.well-known/fhircast-configuration"
        ))
        .send()
        .await?;
    ensure!(
        moved.status() == 200,
        "discovery under the base path: {}",
        moved.status()
    );
    let old = http
        .get(format!("{base}/api/hub/.well-known/fhircast-configuration"))
        .send()
        .await?;
    ensure!(
        old.status() == 404,
        "the default base path still answers: {}",
        old.status()
    );

    let topic = random_topic();
    let token = rig.issuer.mint(&topic, ALL_SCOPES, 3600)?;
    let client = HubClient::new(&format!("{base}/fhircast/hub"), &topic, Some(token));
    let endpoint = client.subscribe("Patient-open").await?;
    let id = endpoint
        .strip_prefix("wss://hub.example.org/ws/")
        .with_context(|| format!("endpoint {endpoint} is not under the public URL"))?;
    // The proxy in front would forward wss://hub.example.org/ws/<id> to this listener.
    let local = format!("{}/ws/{id}", base.replacen("http://", "ws://", 1));
    let mut subscriber = Subscriber::connect_confirmed(&local, MSG).await?;
    let event = patient_open(&topic, "p-base");
    client.publish_ok(&event).await?;
    let delivered = subscriber.next_event(MSG).await?;
    ensure!(delivered["id"] == event["id"], "{delivered}");
    rig.gateway.stop().await
}

#[tokio::test]
async fn stu2_topic_path_publishes_only_to_its_own_topic() -> Result<()> {
    let rig = Rig::start().await?;
    let client = rig.client(&random_topic())?;
    let mut subscriber = rig.subscriber(&client, "Patient-open").await?;
    let event = patient_open(client.topic(), "p-stu2");
    let path = format!("{}/{}", client.hub_url(), client.topic());
    client
        .post_raw_to(&path, Some("application/json"), event.to_string())
        .await?
        .expect(202, "POST {hub.url}/{topic}")?;
    let delivered = subscriber.next_event(MSG).await?;
    ensure!(delivered["id"] == event["id"], "{delivered}");

    let elsewhere = format!("{}/{}", client.hub_url(), random_topic());
    let other = patient_open(client.topic(), "p-mismatch");
    client
        .post_raw_to(&elsewhere, Some("application/json"), other.to_string())
        .await?
        .expect_error(400, "topic in the URL differs from event.hub.topic")?;
    rig.gateway.stop().await
}

#[tokio::test]
async fn json_subscription_requests_are_accepted() -> Result<()> {
    let rig = Rig::start().await?;
    let client = rig.client(&random_topic())?;
    let body = json!({
        "hub.channel.type": "websocket",
        "hub.mode": "subscribe",
        "hub.topic": client.topic(),
        "hub.events": "Patient-open",
        "hub.lease_seconds": 600,
    });
    let reply = client
        .post_raw(Some("application/json"), body.to_string())
        .await?;
    reply.expect(202, "JSON subscribe")?;
    let subscriber = Subscriber::connect_confirmed(&endpoint_of(&reply)?, MSG).await?;
    let lease = subscriber.confirmation()["hub.lease_seconds"]
        .as_u64()
        .unwrap_or(0);
    ensure!((1..=600).contains(&lease), "lease {lease}");
    rig.gateway.stop().await
}

#[tokio::test]
async fn cors_preflight_allows_bearer_requests_from_browser_sdks() -> Result<()> {
    let rig = Rig::start().await?;
    // What the Medplum SDK's fetch (credentials: 'include') makes a browser ask.
    let response = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, rig.gateway.hub_url())
        .header("Origin", "https://viewer.example.org")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type,cache-control,x-medplum",
        )
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "preflight: {}",
        response.status()
    );
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    ensure!(
        header("access-control-allow-origin") == "https://viewer.example.org",
        "allow-origin echoes the origin: {}",
        header("access-control-allow-origin")
    );
    ensure!(
        header("access-control-allow-credentials") == "true",
        "allow-credentials"
    );
    for requested in [
        "authorization",
        "content-type",
        "cache-control",
        "x-medplum",
    ] {
        ensure!(
            header("access-control-allow-headers").contains(requested),
            "allow-headers lacks {requested}: {}",
            header("access-control-allow-headers")
        );
    }
    ensure!(
        header("access-control-allow-methods").contains("post"),
        "allow-methods"
    );
    rig.gateway.stop().await
}

#[tokio::test]
async fn health_routes_answer_and_unknown_routes_are_404_with_text() -> Result<()> {
    let rig = Rig::start().await?;
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let response = http
            .get(format!("{}{path}", rig.gateway.base_url()))
            .send()
            .await?;
        ensure!(response.status() == 200, "{path}: {}", response.status());
    }
    let response = http
        .get(format!("{}/no/such/route", rig.gateway.base_url()))
        .send()
        .await?;
    ensure!(
        response.status() == 404,
        "unknown route: {}",
        response.status()
    );
    ensure!(
        !response.text().await?.trim().is_empty(),
        "404 without a reason"
    );
    rig.gateway.stop().await
}
