//! What the hub accepts beyond the letter of STU3 because real clients send it (docs/api.md
//! "What the hub accepts beyond the letter of STU3"), each leniency logged at debug: an ack
//! without `status` (Medplum SDK) counts as 200 while 1xx and 3xx are failures;
//! `endpoint` as an alias of `hub.channel.endpoint` on unsubscribe (Medplum SDK 4.x);
//! `hub.channel.type` in any case; `hub.events` with spaces, a trailing comma, or as a JSON
//! array; proprietary event names delivered exactly as published; several base paths; and
//! the STU2-era habits deployments still send.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use serde_json::json;

use super::{MSG, Rig};
use crate::client::{HubClient, endpoint_of};
use crate::payloads::{envelope, new_id, patient_open, random_topic, resource_item};
use crate::subscriber::{Ack, Subscriber};

const ACK_TIMEOUT: Duration = Duration::from_millis(600);

async fn rig_with_debug_log() -> Result<Rig> {
    Rig::start_with(|builder| {
        builder
            .ack_timeout(ACK_TIMEOUT)
            .env("RUST_LOG", "info,gateway=debug")
    })
    .await
}

/// Subscribes `name` to Patient-open and SyncError with acks under the test's control.
async fn manual_subscriber(client: &HubClient, name: &str) -> Result<Subscriber> {
    let reply = client
        .subscribe_with("Patient-open,SyncError", &[("subscriber.name", name)])
        .await?;
    let subscriber = Subscriber::connect_confirmed(&endpoint_of(&reply)?, MSG).await?;
    subscriber.set_ack(Ack::Silent);
    Ok(subscriber)
}

/// Publishes a Patient-open, waits for `subscriber` to receive it, answers it with `ack`
/// (raw text); returns the event id.
async fn deliver_and_answer(
    client: &HubClient,
    subscriber: &mut Subscriber,
    ack: impl Fn(&str) -> String,
) -> Result<String> {
    let event = patient_open(client.topic(), &format!("p-{}", new_id()));
    client.publish_ok(&event).await?;
    let id = event["id"].as_str().unwrap_or_default().to_owned();
    // A subscriber that joined late first gets the replay of the latest open: skip it.
    loop {
        let delivered = subscriber.next_event(MSG).await?;
        if delivered["id"] == id.as_str() {
            break;
        }
    }
    subscriber.send_text(&ack(&id))?;
    Ok(id)
}

#[tokio::test]
async fn lenient_an_ack_without_status_counts_as_200() -> Result<()> {
    let rig = rig_with_debug_log().await?;
    let client = rig.client(&random_topic())?;
    let mut watcher = rig.subscriber(&client, "SyncError").await?;
    let mut medplum = manual_subscriber(&client, "Medplum-style app").await?;
    let answered = deliver_and_answer(&client, &mut medplum, |id| {
        json!({"id": id, "timestamp": "2026-12-03T10:00:00.000Z"}).to_string()
    })
    .await?;
    // Deliberately time-based: the behaviour under test is that nothing happens when the
    // ack timeout passes. Then a marker: a refusal whose SyncError must be the watcher's
    // next message (anything about `answered` would have come first).
    tokio::time::sleep(ACK_TIMEOUT * 3).await;
    let mut refuser = manual_subscriber(&client, "Refuser").await?;
    let refused = deliver_and_answer(&client, &mut refuser, |id| {
        json!({"id": id, "status": 409}).to_string()
    })
    .await?;
    let sync_error = watcher.next_event(MSG).await?;
    ensure!(
        sync_error.to_string().contains(&refused) && !sync_error.to_string().contains(&answered),
        "the status-less ack caused a SyncError: {sync_error}"
    );
    // Still subscribed: the marker event reached it too, as its next message.
    let delivered = medplum.next_event(MSG).await?;
    ensure!(delivered["id"] == refused.as_str(), "{delivered}");
    let logs = rig.gateway.process().stderr_text();
    ensure!(
        logs.contains("ack without status counted as 200"),
        "the leniency is not logged at debug"
    );
    drop((medplum, refuser, watcher));
    rig.gateway.stop().await
}

