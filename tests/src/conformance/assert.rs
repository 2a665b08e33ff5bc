//! Small readers and assertions over FHIRcast messages, shared by the checks.

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use crate::client::HubClient;
use crate::payloads::{patient_close, patient_open};
use crate::subscriber::{ConnectError, Subscriber};

use super::MSG;

/// Returns `event.hub.event` of a notification.
pub(crate) fn event_name(message: &Value) -> &str {
    message
        .pointer("/event/hub.event")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Returns the `id` of a notification or request.
pub(crate) fn id_of(message: &Value) -> &str {
    message
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Returns the first context item with `key`.
pub(crate) fn item<'a>(message: &'a Value, key: &str) -> Option<&'a Value> {
    message
        .pointer("/event/context")
        .and_then(Value::as_array)?
        .iter()
        .find(|item| item.get("key").and_then(Value::as_str) == Some(key))
}

/// Returns how many context items have `key`.
pub(crate) fn count_items(message: &Value, key: &str) -> usize {
    message
        .pointer("/event/context")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter(|item| item.get("key").and_then(Value::as_str) == Some(key))
                .count()
        })
        .unwrap_or_default()
}

/// Returns the `id` of the resource in context item `key`.
pub(crate) fn resource_id<'a>(message: &'a Value, key: &str) -> Option<&'a str> {
    item(message, key)?
        .pointer("/resource/id")
        .and_then(Value::as_str)
}

/// Returns `event["context.versionId"]`.
pub(crate) fn version_of(message: &Value) -> Option<&str> {
    message
        .pointer("/event")
        .and_then(|event| event.get("context.versionId"))
        .and_then(Value::as_str)
}

/// Reads the next message and asserts it is `name` (and has `id` when given).
pub(crate) async fn expect_event(
    subscriber: &mut Subscriber,
    name: &str,
    id: Option<&str>,
) -> Result<Value> {
    let message = subscriber
        .next_event(MSG)
        .await
        .with_context(|| format!("waiting for {name}"))?;
    ensure!(
        event_name(&message) == name,
        "expected {name}, got {}: {message}",
        event_name(&message)
    );
    if let Some(id) = id {
        ensure!(
            id_of(&message) == id,
            "expected {name} with id {id}, got {message}"
        );
    }
    Ok(message)
}

/// Reads the next message and asserts it is the echo of `request` (same name, id, context).
pub(crate) async fn expect_echo(subscriber: &mut Subscriber, request: &Value) -> Result<Value> {
    let name = canonical(event_name(request));
    let message = expect_event(subscriber, &name, Some(id_of(request))).await?;
    ensure!(
        message.pointer("/event/context") == request.pointer("/event/context"),
        "context changed in transit: sent {}, got {}",
        request["event"]["context"],
        message["event"]["context"]
    );
    Ok(message)
}

/// Returns the canonical spelling the tests use for a catalog event name.
pub(crate) fn canonical(name: &str) -> String {
    const CATALOG: [&str; 14] = [
        "Patient-open",
        "Patient-close",
        "Encounter-open",
        "Encounter-close",
        "ImagingStudy-open",
        "ImagingStudy-close",
        "DiagnosticReport-open",
        "DiagnosticReport-close",
        "DiagnosticReport-update",
        "DiagnosticReport-select",
        "SyncError",
        "UserLogout",
        "UserHibernate",
        "Home-open",
    ];
    CATALOG
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |known| (*known).to_owned())
}

/// Returns the code of the SyncError coding with `system` suffix (`eventid`, `eventname`, …).
pub(crate) fn sync_error_code<'a>(message: &'a Value, suffix: &str) -> Option<&'a str> {
    let system = format!("https://fhircast.hl7.org/events/syncerror/{suffix}");
    item(message, "operationoutcome")?
        .pointer("/resource/issue")?
        .as_array()?
        .iter()
        .filter_map(|issue| issue.pointer("/details/coding").and_then(Value::as_array))
        .flatten()
        .find(|coding| coding.get("system").and_then(Value::as_str) == Some(system.as_str()))?
        .get("code")
        .and_then(Value::as_str)
}

