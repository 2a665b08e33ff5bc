//! Checklist items 15, 20–28, 94–96: the WebSocket channel: confirmation, lease expiry,
//! replay of the current context, denials, endpoint lifetime and delivery order.

use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::{Value, json};

use tokio::task::JoinSet;

use super::assert::{
    ensure_denial, expect_dead_endpoint, expect_denial_then_close, expect_echo, expect_event,
    expect_marker_next, id_of,
};
use super::{Check, Ctx, MSG, check};
use crate::payloads::{imaging_study_open, patient_open, random_topic};
use crate::subscriber::{ConnectError, Incoming, Subscriber};

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

/// 15.25: the replay holds nothing outside the granted events: after the replayed
/// Patient-open, the next message is a live event (the marker; a replay comes before it).
async fn c15_25_replay_only_granted_events(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let (patient, _) = open_two_anchors(&ctx, &topic).await?;
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    let replayed = expect_event(&mut subscriber, "Patient-open", Some(id_of(&patient))).await?;
    ensure_replay_of(&replayed, &patient)?;
    let marker = patient_open(&topic, "p25-marker");
    expect_marker_next(
        &client,
        &mut subscriber,
        &marker,
        "an ungranted event was replayed",
    )
    .await
}

/// 15.26: with no context open, nothing follows the confirmation: the next message is a
/// live event (the marker; a replay comes before it).
async fn c15_26_no_replay_without_context(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx
        .subscriber(&client, "Patient-open,ImagingStudy-open")
        .await?;
    let marker = patient_open(&topic, "p26-marker");
    expect_marker_next(
        &client,
        &mut subscriber,
        &marker,
        "something was replayed on an empty topic",
    )
    .await
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

/// 15.28: after a denial the hub closes the socket (1000), and nothing is delivered to that
/// endpoint afterwards: a reconnect is dead (refused, or denied and closed), also after an
/// event was published. Verified to fail when the hub sends an ended endpoint's denial
/// without the close frame (`deny_and_close` in `gateway/src/ws/upgrade.rs`).
async fn c15_28_denial_then_close(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut subscriber = ctx.subscriber(&client, "Patient-open").await?;
    let endpoint = subscriber.endpoint().to_owned();
    client
        .unsubscribe(&endpoint)
        .await?
        .expect(202, "unsubscribe")?;
    expect_denial_then_close(&mut subscriber, &topic, MSG).await?;
    expect_dead_endpoint(&endpoint, &topic, "reconnecting after the denial").await?;
    client.publish_ok(&patient_open(&topic, "p28")).await?;
    expect_dead_endpoint(&endpoint, &topic, "reconnecting after a later event").await
}

/// Asserts a second handshake on an endpoint with a live socket is refused: any 4xx at the
/// handshake, or upgraded and closed at once without a confirmation (or anything else).
async fn expect_second_handshake_refused(endpoint: &str) -> Result<()> {
    let mut probe = match Subscriber::try_connect(endpoint).await {
        Err(ConnectError::Refused(status)) => {
            ensure!(
                (400..500).contains(&status),
                "second handshake on a live endpoint refused with {status}, expected 4xx"
            );
            return Ok(());
        }
        Err(ConnectError::Other(error)) => return Err(error.context("second handshake")),
        Ok(probe) => probe,
    };
    match probe
        .next_incoming(MSG)
        .await
        .context("second handshake on a live endpoint was upgraded and not closed")?
    {
        Incoming::Closed(_) | Incoming::Ended(_) => Ok(()),
        Incoming::Message(message) => {
            bail!("second handshake on a live endpoint was upgraded and sent {message}")
        }
    }
}

/// 15.94: an endpoint id the hub never issued is refused at the handshake (404 or 403, no
/// upgrade). A second handshake on an endpoint with a live socket is refused (4xx, or
/// upgraded and closed without a confirmation) and leaves the live socket as it was: the
/// next event published is the live socket's very next message, and a SyncError watcher
/// gets that event next too, no SyncError about the live subscriber (checked after the
/// reconnect grace, after which a hub would raise one for a lost connection). Verified to
/// fail against the hub before the fix (a17a1d6), where the probe replaced the live
/// socket's registration and the live socket ended silently.
async fn c15_94_bad_endpoints_refused_at_handshake(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let client = ctx.client(&topic).await?;
    let mut live = ctx
        .subscriber_with(&client, "Patient-open", &[("subscriber.name", "Live")])
        .await?;
    let mut watcher = ctx
        .subscriber_with(
            &client,
            "Patient-open,SyncError",
            &[("subscriber.name", "Watcher")],
        )
        .await?;
    let base = live
        .endpoint()
        .rsplit_once('/')
        .map_or("", |(base, _)| base)
        .to_owned();
    match Subscriber::try_connect(&format!("{base}/{}", random_topic())).await {
        Err(ConnectError::Refused(404 | 403)) => {}
        Err(ConnectError::Refused(status)) => {
            bail!(
                "an endpoint id the hub never issued was refused with {status}, expected 404 or 403"
            )
        }
        Err(ConnectError::Other(error)) => return Err(error.context("unknown endpoint")),
        Ok(_) => bail!("the handshake on an endpoint id the hub never issued was upgraded"),
    }
    // An event first, so a hub has something a lost-connection SyncError could be about.
    let before = patient_open(&topic, "p94-before");
    client.publish_ok(&before).await?;
    expect_echo(&mut live, &before).await?;
    expect_echo(&mut watcher, &before).await?;
    expect_second_handshake_refused(live.endpoint()).await?;
    ctx.wait_out_reconnect_grace().await;
    let marker = patient_open(&topic, "p94-marker");
    client.publish_ok(&marker).await?;
    expect_echo(&mut live, &marker)
        .await
        .context("the live socket after a second handshake on its endpoint")?;
    expect_echo(&mut watcher, &marker)
        .await
        .context("the SyncError watcher after a second handshake on a live endpoint")?;
    Ok(())
}

/// 15.95: an endpoint never connected expires after the attach window: it is dead then
/// (refused at the handshake, or denied and closed).
async fn c15_95_unattached_endpoint_expires(ctx: Ctx) -> Result<()> {
    let topic = random_topic();
    let endpoint = ctx.client(&topic).await?.subscribe("Patient-open").await?;
    // The passage of time is the behaviour under test: the window must elapse unattached.
    tokio::time::sleep(ctx.attach_window + Duration::from_secs(1)).await;
    expect_dead_endpoint(&endpoint, &topic, "endpoint after the attach window").await
}

/// 15.96: events published concurrently by four clients (15 each, each client its own
/// token) reach three subscribers exactly once each, all in one identical order that keeps
/// each publisher's own order (a marker published last is the next message after them).
/// Verified to fail when a socket writes the envelopes queued behind a batch's first one
/// before it (`on_outbox` in `gateway/src/ws/connection.rs`).
async fn c15_96_per_topic_order_is_preserved(ctx: Ctx) -> Result<()> {
    const PUBLISHERS: usize = 4;
    const EACH: usize = 15;
    let topic = random_topic();
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        let client = ctx.client(&topic).await?;
        subscribers.push(ctx.subscriber(&client, "Patient-open").await?);
    }
    let mut tasks = JoinSet::new();
    for publisher in 0..PUBLISHERS {
        let client = ctx.client(&topic).await?;
        tasks.spawn(async move {
            let mut ids = Vec::with_capacity(EACH);
            for n in 0..EACH {
                let event = patient_open(client.topic(), &format!("p96-{publisher}-{n}"));
                client.publish_ok(&event).await?;
                ids.push(id_of(&event).to_owned());
            }
            anyhow::Ok(ids)
        });
    }
    let mut sent: Vec<Vec<String>> = Vec::with_capacity(PUBLISHERS);
    while let Some(joined) = tasks.join_next().await {
        sent.push(joined.context("publisher task")??);
    }
    let marker = patient_open(&topic, "p96-marker");
    ctx.client(&topic).await?.publish_ok(&marker).await?;
    let total = PUBLISHERS * EACH;
    let mut first_order: Option<Vec<String>> = None;
    for (index, subscriber) in subscribers.iter_mut().enumerate() {
        let mut order = Vec::with_capacity(total);
        for n in 0..total {
            let message = subscriber
                .next_event(MSG)
                .await
                .with_context(|| format!("subscriber {index}, event {n} of {total}"))?;
            order.push(id_of(&message).to_owned());
        }
        expect_echo(subscriber, &marker)
            .await
            .with_context(|| format!("subscriber {index}: after the {total} events"))?;
        for (publisher, ids) in sent.iter().enumerate() {
            let positions: Vec<Option<usize>> = ids
                .iter()
                .map(|id| order.iter().position(|seen| seen == id))
                .collect();
            ensure!(
                positions.iter().all(Option::is_some),
                "subscriber {index} missed events of publisher {publisher}: {positions:?}"
            );
            ensure!(
                positions.windows(2).all(|pair| pair[0] < pair[1]),
                "subscriber {index} got publisher {publisher}'s events out of order: \
                 positions {positions:?}"
            );
        }
        match &first_order {
            None => first_order = Some(order),
            Some(first) => ensure!(
                *first == order,
                "subscriber {index} got another order than subscriber 0"
            ),
        }
    }
    Ok(())
}
