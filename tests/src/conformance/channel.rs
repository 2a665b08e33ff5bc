//! Checklist items 15, 20–28, 94–96: the WebSocket channel: confirmation, lease expiry,
//! replay of the current context, denials, endpoint lifetime and delivery order.

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};

use super::assert::{ensure_denial, expect_denial_then_close, expect_echo, expect_event, id_of};
use super::{Check, Ctx, MSG, SILENCE, check};
use crate::payloads::{imaging_study_open, patient_open, random_topic};
use crate::subscriber::{ConnectError, Subscriber};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(15, c15_15_confirmation_is_first_message),
        check!(20, c15_20_lease_expiry_closes_socket),
        check!(21, c15_21_lease_expiry_sends_denial),
        check!(22, c15_22_replay_latest_open_per_anchor_before_live),
        check!(23, c15_23_replay_keeps_timestamp),
        check!(24, c15_24_replay_keeps_id),
        check!(25, c15_25_replay_only_granted_events),
        check!(26, c15_26_no_replay_without_context),
        check!(27, c15_27_denial_shape),
        check!(28, c15_28_denial_then_close),
        check!(94, c15_94_bad_endpoints_refused_at_handshake),
        check!(95, c15_95_unattached_endpoint_expires),
        check!(96, c15_96_per_topic_order_is_preserved),
    ]
}

/// 15.15: the first message is a confirmation with mode, topic, canonical events and a
/// numeric lease (default 3600 at most).
async fn c15_15_confirmation_is_first_message(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let subscriber = ctx
        .subscriber(&client, "patient-open,PATIENT-CLOSE")
        .await?;
    let confirmation = subscriber.confirmation();
    ensure!(
        confirmation["hub.topic"] == topic.as_str(),
        "hub.topic: {confirmation}"
    );
    ensure!(
        confirmation["hub.events"] == "Patient-open,Patient-close",
        "hub.events: {confirmation}"
    );
    let lease = confirmation["hub.lease_seconds"]
        .as_u64()
        .context("hub.lease_seconds is not a positive integer")?;
    ensure!((1..=3600).contains(&lease), "default lease is {lease}");
    Ok(())
}

async fn short_lease_subscriber(ctx: &Ctx, topic: &str) -> Result<Subscriber> {
    let client = ctx.client(topic).await?;
    let subscriber = ctx
        .subscriber_with(&client, "Patient-open", &[("hub.lease_seconds", "2")])
        .await?;
    let lease = subscriber.confirmation()["hub.lease_seconds"].as_u64();
    ensure!(
        matches!(lease, Some(1..=2)),
        "requested a 2 s lease, confirmation says {lease:?}"
    );
    Ok(subscriber)
}

/// 15.20: when the lease expires, the hub closes the socket.
async fn c15_20_lease_expiry_closes_socket(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let mut subscriber = short_lease_subscriber(&ctx, &topic).await?;
    loop {
        match subscriber
            .next_incoming(Duration::from_secs(2) + MSG)
            .await
            .context("waiting for the lease to end")?
        {
            crate::subscriber::Incoming::Message(message) if message["hub.mode"] == "denied" => {}
            crate::subscriber::Incoming::Message(message) => {
                bail!("unexpected message before the close: {message}")
            }
            crate::subscriber::Incoming::Closed(_) => return Ok(()),
            crate::subscriber::Incoming::Ended(why) => {
                bail!("stream ended without a close frame: {why}")
            }
        }
    }
}

/// 15.21: on lease expiry the hub sends a denial before closing.
async fn c15_21_lease_expiry_sends_denial(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let mut subscriber = short_lease_subscriber(&ctx, &topic).await?;
    expect_denial_then_close(&mut subscriber, &topic, Duration::from_secs(2) + MSG).await?;
    Ok(())
}