#[tokio::test]
async fn lenient_1xx_and_3xx_acks_are_failures() -> Result<()> {
    let rig = rig_with_debug_log().await?;
    let client = rig.client(&random_topic())?;
    let mut watcher = rig.subscriber(&client, "SyncError").await?;
    let mut odd = manual_subscriber(&client, "Odd app").await?;
    for status in [101, 302, 304] {
        let id = deliver_and_answer(&client, &mut odd, |id| {
            json!({"id": id, "status": status}).to_string()
        })
        .await?;
        let sync_error = watcher
            .next_event(MSG)
            .await
            .with_context(|| format!("no SyncError for status {status}"))?;
        let text = sync_error.to_string();
        ensure!(
            text.contains(&id) && text.contains(&format!("status {status}")),
            "SyncError for {status}: {sync_error}"
        );
    }
    drop((odd, watcher));
    rig.gateway.stop().await
}

#[tokio::test]
async fn lenient_unsubscribe_takes_endpoint_as_an_alias() -> Result<()> {
    let rig = rig_with_debug_log().await?;
    let client = rig.client(&random_topic())?;
    let mut subscriber = rig.subscriber(&client, "Patient-open").await?;
    // What Medplum SDK 4.x sends: `endpoint`, and hub.events on an unsubscribe.
    let reply = client
        .post_form(&[
            ("hub.channel.type", "websocket"),
            ("hub.mode", "unsubscribe"),
            ("hub.topic", client.topic()),
            ("hub.events", "Patient-open"),
            ("endpoint", subscriber.endpoint()),
        ])
        .await?;
    reply.expect(202, "unsubscribe with `endpoint`")?;
    ensure!(
        endpoint_of(&reply)? == subscriber.endpoint(),
        "{}",
        reply.body
    );
    let denial = subscriber.next_message(MSG).await?;
    ensure!(denial["hub.mode"] == "denied", "{denial}");
    ensure!(
        subscriber.expect_close(MSG).await? == Some(1000),
        "close code"
    );
    ensure!(
        rig.gateway
            .process()
            .stderr_text()
            .contains("endpoint accepted as hub.channel.endpoint"),
        "the leniency is not logged at debug"
    );
    rig.gateway.stop().await
}

#[tokio::test]
async fn lenient_channel_type_case_and_event_lists() -> Result<()> {
    let rig = rig_with_debug_log().await?;
    let client = rig.client(&random_topic())?;
    let reply = client
        .post_form(&[
            ("hub.channel.type", "WebSocket"),
            ("hub.mode", "subscribe"),
            ("hub.topic", client.topic()),
            ("hub.events", " Patient-open , patient-CLOSE,"),
        ])
        .await?;
    reply.expect(202, "lenient form subscribe")?;
    let subscriber = Subscriber::connect_confirmed(&endpoint_of(&reply)?, MSG).await?;
    ensure!(
        subscriber.confirmation()["hub.events"] == "Patient-open,Patient-close",
        "{}",
        subscriber.confirmation()
    );
    let body = json!({
        "hub.channel.type": "websocket",
        "hub.mode": "subscribe",
        "hub.topic": client.topic(),
        "hub.events": ["Patient-open", "SyncError"],
    });
    let reply = client
        .post_raw(Some("application/json"), body.to_string())
        .await?;
    reply.expect(202, "hub.events as a JSON array")?;
    let subscriber = Subscriber::connect_confirmed(&endpoint_of(&reply)?, MSG).await?;
    ensure!(
        subscriber.confirmation()["hub.events"] == "Patient-open,SyncError",
        "{}",
        subscriber.confirmation()
    );
    // Only one trailing comma; an empty entry in the middle is still an error.
    client
        .subscribe_with("Patient-open,,Patient-close", &[])
        .await?
        .expect_error(400, "empty entry in hub.events")?;
    let logs = rig.gateway.process().stderr_text();
    for leniency in [
        "hub.channel.type accepted case-insensitively",
        "trailing comma in hub.events ignored",
        "spaces around hub.events names ignored",
        "hub.events accepted as a JSON array",
    ] {
        ensure!(logs.contains(leniency), "not logged: {leniency}");
    }
    rig.gateway.stop().await
}

