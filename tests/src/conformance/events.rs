//! Checklist items 35–44 (publishing side), 91 and 92: notification shape, broadcast to
//! every subscriber including the sender, ids and timestamps relayed, event-name case,
//! context-key case, proprietary events.

use anyhow::{Context as _, Result, ensure};
use serde_json::{Value, json};

use super::assert::{event_name, expect_echo, expect_event, expect_marker_next, id_of};
use super::{Check, Ctx, check};
use crate::payloads::{
    encounter_open, envelope, patient, patient_close, patient_open, random_topic, resource_item,
};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(35, c15_35_only_granted_events_delivered),
        check!(36, c15_36_notification_shape),
        check!(37, c15_37_notification_ids_unique),
        check!(38, c15_38_event_post_always_answered),
        check!(39, c15_39_broadcast_includes_sender),
        check!(40, c15_40_broadcast_keeps_request_id),
        check!(41, c15_41_broadcast_keeps_request_timestamp),
        check!(44, c15_44_published_event_name_case_insensitive),
        check!(91, c15_91_context_keys_case_sensitive),
        check!(92, c15_92_proprietary_events_relayed_opaquely),
    ]
}

/// 15.35: a subscriber gets only its granted events (derived ones: see the derived checks).
async fn c15_35_only_granted_events_delivered(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    let first = patient_open(&topic, "p35-a");
    client.publish_ok(&first).await?;
    client.publish_ok(&patient_close(&topic, "p35-a")).await?;
    client
        .publish_ok(&envelope(&topic, "org.example.unrelated_event", vec![]))
        .await?;
    client.publish_ok(&envelope(&topic, "UserLogout", vec![resource_item("parameters", json!({"resourceType": "Parameters", "parameter": [{"name": "code", "valueCoding": {"code": "user-initiated"}}]}))])).await?;
    let second = patient_open(&topic, "p35-b");
    client.publish_ok(&second).await?;
    expect_echo(&mut subscriber, &first).await?;
    // The second Patient-open is the marker: an ungranted event would come before it.
    expect_echo(&mut subscriber, &second)
        .await
        .context("an ungranted event arrived in between")?;
    Ok(())
}

/// 15.36: every notification has `timestamp`, `id` and `event{hub.topic, hub.event, context}`.
async fn c15_36_notification_shape(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx
        .subscriber(&client, "Patient-open,Encounter-open")
        .await?;
    client
        .publish_ok(&encounter_open(&topic, "p36", "e36"))
        .await?;
    client.publish_ok(&patient_open(&topic, "p36")).await?;
    for _ in 0..2 {
        let message = subscriber.next_event(super::MSG).await?;
        ensure!(
            message["timestamp"].as_str().is_some_and(|t| !t.is_empty()),
            "timestamp: {message}"
        );
        ensure!(
            message["id"].as_str().is_some_and(|id| !id.is_empty()),
            "id: {message}"
        );
        ensure!(
            message["event"]["hub.topic"] == topic.as_str(),
            "hub.topic: {message}"
        );
        ensure!(
            message["event"]["hub.event"].is_string(),
            "hub.event: {message}"
        );
        ensure!(message["event"]["context"].is_array(), "context: {message}");
    }
    Ok(())
}

/// 15.37: notification ids are unique: derived events get their own ids, distinct from every
/// request id, and a re-posted request is not delivered twice.
async fn c15_37_notification_ids_unique(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    let sources = [
        encounter_open(&topic, "p37", "e37-a"),
        encounter_open(&topic, "p37", "e37-b"),
    ];
    let mut seen: Vec<String> = sources
        .iter()
        .map(|source| id_of(source).to_owned())
        .collect();
    for source in &sources {
        client.publish_ok(source).await?;
        client
            .publish_ok(source)
            .await
            .context("re-posting the same request")?;
    }
    for _ in &sources {
        let derived = expect_event(&mut subscriber, "Patient-open", None).await?;
        let id = id_of(&derived).to_owned();
        ensure!(
            !seen.contains(&id),
            "notification id {id} is not unique ({seen:?})"
        );
        seen.push(id);
    }
    let marker = patient_open(&topic, "p37-marker");
    expect_marker_next(
        &client,
        &mut subscriber,
        &marker,
        "a re-posted request was delivered again",
    )
    .await
}