/// Opens Patient P1 and a (patient-less) ImagingStudy S1 with distinctive timestamps.
async fn open_two_anchors(ctx: &Ctx, topic: &str) -> Result<(Value, Value)> {
    let client = ctx.client(topic).await?;
    let mut patient = patient_open(topic, "p-replay");
    patient["timestamp"] = json!("2021-03-04T05:06:07.891Z");
    let mut study = imaging_study_open(topic, None, "s-replay");
    study["timestamp"] = json!("2021-03-04T05:06:08.123+01:00");
    client.publish_ok(&patient).await?;
    client.publish_ok(&study).await?;
    Ok((patient, study))
}

/// Compares a replayed event with what was originally sent (ignoring `context.versionId`).
fn ensure_replay_of(replayed: &Value, original: &Value) -> Result<()> {
    ensure!(
        replayed["id"] == original["id"],
        "replayed id {} != original {}",
        replayed["id"],
        original["id"]
    );
    ensure!(
        replayed["timestamp"] == original["timestamp"],
        "replayed timestamp {} != original {}",
        replayed["timestamp"],
        original["timestamp"]
    );
    ensure!(
        replayed["event"]["context"] == original["event"]["context"],
        "replayed context differs: {replayed}"
    );
    Ok(())
}

/// 15.22: the replay holds the latest unclosed open per subscribed anchor type, in opening
/// order, before any live event.
async fn c15_22_replay_latest_open_per_anchor_before_live(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    client.publish_ok(&patient_open(&topic, "p-older")).await?;
    let (patient, study) = open_two_anchors(&ctx, &topic).await?;
    let mut subscriber = ctx
        .subscriber(&client, "Patient-open,ImagingStudy-open")
        .await?;
    let first = expect_event(&mut subscriber, "Patient-open", None).await?;
    ensure_replay_of(&first, &patient)?;
    let second = expect_event(&mut subscriber, "ImagingStudy-open", None).await?;
    ensure_replay_of(&second, &study)?;
    let live = patient_open(&topic, "p-live");
    client.publish_ok(&live).await?;
    expect_echo(&mut subscriber, &live).await?;
    Ok(())
}

/// 15.23: replayed events keep their original `timestamp`.
async fn c15_23_replay_keeps_timestamp(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let (patient, _) = open_two_anchors(&ctx, &topic).await?;
    let mut subscriber = ctx
        .subscriber(&ctx.client(&topic).await?, "Patient-open")
        .await?;
    let replayed = expect_event(&mut subscriber, "Patient-open", None).await?;
    ensure!(
        replayed["timestamp"] == patient["timestamp"],
        "timestamp {} != {}",
        replayed["timestamp"],
        patient["timestamp"]
    );
    Ok(())
}

/// 15.24: replayed events keep their original `id`.
async fn c15_24_replay_keeps_id(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let (_, study) = open_two_anchors(&ctx, &topic).await?;
    let mut subscriber = ctx
        .subscriber(&ctx.client(&topic).await?, "ImagingStudy-open")
        .await?;
    expect_event(&mut subscriber, "ImagingStudy-open", Some(id_of(&study))).await?;
    Ok(())
}

/// 15.25: the replay holds nothing outside the granted events.
async fn c15_25_replay_only_granted_events(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let (patient, _) = open_two_anchors(&ctx, &topic).await?;
    let mut subscriber = ctx
        .subscriber(&ctx.client(&topic).await?, "Patient-open")
        .await?;
    let replayed = expect_event(&mut subscriber, "Patient-open", Some(id_of(&patient))).await?;
    ensure_replay_of(&replayed, &patient)?;
    subscriber
        .expect_silence(SILENCE)
        .await
        .context("an ungranted event was replayed")
}

/// 15.26: with no context open, nothing follows the confirmation.
async fn c15_26_no_replay_without_context(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let mut subscriber = ctx
        .subscriber(&ctx.client(&topic).await?, "Patient-open,ImagingStudy-open")
        .await?;
    subscriber
        .expect_silence(SILENCE)
        .await
        .context("something was replayed on an empty topic")
}