/// Reads the next message and asserts it is a SyncError about event `failed_id`.
pub(crate) async fn expect_sync_error_about(
    subscriber: &mut Subscriber,
    failed_id: &str,
) -> Result<Value> {
    let message = expect_event(subscriber, "SyncError", None).await?;
    let eventid = sync_error_code(&message, "eventid");
    ensure!(
        eventid == Some(failed_id),
        "SyncError is about {eventid:?}, expected {failed_id}: {message}"
    );
    Ok(message)
}

/// Asserts `message` is a denial for `topic`.
pub(crate) fn ensure_denial(message: &Value, topic: &str) -> Result<()> {
    ensure!(
        message.get("hub.mode").and_then(Value::as_str) == Some("denied"),
        "expected a denial, got {message}"
    );
    ensure!(
        message.get("hub.topic").and_then(Value::as_str) == Some(topic),
        "denial for another topic: {message}"
    );
    ensure!(
        message.get("hub.events").is_some(),
        "denial without hub.events: {message}"
    );
    Ok(())
}

/// Asserts the hub sends a denial and then closes with 1000.
pub(crate) async fn expect_denial_then_close(
    subscriber: &mut Subscriber,
    topic: &str,
    within: std::time::Duration,
) -> Result<Value> {
    let denial = subscriber
        .next_message(within)
        .await
        .context("waiting for the denial")?;
    ensure_denial(&denial, topic)?;
    let code = subscriber
        .expect_close(MSG)
        .await
        .context("waiting for the close after the denial")?;
    if code != Some(1000) {
        bail!("socket closed with {code:?} after the denial, expected 1000");
    }
    Ok(denial)
}

/// Asserts `endpoint` (of a subscription on `topic`) is dead: the handshake is refused with
/// 404, 403 or 410; or it is upgraded, the first message is a denial for `topic` and a close
/// follows. Never a confirmation, never an event.
pub(crate) async fn expect_dead_endpoint(endpoint: &str, topic: &str, what: &str) -> Result<()> {
    match Subscriber::try_connect(endpoint).await {
        Err(ConnectError::Refused(status)) => {
            ensure!(
                matches!(status, 403 | 404 | 410),
                "{what}: handshake refused with {status}, expected 404, 403 or 410"
            );
            Ok(())
        }
        Err(ConnectError::Other(error)) => Err(error.context(format!("{what}: handshake"))),
        Ok(mut socket) => {
            let first = socket
                .next_message(MSG)
                .await
                .with_context(|| format!("{what}: upgraded; waiting for its denial"))?;
            ensure_denial(&first, topic).with_context(|| format!("{what}: upgraded"))?;
            socket
                .expect_close(MSG)
                .await
                .with_context(|| format!("{what}: after the denial"))?;
            Ok(())
        }
    }
}

/// Asserts a live `Patient-open` subscription is as it was after refused requests that
/// would have changed it: publishes a Patient-close (outside its events) and a Patient-open;
/// the Patient-open must be the socket's next message (no confirmation, no denial, no close,
/// not the Patient-close).
pub(crate) async fn expect_patient_open_subscription_unchanged(
    client: &HubClient,
    subscriber: &mut Subscriber,
    what: &str,
) -> Result<()> {
    client
        .publish_ok(&patient_close(client.topic(), "p-unchanged"))
        .await?;
    let open = patient_open(client.topic(), "p-unchanged");
    expect_marker_next(client, subscriber, &open, what).await
}

/// Publishes `marker` and asserts it is `subscriber`'s next message: whatever the actions
/// before it caused on the topic (and must not have: `unwanted` says what) would have come
/// first, since the hub delivers in topic order.
pub(crate) async fn expect_marker_next(
    client: &HubClient,
    subscriber: &mut Subscriber,
    marker: &Value,
    unwanted: &str,
) -> Result<()> {
    client.publish_ok(marker).await?;
    expect_echo(subscriber, marker)
        .await
        .with_context(|| unwanted.to_owned())?;
    Ok(())
}
