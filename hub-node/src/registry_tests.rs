//! Actor lifecycle through the registry, with paused time: quiet topics with subscribers
//! stay (without spinning), abandoned ones are dropped after the retention period, empty
//! ones after the idle period, and the registry forgets stopped actors.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use fhircast_proto::event::EventRequest;
use fhircast_proto::{EventName, TopicId, TopicKey};

use super::*;
use crate::bus::MemoryBus;
use crate::store::MemoryStore;
use crate::topic::TopicSettings;
use fhircast_proto::hub::{Caller, Owner, SubscribeCommand, unix_now_ms};

const IDLE: Duration = Duration::from_secs(60);
const RETENTION: Duration = Duration::from_secs(600);

fn registry() -> Registry {
    let store = Arc::new(MemoryStore::new(Arc::new(MemoryBus::new())));
    let settings = TopicSettings {
        idle_stop_ms: 60_000,
        retention_ms: 600_000,
        ..TopicSettings::default()
    };
    Registry::new(
        store,
        settings,
        TopicKey::random(),
        TaskTracker::new(),
        CancellationToken::new(),
    )
}

fn topic() -> TopicId {
    TopicId::parse("registry-test-topic-0123456789", &TopicKey::random()).expect("valid topic")
}

fn patient_open(topic: &TopicId) -> EventRequest {
    let body = json!({
        "timestamp": "2026-01-01T00:00:00Z",
        "id": "evt-1",
        "event": {
            "hub.topic": topic.expose(),
            "hub.event": "Patient-open",
            "context": [{"key": "patient", "resource": {"resourceType": "Patient", "id": "p1"}}]
        }
    });
    EventRequest::from_json(
        &body,
        SystemTime::now(),
        &fhircast_proto::limits::Limits::DEFAULT,
    )
    .expect("valid event")
}

/// Lets virtual time pass in small steps until `condition` holds, or panics at `within`.
async fn wait_until<F, Fut>(within: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + within;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < end,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_quiet_topic_with_a_subscriber_stays_and_keeps_answering() {
    let registry = registry();
    let topic = topic();
    let handle = registry.topic(&topic).await.expect("topic starts");
    let endpoint = handle
        .subscribe(SubscribeCommand {
            events: vec![EventName::parse("Patient-open").expect("valid")],
            lease_seconds: 3600,
            token_expires: unix_now_ms() + 7_200_000,
            subscriber_name: None,
            endpoint: None,
            owner: Owner::default(),
            minted_for: None,
        })
        .await
        .expect("subscribed");
    handle
        .attach(endpoint, "gw-1".to_owned())
        .await
        .expect("attached");
    // Far past the idle and retention periods: a subscribed topic stays. (An actor that
    // spun on a past deadline would never let virtual time reach this point.)
    tokio::time::sleep(RETENTION * 2).await;
    assert_eq!(registry.live_topics(), 1);
    let context = handle
        .current_context(Caller::default())
        .await
        .expect("the actor still answers");
    assert_eq!(context.event_name, None);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_topic_is_dropped_after_the_retention_period() {
    let registry = registry();
    let topic = topic();
    let handle = registry.topic(&topic).await.expect("topic starts");
    handle
        .publish(patient_open(&topic), Caller::default())
        .await
        .expect("accepted");
    tokio::time::sleep(RETENTION - Duration::from_secs(5)).await;
    assert_eq!(
        registry.live_topics(),
        1,
        "dropped before the retention period"
    );
    let context = handle
        .current_context(Caller::default())
        .await
        .expect("still answers");
    assert!(context.event_name.is_some(), "the open context was kept");

    // Reading the context above was activity: the retention period counts from there.
    wait_until(RETENTION + Duration::from_secs(10), || async {
        registry.live_topics() == 0
    })
    .await;
    assert!(handle.is_stopped());
    let fresh = registry.topic(&topic).await.expect("a fresh actor");
    let context = fresh
        .current_context(Caller::default())
        .await
        .expect("answers");
    assert_eq!(
        context.event_name, None,
        "an abandoned session starts empty"
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_topic_stops_after_the_idle_period_and_is_forgotten() {
    let registry = registry();
    let topic = topic();
    let handle = registry.topic(&topic).await.expect("topic starts");
    handle
        .current_context(Caller::default())
        .await
        .expect("answers");
    wait_until(IDLE * 2, || async { registry.live_topics() == 0 }).await;
    assert!(handle.is_stopped());
    let again = registry.topic(&topic).await.expect("respawned on use");
    again
        .current_context(Caller::default())
        .await
        .expect("answers");
    assert_eq!(registry.live_topics(), 1);
}