/// 15.27: a denial is JSON with `hub.mode:"denied"`, `hub.topic`, `hub.events` and a reason.
async fn c15_27_denial_shape(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    client
        .unsubscribe(subscriber.endpoint())
        .await?
        .expect(202, "unsubscribe")?;
    let denial = subscriber.next_message(MSG).await?;
    ensure_denial(&denial, &topic)?;
    ensure!(
        denial["hub.events"] == "Patient-open",
        "denial hub.events {}",
        denial["hub.events"]
    );
    if let Some(reason) = denial.get("hub.reason") {
        ensure!(
            reason.as_str().is_some_and(|reason| !reason.is_empty()),
            "hub.reason is not a text: {denial}"
        );
    }
    Ok(())
}

/// 15.28: the hub closes the socket after a denial, and nothing is delivered afterwards.
async fn c15_28_denial_then_close(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    client
        .unsubscribe(subscriber.endpoint())
        .await?
        .expect(202, "unsubscribe")?;
    expect_denial_then_close(&mut subscriber, &topic, MSG).await?;
    client.publish_ok(&patient_open(&topic, "p28")).await?;
    match subscriber.next_incoming(SILENCE).await {
        Ok(crate::subscriber::Incoming::Message(message)) => {
            bail!("delivered after the close: {message}")
        }
        _ => Ok(()),
    }
}

async fn expect_refused(endpoint: &str, what: &str) -> Result<()> {
    match Subscriber::try_connect(endpoint).await {
        Err(ConnectError::Refused(status)) => {
            ensure!(
                status == 404 || status == 403,
                "{what}: refused with {status}, expected 404/403"
            );
            Ok(())
        }
        Err(ConnectError::Other(error)) => Err(error.context(what.to_owned())),
        Ok(mut subscriber) => match subscriber.next_incoming(MSG).await? {
            crate::subscriber::Incoming::Message(message) => {
                bail!("{what}: accepted and sent {message}")
            }
            _ => Ok(()),
        },
    }
}

/// 15.94: unknown and already used endpoints are refused at the handshake.
async fn c15_94_bad_endpoints_refused_at_handshake(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let subscriber = ctx.subscriber(&client, "Patient-open").await?;
    let base = subscriber
        .endpoint()
        .rsplit_once('/')
        .map_or("", |(base, _)| base)
        .to_owned();
    expect_refused(&format!("{base}/{}", random_topic()), "unknown endpoint").await?;
    expect_refused(subscriber.endpoint(), "endpoint already attached").await?;
    Ok(())
}

/// 15.95: an endpoint never connected expires after the attach window.
async fn c15_95_unattached_endpoint_expires(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let endpoint = ctx.client(&topic).await?.subscribe("Patient-open").await?;
    // The passage of time is the behaviour under test: the window must elapse unattached.
    tokio::time::sleep(ctx.attach_window + Duration::from_secs(1)).await;
    expect_refused(&endpoint, "endpoint after the attach window").await
}

/// 15.96: 50 events published back to back reach two subscribers in acceptance order.
async fn c15_96_per_topic_order_is_preserved(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut first = ctx.subscriber(&client, "Patient-open").await?;
    let mut second = ctx.subscriber(&client, "Patient-open").await?;
    let mut sent = Vec::with_capacity(50);
    for n in 0..50 {
        let event = patient_open(&topic, &format!("p96-{n}"));
        client.publish_ok(&event).await?;
        sent.push(id_of(&event).to_owned());
    }
    for (label, subscriber) in [("first", &mut first), ("second", &mut second)] {
        for (n, id) in sent.iter().enumerate() {
            let message = subscriber
                .next_event(MSG)
                .await
                .with_context(|| format!("{label} subscriber, event {n}"))?;
            ensure!(
                id_of(&message) == id,
                "{label} subscriber: event {n} is {}, expected {id}",
                id_of(&message)
            );
        }
    }
    Ok(())
}
