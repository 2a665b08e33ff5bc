//! The issuer's keys found through its metadata (TOK, issue of key distribution): given only
//! `--issuer` and `--audience`, the gateway reads `jwks_uri` from the issuer's
//! `.well-known/smart-configuration` at start-up and verifies tokens with those keys; an
//! issuer that publishes no metadata stops the start with a reason instead of a gateway
//! that refuses every token.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};

use super::{MSG, Rig};
use crate::gateway::GatewayBuilder;
use crate::payloads::{patient_open, random_topic};
use crate::subscriber::Subscriber;

#[tokio::test]
async fn tok_the_jwks_is_found_through_the_issuers_smart_configuration() -> Result<()> {
    let rig = Rig::start_with_issuer(|builder, issuer| builder.issuer_discovered(issuer)).await?;
    ensure!(
        rig.gateway
            .process()
            .stderr_text()
            .contains("found the issuer's JWKS in its metadata"),
        "the gateway did not say where it found the keys\n{}",
        rig.gateway.process().logs_tail()
    );
    let client = rig.client(&random_topic())?;
    let endpoint = client.subscribe("Patient-open").await?;
    let mut subscriber = Subscriber::connect_confirmed(&endpoint, MSG).await?;
    let event = patient_open(client.topic(), "p-discovered");
    client.publish_ok(&event).await?;
    crate::conformance::assert::expect_event(&mut subscriber, "Patient-open", event["id"].as_str())
        .await?;
    rig.gateway.stop().await
}

#[tokio::test]
async fn tok_an_issuer_without_metadata_and_no_jwks_url_stops_the_start() -> Result<()> {
    // A loopback port nobody listens on: no metadata to read.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut process = GatewayBuilder::new()
        .arg(format!("--issuer=http://{closed}"))
        .arg("--audience=fhircast-hub")
        .spawn()?;
    let status = process
        .wait_exit(Duration::from_secs(30))
        .await
        .with_context(|| process.logs_tail())?;
    process.forget_child();
    ensure!(!status.success(), "the gateway started without keys");
    let stderr = process.stderr_text();
    ensure!(
        stderr.contains("could not discover the issuer's JWKS") && stderr.contains("--jwks-url"),
        "stderr does not say why\n{}",
        process.logs_tail()
    );
    Ok(())
}
