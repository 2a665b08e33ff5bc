//! Topic binding (catalogue AUZ-04, TOP-03): a token bound to one topic gets the same
//! answer on a topic that exists and on one that does not: same status, same body, and
//! nothing reaches the other topic's subscribers.

use anyhow::{Context as _, Result, ensure};

use super::{MSG, Rig, SILENCE};
use crate::client::{HubClient, Reply};
use crate::payloads::{patient_open, random_topic};

/// Subscribe, publish and get-context on `target`, with the intruder's token.
async fn attempts(target: &HubClient) -> Result<Vec<(&'static str, Reply)>> {
    Ok(vec![
        (
            "subscribe",
            target.subscribe_with("Patient-open", &[]).await?,
        ),
        (
            "publish",
            target
                .publish(&patient_open(target.topic(), "p-intruder"))
                .await?,
        ),
        ("get context", target.get_context().await?),
    ])
}

#[tokio::test]
async fn auz_04_foreign_topics_look_exactly_like_unknown_topics() -> Result<()> {
    let rig = Rig::start().await?;
    let owner = rig.client(&random_topic())?;
    let mut watcher = rig.subscriber(&owner, "Patient-open").await?;
    let opened = patient_open(owner.topic(), "p-owner");
    owner.publish_ok(&opened).await?;
    watcher.next_event(MSG).await?;
    let before = owner.context().await?;

    let intruder = rig.client(&random_topic())?;
    let existing = attempts(&intruder.with_topic(owner.topic())).await?;
    let unknown = attempts(&intruder.with_topic(&random_topic())).await?;
    for ((what, on_existing), (_, on_unknown)) in existing.iter().zip(&unknown) {
        on_existing.expect_error(403, &format!("{what} on a foreign topic"))?;
        ensure!(
            on_existing.status == on_unknown.status && on_existing.body == on_unknown.body,
            "{what}: foreign topic answered {} {:?}, unknown topic {} {:?}",
            on_existing.status,
            on_existing.body,
            on_unknown.status,
            on_unknown.body
        );
    }
    watcher
        .expect_silence(SILENCE)
        .await
        .context("the intruder's event reached the owner's subscriber")?;
    ensure!(
        owner.context().await? == before,
        "the intruder changed the owner's context"
    );
    rig.gateway.stop().await
}