#[tokio::test]
async fn lenient_proprietary_events_are_delivered_as_published() -> Result<()> {
    let rig = Rig::start().await?;
    let client = rig.client(&random_topic())?;
    let mut subscriber = rig.subscriber(&client, "ORG.EXAMPLE.viewer_sync").await?;
    let event = envelope(
        client.topic(),
        "Org.Example.Viewer_Sync",
        vec![resource_item(
            "anything",
            json!({"resourceType": "Basic", "id": "b1"}),
        )],
    );
    client.publish_ok(&event).await?;
    let delivered = subscriber.next_event(MSG).await?;
    ensure!(
        delivered["event"]["hub.event"] == "Org.Example.Viewer_Sync",
        "delivered as {}",
        delivered["event"]["hub.event"]
    );
    ensure!(
        delivered["event"]["context"] == event["event"]["context"],
        "{delivered}"
    );
    rig.gateway.stop().await
}

#[tokio::test]
async fn lenient_several_base_paths_serve_one_hub() -> Result<()> {
    let rig = Rig::start_with(|builder| builder.arg("--base-path").arg("/api/hub,/fhircast/STU3"))
        .await?;
    let topic = random_topic();
    let api = rig.client(&topic)?;
    let medplum_path = HubClient::new(
        &format!("{}/fhircast/STU3", rig.gateway.base_url()),
        &topic,
        Some(rig.issuer.mint(&topic, crate::token::ALL_SCOPES, 3600)?),
    );
    for client in [&api, &medplum_path] {
        client.discovery().await?.expect(200, "discovery")?;
    }
    let mut subscriber = rig.subscriber(&medplum_path, "Patient-open").await?;
    let event = patient_open(&topic, "p-two-paths");
    api.publish_ok(&event).await?;
    let delivered = subscriber.next_event(MSG).await?;
    ensure!(delivered["id"] == event["id"], "{delivered}");
    let context = medplum_path.context().await?;
    ensure!(context["context.type"] == "Patient", "{context}");
    rig.gateway.stop().await
}

#[tokio::test]
async fn lenient_stu2_era_habits_are_accepted() -> Result<()> {
    let rig = Rig::start().await?;
    let client = rig.client(&random_topic())?;
    let mut subscriber = rig.subscriber(&client, "Patient-open").await?;
    subscriber.set_ack(Ack::StatusString("200".to_owned()));
    // An event POSTed to {hub}/{topic} as application/json.
    let event = patient_open(client.topic(), "p-stu2");
    let url = format!("{}/{}", client.hub_url(), client.topic());
    client
        .post_raw_to(&url, Some("application/json"), event.to_string())
        .await?
        .expect_success("event POSTed to {hub}/{topic}")?;
    let delivered = subscriber.next_event(MSG).await?;
    ensure!(delivered["id"] == event["id"], "{delivered}");
    // hub.lease_seconds and hub.events on an unsubscribe are ignored.
    let reply = client
        .post_form(&[
            ("hub.channel.type", "websocket"),
            ("hub.mode", "unsubscribe"),
            ("hub.topic", client.topic()),
            ("hub.channel.endpoint", subscriber.endpoint()),
            ("hub.events", "Patient-open"),
            ("hub.lease_seconds", "3600"),
        ])
        .await?;
    reply.expect(202, "unsubscribe with STU2 parameters")?;
    rig.gateway.stop().await
}