/// 15.38: a valid event POST gets 2xx; an invalid one gets 4xx; neither goes unanswered.
async fn c15_38_event_post_always_answered(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    client
        .publish(&patient_open(&topic, "p38"))
        .await?
        .expect(202, "valid Patient-open")?;
    let mut invalid = patient_open(&topic, "p38");
    invalid["event"]["context"] = json!([]);
    client
        .publish(&invalid)
        .await?
        .expect_client_error("Patient-open without a patient")?;
    Ok(())
}

/// 15.39: an accepted event reaches every subscriber of it, the sender included.
async fn c15_39_broadcast_includes_sender(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let sender = ctx.client(&topic).await?;
    let other = ctx.client(&topic).await?;
    let mut sender_socket = ctx.subscriber(&sender, "Patient-open").await?;
    let mut other_socket = ctx.subscriber(&other, "Patient-open").await?;
    let open = patient_open(&topic, "p39");
    sender.publish_ok(&open).await?;
    expect_echo(&mut sender_socket, &open)
        .await
        .context("the sender")?;
    expect_echo(&mut other_socket, &open)
        .await
        .context("the other subscriber")?;
    Ok(())
}

/// 15.40: the broadcast carries the request's `id`.
async fn c15_40_broadcast_keeps_request_id(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    let mut open = patient_open(&topic, "p40");
    open["id"] = json!(format!("custom-id-{}", random_topic()));
    client.publish_ok(&open).await?;
    expect_event(&mut subscriber, "Patient-open", Some(id_of(&open))).await?;
    Ok(())
}

/// 15.41: the broadcast carries the request's `timestamp` unchanged.
async fn c15_41_broadcast_keeps_request_timestamp(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    let mut open = patient_open(&topic, "p41");
    open["timestamp"] = json!("2020-02-29T23:59:59.123456+05:30");
    client.publish_ok(&open).await?;
    let received = expect_echo(&mut subscriber, &open).await?;
    ensure!(
        received["timestamp"] == open["timestamp"],
        "timestamp relayed as {}",
        received["timestamp"]
    );
    Ok(())
}

/// 15.44: `hub.event` in any case is accepted and delivered in canonical case.
async fn c15_44_published_event_name_case_insensitive(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    for spelling in ["PATIENT-OPEN", "patient-open", "pAtIeNt-OpEn"] {
        let mut open = patient_open(&topic, "p44");
        open["event"]["hub.event"] = json!(spelling);
        client.publish_ok(&open).await?;
        let received = expect_event(&mut subscriber, "Patient-open", Some(id_of(&open))).await?;
        ensure!(
            event_name(&received) == "Patient-open",
            "{spelling} delivered as {}",
            event_name(&received)
        );
    }
    Ok(())
}

/// 15.91: a context item keyed `Patient` is not `patient`: refused, not delivered, and the
/// current context is unchanged.
async fn c15_91_context_keys_case_sensitive(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    let open = envelope(
        &topic,
        "Patient-open",
        vec![resource_item("Patient", patient("p91"))],
    );
    client
        .publish(&open)
        .await?
        .expect_error(400, "Patient-open keyed `Patient`")?;
    let context = client.context().await?;
    ensure!(
        context["context.type"] == "" && context["context"] == json!([]),
        "context changed: {context}"
    );
    let marker = patient_open(&topic, "p91-marker");
    expect_marker_next(
        &client,
        &mut subscriber,
        &marker,
        "the refused event was delivered",
    )
    .await
}

/// 15.92: a proprietary reverse-domain event is relayed with its context untouched.
async fn c15_92_proprietary_events_relayed_opaquely(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let name = "org.example.patient_transmogrify";
    let mut subscriber = ctx.subscriber(&client, name).await?;
    ensure!(
        subscriber.confirmation()["hub.events"] == name,
        "confirmation {}",
        subscriber.confirmation()
    );
    let context = vec![
        resource_item(
            "subject",
            json!({"resourceType": "Basic", "id": "b92", "code": {"text": "x"}, "nested": [1, 2.5, {"deep": null}]}),
        ),
        json!({"key": "extension", "data": {"vendor": "acme", "flags": [true, false]}}),
    ];
    let event: Value = envelope(&topic, name, context);
    client.publish_ok(&event).await?;
    expect_echo(&mut subscriber, &event).await?;
    Ok(())
}
