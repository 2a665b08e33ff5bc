//! Checklist items 60–64 (and the derived half of 35): open events the hub derives for
//! subscribers of other anchor types, with no duplicates.

use anyhow::{Context as _, Result, ensure};
use serde_json::Value;

use super::assert::{
    count_items, expect_echo, expect_event, expect_marker_next, id_of, item, resource_id,
};
use super::{Check, Ctx, check};
use crate::payloads::{
    diagnostic_report_open, encounter_open, imaging_study_open, patient_close, patient_open,
    random_topic,
};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(60, c15_60_encounter_open_distributed_as_is),
        check!(61, c15_61_encounter_open_derives_patient_open),
        check!(62, c15_62_no_duplicate_derived_patient_open),
        check!(63, c15_63_report_open_derives_imaging_study_open),
        check!(64, c15_64_report_open_derives_patient_open),
    ]
}

/// Asserts `derived` is a derived open of `name` from `source` carrying `key` = the source's
/// item with that resource id.
fn ensure_derived(derived: &Value, source: &Value, key: &str, resource: &str) -> Result<()> {
    ensure!(
        id_of(derived) != id_of(source),
        "derived event reuses the source id {}",
        id_of(source)
    );
    ensure!(
        derived["timestamp"] == source["timestamp"],
        "derived timestamp {} != source {}",
        derived["timestamp"],
        source["timestamp"]
    );
    ensure!(
        resource_id(derived, key) == Some(resource),
        "derived event lacks {key} {resource}: {derived}"
    );
    let original = source["event"]["context"].as_array().and_then(|items| {
        items
            .iter()
            .find(|item| item["key"] == key && item["resource"]["id"] == resource)
    });
    ensure!(
        item(derived, key).map(|item| &item["resource"]) == original.map(|item| &item["resource"]),
        "derived {key} resource differs from the source's"
    );
    Ok(())
}

/// 15.60: `Encounter-open` reaches its subscribers exactly as sent.
async fn c15_60_encounter_open_distributed_as_is(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Encounter-open").await?;
    let open = encounter_open(&topic, "p60", "e60");
    client.publish_ok(&open).await?;
    let received = expect_echo(&mut subscriber, &open).await?;
    ensure!(
        received["timestamp"] == open["timestamp"],
        "timestamp changed"
    );
    let marker = encounter_open(&topic, "p60", "e60-marker");
    expect_marker_next(&client, &mut subscriber, &marker, "an extra event arrived").await
}

/// 15.61 (and 15.35): a Patient-open-only subscriber gets a derived Patient-open keyed
/// `patient`; a Patient-close-only subscriber gets nothing.
async fn c15_61_encounter_open_derives_patient_open(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut patients = ctx.subscriber(&client, "Patient-open").await?;
    let mut closes = ctx.subscriber(&client, "Patient-close").await?;
    let open = encounter_open(&topic, "p61", "e61");
    client.publish_ok(&open).await?;
    let derived = expect_event(&mut patients, "Patient-open", None).await?;
    ensure_derived(&derived, &open, "patient", "p61")?;
    ensure!(
        item(&derived, "encounter").is_none(),
        "derived Patient-open carries the encounter: {derived}"
    );
    let marker = patient_open(&topic, "p61-marker");
    expect_marker_next(&client, &mut patients, &marker, "a second derived event").await?;
    let close = patient_close(&topic, "p61");
    client.publish_ok(&close).await?;
    expect_echo(&mut closes, &close)
        .await
        .context("a Patient-close-only subscriber got a derived open")?;
    Ok(())
}

/// 15.62: a subscriber of both Encounter-open and Patient-open gets only the Encounter-open.
async fn c15_62_no_duplicate_derived_patient_open(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut both = ctx
        .subscriber(&client, "Encounter-open,Patient-open")
        .await?;
    let open = encounter_open(&topic, "p62", "e62");
    client.publish_ok(&open).await?;
    expect_echo(&mut both, &open).await?;
    let marker = patient_open(&topic, "p62-marker");
    expect_marker_next(
        &client,
        &mut both,
        &marker,
        "a duplicate derived Patient-open arrived",
    )
    .await
}

/// 15.63: `DiagnosticReport-open` with two studies gives an ImagingStudy-open-only
/// subscriber one derived ImagingStudy-open per study.
async fn c15_63_report_open_derives_imaging_study_open(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut studies = ctx.subscriber(&client, "ImagingStudy-open").await?;
    let open = diagnostic_report_open(&topic, "r63", "p63", &["s63-a", "s63-b"]);
    client.publish_ok(&open).await?;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let derived = expect_event(&mut studies, "ImagingStudy-open", None).await?;
        ensure!(
            count_items(&derived, "study") == 1,
            "derived ImagingStudy-open has not one study: {derived}"
        );
        let study = resource_id(&derived, "study")
            .unwrap_or_default()
            .to_owned();
        ensure_derived(&derived, &open, "study", &study)?;
        ensure!(
            item(&derived, "report").is_none(),
            "derived ImagingStudy-open carries the report"
        );
        seen.push(study);
    }
    seen.sort();
    ensure!(seen == ["s63-a", "s63-b"], "derived studies {seen:?}");
    let marker = imaging_study_open(&topic, Some("p63"), "s63-marker");
    expect_marker_next(&client, &mut studies, &marker, "a third derived study").await
}

/// 15.64: `DiagnosticReport-open` gives a Patient-open-only subscriber a derived Patient-open.
async fn c15_64_report_open_derives_patient_open(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut patients = ctx.subscriber(&client, "Patient-open").await?;
    let open = diagnostic_report_open(&topic, "r64", "p64", &["s64"]);
    client.publish_ok(&open).await?;
    let derived = expect_event(&mut patients, "Patient-open", None).await?;
    ensure_derived(&derived, &open, "patient", "p64")?;
    let marker = patient_open(&topic, "p64-marker");
    expect_marker_next(&client, &mut patients, &marker, "a second derived event").await
}
