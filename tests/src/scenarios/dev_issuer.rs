//! The built-in development issuer (`--dev-issuer`): its token endpoint and JWKS, a full
//! round trip with its tokens, and its refusal to start on a non-loopback bind.

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

use super::{MSG, SILENCE};
use crate::client::HubClient;
use crate::gateway::{Gateway, GatewayBuilder};
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::Subscriber;
use crate::token::ALL_SCOPES;

async fn start() -> Result<Gateway> {
    GatewayBuilder::new().dev_issuer().start().await
}

async fn token_response(gateway: &Gateway, topic: &str) -> Result<Value> {
    let response = reqwest::Client::new()
        .post(format!("{}/dev-issuer/token", gateway.base_url()))
        .form(&[("topic", topic), ("scope", ALL_SCOPES)])
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    ensure!(status == 200, "token endpoint answered {status}: {body}");
    serde_json::from_str(&body).with_context(|| format!("token response `{body}`"))
}

#[tokio::test]
async fn dev_issuer_token_endpoint_returns_smart_response() -> Result<()> {
    let gateway = start().await?;
    let topic = random_topic();
    let json = token_response(&gateway, &topic).await?;
    ensure!(
        json["access_token"]
            .as_str()
            .is_some_and(|token| token.split('.').count() == 3),
        "access_token: {json}"
    );
    ensure!(json["token_type"] == "Bearer", "token_type: {json}");
    ensure!(
        json["expires_in"]
            .as_u64()
            .is_some_and(|seconds| seconds > 0),
        "expires_in: {json}"
    );
    let scope = json["scope"].as_str().unwrap_or_default();
    ensure!(
        scope.split(' ').any(|s| s == "fhircast/*.read")
            && scope.split(' ').any(|s| s == "fhircast/*.write"),
        "scope: {json}"
    );
    ensure!(
        json["hub.url"] == gateway.hub_url().as_str(),
        "hub.url: {json}"
    );
    ensure!(json["hub.topic"] == topic.as_str(), "hub.topic: {json}");
    gateway.stop().await
}

#[tokio::test]
async fn dev_issuer_token_round_trip() -> Result<()> {
    let gateway = start().await?;
    let topic = random_topic();
    let json = token_response(&gateway, &topic).await?;
    let token = json["access_token"]
        .as_str()
        .context("access_token")?
        .to_owned();
    let client = HubClient::new(&gateway.hub_url(), &topic, Some(token));
    let endpoint = client.subscribe("Patient-open").await?;
    let mut subscriber = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    let open = patient_open(&topic, "p-dev");
    client.publish_ok(&open).await?;
    let received = subscriber.next_event(MSG).await?;
    ensure!(received["id"] == open["id"], "received {received}");
    subscriber.expect_silence(SILENCE).await?;
    let context = client.context().await?;
    ensure!(context["context.type"] == "Patient", "context {context}");
    drop(subscriber);
    gateway.stop().await
}

#[tokio::test]
async fn dev_issuer_serves_jwks() -> Result<()> {
    let gateway = start().await?;
    let response = reqwest::get(format!("{}/dev-issuer/jwks.json", gateway.base_url())).await?;
    ensure!(
        response.status() == 200,
        "JWKS answered {}",
        response.status()
    );
    let jwks: Value = response.json().await?;
    let keys = jwks["keys"].as_array().context("no keys array")?;
    ensure!(!keys.is_empty(), "empty JWKS");
    ensure!(
        keys.iter()
            .all(|key| key["kty"].is_string() && key["kid"].is_string() && key.get("d").is_none()),
        "bad keys: {jwks}"
    );
    gateway.stop().await
}

async fn expect_refusal(listen: &str) -> Result<()> {
    GatewayBuilder::new()
        .dev_issuer()
        .listen(listen)
        .expect_refused("loopback")
        .await
        .with_context(|| format!("--dev-issuer --listen {listen}"))
}

#[tokio::test]
async fn dev_issuer_refuses_wildcard_bind() -> Result<()> {
    expect_refusal("0.0.0.0:0").await
}

#[tokio::test]
async fn dev_issuer_refuses_non_loopback_bind() -> Result<()> {
    expect_refusal("192.0.2.1:0").await
}
