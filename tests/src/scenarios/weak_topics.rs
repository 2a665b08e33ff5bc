//! Guessable topics from outside (TOP-02): under `claim` and `none` the topic comes from the
//! EHR or the app, and the gateway refuses one estimated below 122 random bits (a patient
//! id, a counter, a time-based or name-based UUID) with a 400 saying why, for subscribe,
//! publish, get-context and unsubscribe alike; a UUID v4 or a long random string is served.
//! `--weak-topics allow` serves them, and start-up warns.

use anyhow::{Result, ensure};

use super::topic_binding::attempts;
use super::{MSG, Rig};
use crate::client::HubClient;
use crate::payloads::{patient_open, random_topic};

/// Topics an EHR might hand out that a stranger could guess.
/// (A topic shorter than 16 characters is refused before this check, as malformed.)
const GUESSABLE: &[&str] = &[
    "patient-0000012345",
    "session-000000000000000000000000000000000000000000000042",
    "encounter-20261203-000042-drsmith",
    "c232ab00-9414-11ec-b3c8-9e6bdeced846", // UUID v1: time and host
    "017f22e2-79b0-7cc3-98c4-dc0c0c07398f", // UUID v7: time
];

/// Every request naming `client`'s topic answers 400 with the guessable-topic reason.
async fn refused_everywhere(client: &HubClient) -> Result<()> {
    let endpoint = format!(
        "{}/ws/unknown",
        client.hub_url().trim_end_matches("/api/hub")
    );
    for (what, reply) in attempts(client, &endpoint).await? {
        reply.expect_error(400, &format!("{what} on {:?}", client.topic()))?;
        ensure!(
            reply.body.contains("guessable"),
            "{what} on {:?}: the reason does not say why: {:?}",
            client.topic(),
            reply.body
        );
    }
    Ok(())
}

/// A random topic (the control) is served: subscribe, attach, publish, deliver.
async fn random_topic_served(rig: &Rig, client: &HubClient) -> Result<()> {
    let mut subscriber = rig.subscriber(client, "Patient-open").await?;
    client
        .publish_ok(&patient_open(client.topic(), "p-1"))
        .await?;
    subscriber.next_event(MSG).await?;
    Ok(())
}

#[tokio::test]
async fn top_02_claim_binding_refuses_guessable_topics_and_serves_random_ones() -> Result<()> {
    let rig = Rig::start().await?;
    for topic in GUESSABLE {
        refused_everywhere(&rig.client(topic)?).await?;
    }
    random_topic_served(&rig, &rig.client(&uuid::Uuid::new_v4().to_string())?).await?;
    random_topic_served(&rig, &rig.client(&random_topic())?).await?;
    rig.gateway.stop().await
}

#[tokio::test]
async fn top_02_no_binding_refuses_guessable_topics_too() -> Result<()> {
    let rig = Rig::start_with(|builder| builder.arg("--topic-binding=none")).await?;
    let anyone = rig.client(&random_topic())?;
    for topic in GUESSABLE {
        refused_everywhere(&anyone.with_topic(topic)).await?;
    }
    random_topic_served(&rig, &anyone.with_topic(&uuid::Uuid::new_v4().to_string())).await?;
    rig.gateway.stop().await
}

#[tokio::test]
async fn top_02_weak_topics_allow_serves_them_and_is_warned() -> Result<()> {
    let rig = Rig::start_with(|builder| builder.arg("--weak-topics=allow")).await?;
    ensure!(
        rig.gateway
            .process()
            .stderr_text()
            .contains("--weak-topics allow"),
        "start-up did not warn about --weak-topics allow"
    );
    random_topic_served(&rig, &rig.client(GUESSABLE[0])?).await?;
    rig.gateway.stop().await
}
