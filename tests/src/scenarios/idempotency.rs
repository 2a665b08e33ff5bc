//! Idempotent publish (catalogue ORD-01, ORD-02): a re-posted `(topic, id)` gets the
//! original answer and is not delivered again; the same id for a different event is
//! refused; the key includes the topic, so one topic cannot suppress another's events.

use anyhow::{Context as _, Result, ensure};

use super::{MSG, Rig, SILENCE};
use crate::payloads::{patient_open, random_topic};

#[tokio::test]
async fn ord_01_reposting_the_same_event_is_answered_alike_and_delivered_once() -> Result<()> {
    let rig = Rig::start().await?;
    let client = rig.client(&random_topic())?;
    let mut watcher = rig.subscriber(&client, "Patient-open").await?;
    let event = patient_open(client.topic(), "p-once");
    for attempt in 1..=5 {
        client
            .publish(&event)
            .await?
            .expect(202, &format!("post number {attempt}"))?;
    }
    let delivered = watcher.next_event(MSG).await?;
    ensure!(
        delivered["id"] == event["id"],
        "unexpected delivery {delivered}"
    );
    watcher
        .expect_silence(SILENCE)
        .await
        .context("a re-posted event was delivered again")?;
    rig.gateway.stop().await
}

#[tokio::test]
async fn ord_01_same_id_for_a_different_event_is_409_and_changes_nothing() -> Result<()> {
    let rig = Rig::start().await?;
    let client = rig.client(&random_topic())?;
    let mut watcher = rig.subscriber(&client, "Patient-open").await?;
    let first = patient_open(client.topic(), "p-first");
    client.publish_ok(&first).await?;
    watcher.next_event(MSG).await?;
    let before = client.context().await?;

    let mut impostor = patient_open(client.topic(), "p-impostor");
    impostor["id"] = first["id"].clone();
    client
        .publish(&impostor)
        .await?
        .expect_error(409, "same id, different event")?;
    watcher
        .expect_silence(SILENCE)
        .await
        .context("the refused event was delivered")?;
    ensure!(
        client.context().await? == before,
        "the refused event changed the context"
    );
    rig.gateway.stop().await
}

#[tokio::test]
async fn ord_02_the_same_id_on_two_topics_is_delivered_on_both() -> Result<()> {
    let rig = Rig::start().await?;
    let first = rig.client(&random_topic())?;
    let second = rig.client(&random_topic())?;
    let mut first_watcher = rig.subscriber(&first, "Patient-open").await?;
    let mut second_watcher = rig.subscriber(&second, "Patient-open").await?;
    let on_first = patient_open(first.topic(), "p-a");
    let mut on_second = patient_open(second.topic(), "p-b");
    on_second["id"] = on_first["id"].clone();
    first.publish_ok(&on_first).await?;
    second.publish_ok(&on_second).await?;
    let got_first = first_watcher.next_event(MSG).await?;
    let got_second = second_watcher.next_event(MSG).await?;
    ensure!(
        got_first["event"]["context"] == on_first["event"]["context"],
        "{got_first}"
    );
    ensure!(
        got_second["event"]["context"] == on_second["event"]["context"],
        "{got_second}"
    );
    rig.gateway.stop().await
}
