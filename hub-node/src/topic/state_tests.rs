//! Unit tests of the pure topic state machine: context stacking, versions, content
//! sharing, replay, derived opens, idempotency, subscriptions, SyncErrors and the seq.

use std::collections::HashSet;
use std::time::SystemTime;

use serde_json::json;

use fhircast_proto::event::EventRequest;
use fhircast_proto::sync_error::{EVENT_ID_SYSTEM, EVENT_NAME_SYSTEM, SUBSCRIBER_NAME_SYSTEM};
use fhircast_proto::{ErrorCode, TopicKey};

use super::*;
use fhircast_proto::hub::TopicError;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

const TOPIC: &str = "topic-0123456789abcdef";
const TS: &str = "2024-05-01T10:00:00.000Z";
const NOW: UnixMs = 1_700_000_000_000;
const DAY_MS: UnixMs = 86_400_000;

fn topic() -> TopicId {
    TopicId::parse(TOPIC, &TopicKey::random()).expect("valid topic")
}

fn state() -> TopicState {
    state_with(TopicSettings::default())
}

fn state_with(settings: TopicSettings) -> TopicState {
    TopicState::new(topic(), settings, 7)
}

fn name(raw: &str) -> EventName {
    EventName::parse(raw).expect("valid event name")
}

fn names(raw: &[&str]) -> Vec<EventName> {
    raw.iter().map(|n| name(n)).collect()
}

/// Builds an event request through the real parser.
fn request_at(
    id: &str,
    timestamp: &str,
    event: &str,
    context: Value,
    version: Option<&str>,
) -> EventRequest {
    let mut body = json!({
        "timestamp": timestamp,
        "id": id,
        "event": {"hub.topic": TOPIC, "hub.event": event, "context": context},
    });
    if let Some(version) = version {
        body["event"]["context.versionId"] = json!(version);
    }
    EventRequest::from_json(
        &body,
        SystemTime::now(),
        &fhircast_proto::limits::Limits::DEFAULT,
    )
    .expect("valid event request")
}

fn request(id: &str, event: &str, context: Value) -> EventRequest {
    request_at(id, TS, event, context, None)
}

fn item(key: &str, resource_type: &str, id: &str) -> Value {
    json!({"key": key, "resource": {"resourceType": resource_type, "id": id}})
}

fn reference(key: &str, resource_type: &str, id: &str) -> Value {
    json!({"key": key, "reference": {"reference": format!("{resource_type}/{id}")}})
}

fn patient_open(id: &str, patient: &str) -> EventRequest {
    request(
        id,
        "Patient-open",
        json!([item("patient", "Patient", patient)]),
    )
}

fn patient_open_at(id: &str, timestamp: &str, patient: &str) -> EventRequest {
    request_at(
        id,
        timestamp,
        "Patient-open",
        json!([item("patient", "Patient", patient)]),
        None,
    )
}

fn patient_close(id: &str, patient: &str) -> EventRequest {
    request(
        id,
        "Patient-close",
        json!([item("patient", "Patient", patient)]),
    )
}

fn encounter_open(id: &str, encounter: &str, patient: &str) -> EventRequest {
    request(
        id,
        "Encounter-open",
        json!([
            item("encounter", "Encounter", encounter),
            item("patient", "Patient", patient)
        ]),
    )
}

fn encounter_close(id: &str, encounter: &str, patient: &str) -> EventRequest {
    request(
        id,
        "Encounter-close",
        json!([
            item("encounter", "Encounter", encounter),
            item("patient", "Patient", patient)
        ]),
    )
}

/// An ImagingStudy-open with only its study: derives nothing.
fn study_open(id: &str, study: &str) -> EventRequest {
    request(
        id,
        "ImagingStudy-open",
        json!([item("study", "ImagingStudy", study)]),
    )
}

fn diagnostic_report_open(id: &str, report: &str, patient: &str, studies: &[&str]) -> EventRequest {
    let mut context = vec![
        item("report", "DiagnosticReport", report),
        item("patient", "Patient", patient),
    ];
    context.extend(
        studies
            .iter()
            .map(|study| item("study", "ImagingStudy", study)),
    );
    request(id, "DiagnosticReport-open", Value::Array(context))
}

fn diagnostic_report_close(id: &str, report: &str, patient: &str) -> EventRequest {
    request(
        id,
        "DiagnosticReport-close",
        json!([
            item("report", "DiagnosticReport", report),
            item("patient", "Patient", patient)
        ]),
    )
}

/// A DiagnosticReport-update whose Bundle id is `bundle-<id>`.
fn report_update(
    id: &str,
    report: &str,
    version: Option<&str>,
    entries: Vec<Value>,
) -> EventRequest {
    request_at(
        id,
        TS,
        "DiagnosticReport-update",
        json!([
            reference("report", "DiagnosticReport", report),
            {"key": "updates", "resource": {
                "resourceType": "Bundle",
                "id": format!("bundle-{id}"),
                "type": "transaction",
                "entry": entries,
            }}
        ]),
        version,
    )
}

fn put(resource_type: &str, id: &str, status: &str) -> Value {
    json!({
        "fullUrl": format!("{resource_type}/{id}"),
        "request": {"method": "PUT", "url": format!("{resource_type}/{id}")},
        "resource": {"resourceType": resource_type, "id": id, "status": status},
    })
}

fn delete(resource_type: &str, id: &str) -> Value {
    json!({
        "fullUrl": format!("{resource_type}/{id}"),
        "request": {"method": "DELETE", "url": format!("{resource_type}/{id}")},
    })
}

fn select(id: &str, report: &str, selected: &[&str]) -> EventRequest {
    let mut context = vec![reference("report", "DiagnosticReport", report)];
    context.extend(
        selected
            .iter()
            .map(|observation| reference("select", "Observation", observation)),
    );
    request(id, "DiagnosticReport-select", Value::Array(context))
}

fn home_open(id: &str) -> EventRequest {
    request(id, "Home-open", json!([]))
}

fn decode(frame: &Bytes) -> Value {
    serde_json::from_slice(frame).expect("frames are JSON")
}

/// Decodes every frame an envelope carries.
fn frames(envelope: &Envelope) -> Vec<Value> {
    match &envelope.kind {
        EnvelopeKind::Event { deliveries, .. } => {
            deliveries.iter().map(|d| decode(&d.frame)).collect()
        }
        EnvelopeKind::Control { action, .. } => match action {
            ControlAction::Confirm { frame, .. } | ControlAction::Deny { frame } => {
                vec![decode(frame)]
            }
            ControlAction::Deliver(delivery) => vec![decode(&delivery.frame)],
        },
    }
}

fn deliveries(envelope: &Envelope) -> &[Delivery] {
    match &envelope.kind {
        EnvelopeKind::Event { deliveries, .. } => deliveries,
        EnvelopeKind::Control { .. } => panic!("expected an event envelope"),
    }
}

fn envelope_seq(envelope: &Envelope) -> u64 {
    envelope.seq
}

fn envelope_exclude(envelope: &Envelope) -> &[EndpointId] {
    match &envelope.kind {
        EnvelopeKind::Event { exclude, .. } => exclude,
        EnvelopeKind::Control { .. } => panic!("expected an event envelope"),
    }
}

/// The frames of the deliveries a subscriber granted `granted` receives.
fn frames_for(envelope: &Envelope, granted: &[&str]) -> Vec<Value> {
    let granted = names(granted);
    deliveries(envelope)
        .iter()
        .filter(|d| d.is_for(&granted))
        .map(|d| decode(&d.frame))
        .collect()
}

/// Publishes an event that must be accepted; returns its single envelope.
fn accept(state: &mut TopicState, event: EventRequest) -> Envelope {
    let (published, effects) = state.publish(event, &poster()).expect("event accepted");
    assert!(matches!(published, Published::Accepted { seq } if seq == state.seq()));
    assert_eq!(effects.envelopes.len(), 1, "one batch per accepted event");
    effects.envelopes.into_iter().next().expect("one envelope")
}

/// Publishes an event that must be refused; returns the error class.
/// Publishes an event that must be refused; returns the refusal's class after checking
/// that the refusal changed nothing (context, version, content and seq).
fn refuse(state: &mut TopicState, event: EventRequest) -> ErrorCode {
    let before = state.current_context();
    let seq = state.seq();
    let code = match state.publish(event, &poster()) {
        Err(TopicError::Rejected(err)) => err.code(),
        other => panic!("expected a rejection, got {other:?}"),
    };
    assert_eq!(
        state.current_context(),
        before,
        "a refusal changed the context"
    );
    assert_eq!(state.seq(), seq, "a refusal consumed a seq");
    code
}

/// The `context.versionId` of the first frame of an envelope.
fn version_of(envelope: &Envelope) -> String {
    frames(envelope)[0]["event"]["context.versionId"]
        .as_str()
        .expect("the frame carries context.versionId")
        .to_owned()
}

/// The app that publishes in these tests (it holds no subscription).
fn poster() -> Owner {
    owner("publisher")
}

fn owner(client: &str) -> Owner {
    Owner {
        client_id: Some(client.to_owned()),
        subject: Some("user-1".to_owned()),
    }
}

fn subscribe_command(events: &[&str]) -> SubscribeCommand {
    SubscribeCommand {
        events: names(events),
        lease_seconds: 3600,
        token_expires: NOW + DAY_MS,
        subscriber_name: Some("Test app".to_owned()),
        endpoint: None,
        owner: owner("viewer"),
        minted_for: None,
    }
}

/// Subscribes and attaches a subscriber granted `events` at `NOW`.
fn subscriber(state: &mut TopicState, events: &[&str]) -> (EndpointId, Attachment) {
    subscriber_with(state, subscribe_command(events))
}

fn subscriber_with(state: &mut TopicState, command: SubscribeCommand) -> (EndpointId, Attachment) {
    let (endpoint, effects) = state.subscribe(command, NOW).expect("subscribed");
    assert_eq!(effects.endpoints_added, vec![endpoint.clone()]);
    let attachment = attached(state, &endpoint, NOW + 1);
    (endpoint, attachment)
}

/// Attaches `endpoint` at `now`, which must succeed with no effects.
fn attached(state: &mut TopicState, endpoint: &EndpointId, now: UnixMs) -> Attachment {
    match state
        .attach(endpoint, "gw-1", now)
        .expect("attach answered")
    {
        (AttachOutcome::Attached(attachment), effects) => {
            assert!(effects.is_empty(), "an attach changed more than the link");
            attachment
        }
        (AttachOutcome::Ended { reason, .. }, _) => panic!("endpoint ended: {reason:?}"),
    }
}

fn replay_frames(attachment: &Attachment) -> Vec<Value> {
    attachment.replay.iter().map(|d| decode(&d.frame)).collect()
}

/// `(hub.event, anchor id)` of each replayed notification.
fn replay_summary(attachment: &Attachment) -> Vec<(String, String)> {
    replay_frames(attachment)
        .iter()
        .map(|frame| {
            let event = frame["event"]["hub.event"]
                .as_str()
                .expect("hub.event")
                .to_owned();
            let anchor = frame["event"]["context"][0]["resource"]["id"]
                .as_str()
                .expect("anchor id")
                .to_owned();
            (event, anchor)
        })
        .collect()
}

fn summary(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(event, anchor)| ((*event).to_owned(), (*anchor).to_owned()))
        .collect()
}

/// The anchor id of the current context, if any.
fn current_anchor(state: &TopicState) -> Option<String> {
    let current = state.current_context();
    current.event_name.as_ref()?;
    current.context[0]["resource"]["id"]
        .as_str()
        .map(str::to_owned)
}

/// The entries of the current context's `content` Bundle.
fn content_entries(state: &TopicState) -> Vec<Value> {
    let current = state.current_context();
    let content = current
        .context
        .iter()
        .find(|item| item["key"] == "content")
        .expect("a current context has a content item");
    assert_eq!(content["resource"]["resourceType"], "Bundle");
    content["resource"]["entry"]
        .as_array()
        .expect("entry array")
        .clone()
}

fn content_ids(state: &TopicState) -> Vec<String> {
    content_entries(state)
        .iter()
        .map(|entry| entry["resource"]["id"].as_str().expect("id").to_owned())
        .collect()
}

fn failure(event_id: &str, failure: SyncFailure, consecutive_timeouts: u32) -> DeliveryFailure {
    DeliveryFailure {
        event_id: event_id.to_owned(),
        event_name: "Patient-open".to_owned(),
        failure,
        consecutive_timeouts,
    }
}

/// The `code`s of the SyncError's `details.coding`, keyed by system.
fn sync_error_codings(frame: &Value) -> Vec<(String, String)> {
    assert_eq!(frame["event"]["hub.event"], "SyncError");
    frame["event"]["context"][0]["resource"]["issue"][0]["details"]["coding"]
        .as_array()
        .expect("codings")
        .iter()
        .map(|coding| {
            (
                coding["system"].as_str().expect("system").to_owned(),
                coding["code"].as_str().expect("code").to_owned(),
            )
        })
        .collect()
}

fn is_deny_for(envelope: &Envelope, expected: &EndpointId) -> bool {
    matches!(
        &envelope.kind,
        EnvelopeKind::Control { endpoint, action: ControlAction::Deny { .. } } if endpoint == expected
    )
}

// ---------------------------------------------------------------------------------------
// Open / close stacking
// ---------------------------------------------------------------------------------------

#[test]
fn opening_a_second_anchor_makes_it_current() {
    let mut state = state();
    accept(&mut state, patient_open("e1", "p1"));
    accept(&mut state, patient_open("e2", "p2"));
    let current = state.current_context();
    assert_eq!(current.event_name, Some(name("Patient-open")));
    assert_eq!(current_anchor(&state).as_deref(), Some("p2"));
}

#[test]
fn closing_the_current_anchor_leaves_no_current_context_and_a_new_version() {
    let mut state = state();
    accept(&mut state, patient_open("e1", "p1"));
    accept(&mut state, patient_open("e2", "p2"));
    let before = state.current_context();
    accept(&mut state, patient_close("e3", "p2"));
    let after = state.current_context();
    assert_eq!(after.event_name, None, "p1 does not become current again");
    assert!(after.context.is_empty());
    assert_eq!(after.to_json()["context.type"], "");
    assert_ne!(after.version_id, before.version_id);
}

#[test]
fn closing_the_current_anchor_keeps_older_anchors_open_for_replay() {
    let mut state = state();
    accept(&mut state, patient_open("e1", "p1"));
    accept(&mut state, patient_open("e2", "p2"));
    accept(&mut state, patient_close("e3", "p2"));
    let (_, attachment) = subscriber(&mut state, &["Patient-open"]);
    assert_eq!(
        replay_summary(&attachment),
        summary(&[("Patient-open", "p1")])
    );
    assert_eq!(replay_frames(&attachment)[0]["id"], "e1");
}

#[test]
fn closing_a_non_current_anchor_leaves_the_current_context_unchanged() {
    let mut state = state();
    accept(&mut state, patient_open("e1", "p1"));
    accept(&mut state, patient_open("e2", "p2"));
    let before = state.current_context();
    accept(&mut state, patient_close("e3", "p1"));
    assert_eq!(state.current_context(), before);
    let (_, attachment) = subscriber(&mut state, &["Patient-open"]);
    assert_eq!(
        replay_summary(&attachment),
        summary(&[("Patient-open", "p2")])
    );
}

#[test]
fn closing_an_anchor_never_opened_changes_nothing_but_is_relayed() {
    let mut state = state();
    accept(&mut state, patient_open("e1", "p1"));
    let before = state.current_context();
    let seq = state.seq();
    let envelope = accept(&mut state, patient_close("e2", "p-unknown"));
    assert_eq!(state.current_context(), before);
    assert_eq!(state.seq(), seq + 1, "the relay is a batch of its own");
    let relayed = frames(&envelope);
    assert_eq!(relayed.len(), 1);
    assert_eq!(relayed[0]["id"], "e2");
    assert_eq!(relayed[0]["event"]["hub.event"], "Patient-close");
    assert_eq!(
        relayed[0]["event"]["context"][0]["resource"]["id"],
        "p-unknown"
    );
}

#[test]
fn reopening_an_open_anchor_makes_it_current_and_keeps_content() {
    let mut state = state();
    let opened = accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let version = version_of(&opened);
    accept(
        &mut state,
        report_update(
            "u1",
            "r1",
            Some(&version),
            vec![put("Observation", "o1", "final")],
        ),
    );
    accept(&mut state, diagnostic_report_open("e2", "r2", "p1", &[]));
    assert_eq!(current_anchor(&state).as_deref(), Some("r2"));
    let version_r2 = state.current_context().version_id;

    accept(&mut state, diagnostic_report_open("e3", "r1", "p1", &[]));
    assert_eq!(current_anchor(&state).as_deref(), Some("r1"));
    assert_eq!(content_ids(&state), vec!["o1"]);
    assert_ne!(state.current_context().version_id, version_r2);
}

#[test]
fn reopening_in_another_tab_keeps_the_other_anchor_open_and_replays_the_latest() {
    let mut state = state();
    accept(&mut state, patient_open("e1", "p1"));
    accept(&mut state, patient_open("e2", "p2"));
    accept(&mut state, patient_open("e3", "p1"));
    assert_eq!(current_anchor(&state).as_deref(), Some("p1"));

    let (_, attachment) = subscriber(&mut state, &["Patient-open"]);
    assert_eq!(
        replay_summary(&attachment),
        summary(&[("Patient-open", "p1")])
    );
    assert_eq!(replay_frames(&attachment)[0]["id"], "e3");

    // p2 is still open: once p1 closes, p2 is the latest unclosed Patient-open.
    accept(&mut state, patient_close("e4", "p1"));
    let (_, attachment) = subscriber(&mut state, &["Patient-open"]);
    assert_eq!(
        replay_summary(&attachment),
        summary(&[("Patient-open", "p2")])
    );
}

#[test]
fn home_open_leaves_no_current_context() {
    let mut state = state();
    accept(&mut state, patient_open("e1", "p1"));
    let before = state.current_context();
    let envelope = accept(&mut state, home_open("e2"));
    let after = state.current_context();
    assert_eq!(after.event_name, None);
    assert!(after.context.is_empty());
    assert_ne!(after.version_id, before.version_id);
    assert_eq!(frames(&envelope)[0]["event"]["hub.event"], "Home-open");
}

// ---------------------------------------------------------------------------------------
// context.versionId
// ---------------------------------------------------------------------------------------

#[test]
fn each_open_carries_its_fresh_version_on_the_distributed_event() {
    let mut state = state();
    let first = accept(&mut state, patient_open("e1", "p1"));
    let v1 = version_of(&first);
    assert_eq!(state.current_context().version_id, v1);
    let second = accept(&mut state, diagnostic_report_open("e2", "r1", "p1", &[]));
    let v2 = version_of(&second);
    assert_eq!(state.current_context().version_id, v2);
    assert_ne!(v1, v2);
    // The derived Patient-open of the same batch carries a version of its own.
    for frame in frames(&second) {
        assert!(frame["event"]["context.versionId"].is_string(), "{frame}");
        assert!(frame["event"].get("context.priorVersionId").is_none());
    }
}

#[test]
fn get_version_changes_on_every_context_change() {
    let mut state = state();
    let mut versions = vec![state.current_context().version_id];
    let steps = [
        patient_open("e1", "p1"),
        patient_open("e2", "p2"),
        patient_open("e3", "p1"),
        home_open("e4"),
        patient_open("e5", "p1"),
        patient_close("e6", "p1"),
        encounter_open("e7", "enc1", "p2"),
    ];
    for step in steps {
        accept(&mut state, step);
        versions.push(state.current_context().version_id);
    }
    let distinct: HashSet<&String> = versions.iter().collect();
    assert_eq!(distinct.len(), versions.len(), "{versions:?}");
}

#[test]
fn update_with_the_current_version_assigns_a_new_one_and_broadcasts_the_prior() {
    let mut state = state();
    let opened = accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let v1 = version_of(&opened);
    let envelope = accept(
        &mut state,
        report_update(
            "u1",
            "r1",
            Some(&v1),
            vec![put("Observation", "o1", "final")],
        ),
    );
    let v2 = state.current_context().version_id;
    assert_ne!(v2, v1);

    let broadcast = frames(&envelope);
    assert_eq!(broadcast.len(), 1);
    let frame = &broadcast[0];
    assert_eq!(frame["id"], "u1");
    assert_eq!(frame["event"]["hub.event"], "DiagnosticReport-update");
    assert_eq!(frame["event"]["context.versionId"], json!(v2));
    assert_eq!(frame["event"]["context.priorVersionId"], json!(v1));
    let bundle = frame["event"]["context"]
        .as_array()
        .expect("context")
        .iter()
        .find(|item| item["key"] == "updates")
        .expect("updates item");
    assert_eq!(bundle["resource"]["id"], "bundle-u1");
    assert_eq!(bundle["resource"]["type"], "transaction");
}

#[test]
fn update_with_a_stale_version_is_a_conflict_and_changes_nothing() {
    let mut state = state();
    let opened = accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let v1 = version_of(&opened);
    accept(
        &mut state,
        report_update(
            "u1",
            "r1",
            Some(&v1),
            vec![put("Observation", "o1", "final")],
        ),
    );
    let code = refuse(
        &mut state,
        report_update(
            "u2",
            "r1",
            Some(&v1),
            vec![put("Observation", "o2", "final")],
        ),
    );
    assert_eq!(code, ErrorCode::Conflict);
}

#[test]
fn update_without_a_version_is_a_bad_request() {
    let mut state = state();
    accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let code = refuse(
        &mut state,
        report_update("u1", "r1", None, vec![put("Observation", "o1", "final")]),
    );
    assert_eq!(code, ErrorCode::BadRequest);
    assert_eq!(code.http_status(), 400);
}

#[test]
fn update_of_an_anchor_never_opened_is_a_conflict() {
    let mut state = state();
    let opened = accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let v1 = version_of(&opened);
    let code = refuse(
        &mut state,
        report_update(
            "u1",
            "r-unknown",
            Some(&v1),
            vec![put("Observation", "o1", "final")],
        ),
    );
    assert_eq!(code, ErrorCode::Conflict);
}

#[test]
fn update_of_an_open_non_current_anchor_is_a_conflict_by_default() {
    let mut state = state();
    let opened = accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let v1 = version_of(&opened);
    accept(&mut state, diagnostic_report_open("e2", "r2", "p1", &[]));
    let code = refuse(
        &mut state,
        report_update(
            "u1",
            "r1",
            Some(&v1),
            vec![put("Observation", "o1", "final")],
        ),
    );
    assert_eq!(code, ErrorCode::Conflict);
}

#[test]
fn update_of_a_non_current_anchor_is_applied_when_enabled_and_keeps_the_current_context() {
    let mut state = state_with(TopicSettings {
        non_current_context_updates: true,
        ..TopicSettings::default()
    });
    let opened = accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let v1 = version_of(&opened);
    accept(&mut state, diagnostic_report_open("e2", "r2", "p1", &[]));
    let before = state.current_context();

    let envelope = accept(
        &mut state,
        report_update(
            "u1",
            "r1",
            Some(&v1),
            vec![put("Observation", "o1", "final")],
        ),
    );
    assert_eq!(
        state.current_context(),
        before,
        "r2 stays current, untouched"
    );
    let frame = &frames(&envelope)[0];
    assert_eq!(frame["event"]["context.priorVersionId"], json!(v1));
    assert_ne!(frame["event"]["context.versionId"], json!(v1));

    // The content landed on r1: re-opening it shows it.
    accept(&mut state, diagnostic_report_open("e3", "r1", "p1", &[]));
    assert_eq!(content_ids(&state), vec!["o1"]);
}

#[test]
fn replay_carries_the_anchor_version_after_updates() {
    let mut state = state();
    let opened = accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let v1 = version_of(&opened);
    accept(
        &mut state,
        report_update(
            "u1",
            "r1",
            Some(&v1),
            vec![put("Observation", "o1", "final")],
        ),
    );
    let v2 = state.current_context().version_id;
    let (_, attachment) = subscriber(&mut state, &["DiagnosticReport-open"]);
    let replay = replay_frames(&attachment);
    assert_eq!(replay.len(), 1);
    assert_eq!(replay[0]["id"], "e1");
    assert_eq!(replay[0]["event"]["context.versionId"], json!(v2));
}

// ---------------------------------------------------------------------------------------
// Content sharing: bundle atomicity
// ---------------------------------------------------------------------------------------

#[test]
fn bundle_failing_midway_applies_none_of_its_entries() {
    let mut state = state();
    let opened = accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let v1 = version_of(&opened);
    let seq = state.seq();
    let code = refuse(
        &mut state,
        report_update(
            "u1",
            "r1",
            Some(&v1),
            vec![
                put("Observation", "o1", "final"),
                delete("Observation", "o-unknown"),
            ],
        ),
    );
    assert_eq!(code, ErrorCode::Conflict);
    assert!(
        content_entries(&state).is_empty(),
        "the first PUT is not visible"
    );
    assert_eq!(state.current_context().version_id, v1);
    assert_eq!(state.seq(), seq);
}

#[test]
fn deleting_a_resource_of_the_original_open_context_is_refused() {
    let mut state = state();
    let opened = accept(
        &mut state,
        diagnostic_report_open("e1", "r1", "p1", &["s1"]),
    );
    let v1 = version_of(&opened);
    let before = state.current_context();
    for original in [
        delete("ImagingStudy", "s1"),
        delete("Patient", "p1"),
        delete("DiagnosticReport", "r1"),
    ] {
        let code = refuse(
            &mut state,
            report_update("u1", "r1", Some(&v1), vec![original]),
        );
        assert_eq!(code, ErrorCode::Conflict);
        assert_eq!(state.current_context(), before);
    }
}

#[test]
fn put_then_delete_across_two_updates_removes_the_resource() {
    let mut state = state();
    let opened = accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let v1 = version_of(&opened);
    accept(
        &mut state,
        report_update(
            "u1",
            "r1",
            Some(&v1),
            vec![
                put("Observation", "o1", "final"),
                put("Observation", "o2", "final"),
            ],
        ),
    );
    assert_eq!(content_ids(&state), vec!["o1", "o2"]);
    let v2 = state.current_context().version_id;
    accept(
        &mut state,
        report_update("u2", "r1", Some(&v2), vec![delete("Observation", "o1")]),
    );
    assert_eq!(content_ids(&state), vec!["o2"]);
    assert_ne!(state.current_context().version_id, v2);
}

#[test]
fn get_content_is_a_collection_bundle_without_request_members() {
    let mut state = state();
    let opened = accept(
        &mut state,
        diagnostic_report_open("e1", "r1", "p1", &["s1"]),
    );
    let original_context = frames(&opened)[0]["event"]["context"].clone();
    let v1 = version_of(&opened);
    accept(
        &mut state,
        report_update(
            "u1",
            "r1",
            Some(&v1),
            vec![
                put("Observation", "o1", "preliminary"),
                put("Observation", "o2", "final"),
                put("DiagnosticReport", "r1", "final"),
            ],
        ),
    );
    let v2 = state.current_context().version_id;
    accept(
        &mut state,
        report_update(
            "u2",
            "r1",
            Some(&v2),
            vec![
                put("Observation", "o1", "amended"),
                delete("Observation", "o2"),
            ],
        ),
    );

    let current = state.current_context();
    assert_eq!(current.to_json()["context.type"], "DiagnosticReport");
    // The context stays as opened, plus one content item.
    let original = original_context.as_array().expect("array");
    assert_eq!(current.context.len(), original.len() + 1);
    assert_eq!(&current.context[..original.len()], original.as_slice());
    let content = current.context.last().expect("content item");
    assert_eq!(content["key"], "content");
    assert_eq!(content["resource"]["resourceType"], "Bundle");
    assert_eq!(content["resource"]["type"], "collection");

    let entries = content_entries(&state);
    assert_eq!(entries.len(), 2);
    for entry in &entries {
        assert!(entry.get("request").is_none(), "{entry}");
        assert!(entry["resource"].get("request").is_none(), "{entry}");
    }
    assert_eq!(entries[0]["resource"]["id"], "o1");
    assert_eq!(entries[0]["resource"]["status"], "amended");
    assert_eq!(entries[0]["fullUrl"], "Observation/o1");
    assert_eq!(entries[1]["resource"]["resourceType"], "DiagnosticReport");
    assert_eq!(entries[1]["resource"]["status"], "final");
}

#[test]
fn get_content_of_an_anchor_without_updates_is_an_empty_bundle() {
    let mut state = state();
    accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    assert!(content_entries(&state).is_empty());
}

#[test]
fn close_discards_content_and_reopen_starts_empty_with_a_fresh_version() {
    let mut state = state();
    let opened = accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let v1 = version_of(&opened);
    accept(
        &mut state,
        report_update(
            "u1",
            "r1",
            Some(&v1),
            vec![put("Observation", "o1", "final")],
        ),
    );
    let v2 = state.current_context().version_id;
    accept(&mut state, diagnostic_report_close("e2", "r1", "p1"));
    assert_eq!(state.current_context().event_name, None);

    let reopened = accept(&mut state, diagnostic_report_open("e3", "r1", "p1", &[]));
    let v3 = version_of(&reopened);
    assert!(content_entries(&state).is_empty());
    assert_eq!(state.current_context().version_id, v3);
    assert_ne!(v3, v1);
    assert_ne!(v3, v2);
    // The version of the closed anchor no longer works either.
    let code = refuse(
        &mut state,
        report_update(
            "u2",
            "r1",
            Some(&v2),
            vec![put("Observation", "o2", "final")],
        ),
    );
    assert_eq!(code, ErrorCode::Conflict);
}

#[test]
fn select_is_relayed_without_a_version() {
    let mut state = state();
    accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let before = state.current_context();
    let envelope = accept(&mut state, select("s1", "r1", &["o1"]));
    let frame = &frames(&envelope)[0];
    assert_eq!(frame["id"], "s1");
    assert_eq!(frame["event"]["hub.event"], "DiagnosticReport-select");
    assert!(frame["event"].get("context.versionId").is_none());
    assert_eq!(state.current_context(), before);
}

#[test]
fn open_anchors_are_capped_and_the_oldest_not_current_goes_first() {
    let mut state = state_with(TopicSettings {
        max_open_contexts: 3,
        ..TopicSettings::default()
    });
    for n in 1..=5 {
        accept(&mut state, patient_open(&format!("e{n}"), &format!("p{n}")));
    }
    assert_eq!(state.open_contexts(), 3);
    assert_eq!(current_anchor(&state).as_deref(), Some("p5"));
    // p1 and p2 were forgotten: closing p5 leaves p3 and p4 open, replay names p4.
    accept(&mut state, patient_close("c5", "p5"));
    let (_, attachment) = subscriber(&mut state, &["Patient-open"]);
    assert_eq!(
        replay_summary(&attachment),
        [("Patient-open".to_owned(), "p4".to_owned())]
    );

    // The current anchor is never the one forgotten, even when derived opens overflow.
    let mut state = state_with(TopicSettings {
        max_open_contexts: 2,
        ..TopicSettings::default()
    });
    accept(
        &mut state,
        diagnostic_report_open("r-open", "r1", "p1", &["s1", "s2", "s3"]),
    );
    assert_eq!(state.open_contexts(), 2);
    assert_eq!(
        state.current_context().event_name,
        Some(name("DiagnosticReport-open"))
    );
}

#[test]
fn twenty_thousand_opens_leave_the_topic_bounded() {
    let mut state = state();
    let cap = TopicSettings::default().max_open_contexts;
    for n in 0..20_000 {
        let event = if n % 2 == 0 {
            patient_open(&format!("p-{n}"), &format!("patient-{n}"))
        } else {
            study_open(&format!("s-{n}"), &format!("study-{n}"))
        };
        accept(&mut state, event);
    }
    assert!(
        state.open_contexts() <= cap,
        "{} open",
        state.open_contexts()
    );
    let (_, attachment) = subscriber(&mut state, &["Patient-open", "ImagingStudy-open"]);
    assert_eq!(
        attachment.replay.len(),
        2,
        "one latest open per anchor type"
    );
}

// ---------------------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------------------

#[test]
fn no_context_means_an_empty_replay() {
    let mut state = state();
    let (_, attachment) = subscriber(&mut state, &["Patient-open", "Encounter-open"]);
    assert!(attachment.replay.is_empty());

    accept(&mut state, patient_open("e1", "p1"));
    accept(&mut state, patient_close("e2", "p1"));
    let (_, attachment) = subscriber(&mut state, &["Patient-open"]);
    assert!(attachment.replay.is_empty());
}

#[test]
fn replay_keeps_the_original_id_and_timestamp() {
    let mut state = state();
    let timestamp = "2023-01-02T03:04:05.678Z";
    accept(&mut state, patient_open_at("original-id", timestamp, "p1"));
    let (_, attachment) = subscriber(&mut state, &["Patient-open"]);
    let replay = replay_frames(&attachment);
    assert_eq!(replay.len(), 1);
    assert_eq!(replay[0]["id"], "original-id");
    assert_eq!(replay[0]["timestamp"], timestamp);
    assert_eq!(replay[0]["event"]["hub.topic"], TOPIC);
    assert_eq!(&*attachment.replay[0].event_id, "original-id");
}

#[test]
fn replay_contains_only_granted_events() {
    let mut state = state();
    accept(&mut state, patient_open("e1", "p1"));
    accept(&mut state, study_open("e2", "s1"));
    let (_, attachment) = subscriber(&mut state, &["ImagingStudy-open", "SyncError"]);
    assert_eq!(
        replay_summary(&attachment),
        summary(&[("ImagingStudy-open", "s1")])
    );
}

#[test]
fn replay_is_chronological_across_anchor_types() {
    let mut state = state();
    accept(&mut state, patient_open("e1", "p1"));
    accept(&mut state, study_open("e2", "s1"));
    accept(&mut state, patient_open("e3", "p2"));
    let (_, attachment) = subscriber(&mut state, &["Patient-open", "ImagingStudy-open"]);
    assert_eq!(
        replay_summary(&attachment),
        summary(&[("ImagingStudy-open", "s1"), ("Patient-open", "p2")])
    );
}

#[test]
fn closed_anchor_is_not_replayed() {
    let mut state = state();
    accept(&mut state, study_open("e1", "s1"));
    accept(&mut state, patient_open("e2", "p1"));
    accept(&mut state, patient_close("e3", "p1"));
    let (_, attachment) = subscriber(&mut state, &["Patient-open", "ImagingStudy-open"]);
    assert_eq!(
        replay_summary(&attachment),
        summary(&[("ImagingStudy-open", "s1")])
    );
}

#[test]
fn attachment_confirms_granted_events_and_reports_epoch_and_seq() {
    let mut state = state();
    accept(&mut state, patient_open("e1", "p1"));
    let (_, attachment) = subscriber(&mut state, &["Patient-open", "SyncError"]);
    assert_eq!(attachment.epoch, 7);
    assert_eq!(attachment.seq, state.seq());
    assert_eq!(attachment.events, names(&["Patient-open", "SyncError"]));
    let confirmation = decode(&attachment.confirmation);
    assert_eq!(confirmation["hub.mode"], "subscribe");
    assert_eq!(confirmation["hub.topic"], TOPIC);
    assert_eq!(confirmation["hub.events"], "Patient-open,SyncError");
}

// ---------------------------------------------------------------------------------------
// Derived open events
// ---------------------------------------------------------------------------------------

#[test]
fn encounter_open_derives_a_patient_open_for_a_patient_only_subscriber() {
    let mut state = state();
    let envelope = accept(&mut state, encounter_open("enc-event", "enc1", "p1"));
    let received = frames_for(&envelope, &["Patient-open"]);
    assert_eq!(received.len(), 1);
    let derived = &received[0];
    assert_eq!(derived["event"]["hub.event"], "Patient-open");
    assert_ne!(derived["id"], "enc-event");
    assert!(derived["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(derived["timestamp"], TS);
    let context = derived["event"]["context"].as_array().expect("context");
    assert_eq!(context.len(), 1);
    assert_eq!(context[0]["key"], "patient");
    assert_eq!(context[0]["resource"]["id"], "p1");
    assert!(context.iter().all(|item| item["key"] != "encounter"));
    // The delivery's event id is the frame's id (what acks name).
    let delivery = deliveries(&envelope)
        .iter()
        .find(|d| d.name == name("Patient-open"))
        .expect("derived delivery");
    assert_eq!(json!(&*delivery.event_id), derived["id"]);
    // The source is distributed as-is to its own subscribers.
    let source = frames_for(&envelope, &["Encounter-open"]);
    assert_eq!(source.len(), 1);
    assert_eq!(source[0]["id"], "enc-event");
}

#[test]
fn subscriber_of_source_and_patient_open_gets_no_derived_copy() {
    let mut state = state();
    let envelope = accept(&mut state, encounter_open("enc-event", "enc1", "p1"));
    let granted = names(&["Encounter-open", "Patient-open"]);
    let received: Vec<&Delivery> = deliveries(&envelope)
        .iter()
        .filter(|d| d.is_for(&granted))
        .collect();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].name, name("Encounter-open"));
    assert_eq!(&*received[0].event_id, "enc-event");
}

#[test]
fn report_open_with_two_studies_derives_two_study_opens_and_one_patient_open() {
    let mut state = state();
    let envelope = accept(
        &mut state,
        diagnostic_report_open("rep-event", "r1", "p1", &["s1", "s2"]),
    );
    let names: Vec<&str> = deliveries(&envelope)
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "DiagnosticReport-open",
            "ImagingStudy-open",
            "ImagingStudy-open",
            "Patient-open"
        ]
    );
    let studies = frames_for(&envelope, &["ImagingStudy-open"]);
    let study_ids: Vec<&Value> = studies
        .iter()
        .map(|frame| &frame["event"]["context"][0]["resource"]["id"])
        .collect();
    assert_eq!(study_ids, [&json!("s1"), &json!("s2")]);
    let patients = frames_for(&envelope, &["Patient-open"]);
    assert_eq!(patients.len(), 1);
    assert_eq!(patients[0]["event"]["context"][0]["resource"]["id"], "p1");
    // Every derived event has its own, distinct id.
    let ids: HashSet<&str> = deliveries(&envelope).iter().map(|d| &*d.event_id).collect();
    assert_eq!(ids.len(), 4);
    // The report stays current; derived opens never move it.
    assert_eq!(current_anchor(&state).as_deref(), Some("r1"));
}

#[test]
fn disabled_derived_events_derive_nothing() {
    let mut state = state_with(TopicSettings {
        derived_events: false,
        ..TopicSettings::default()
    });
    let envelope = accept(
        &mut state,
        diagnostic_report_open("rep-event", "r1", "p1", &["s1", "s2"]),
    );
    assert_eq!(deliveries(&envelope).len(), 1);
    assert!(frames_for(&envelope, &["Patient-open", "ImagingStudy-open"]).is_empty());
    let envelope = accept(&mut state, encounter_open("enc-event", "enc1", "p1"));
    assert_eq!(deliveries(&envelope).len(), 1);
    let (_, attachment) = subscriber(&mut state, &["Patient-open", "ImagingStudy-open"]);
    assert!(attachment.replay.is_empty());
}

#[test]
fn derived_open_is_replayed_to_a_patient_only_subscriber() {
    let mut state = state();
    let envelope = accept(&mut state, encounter_open("enc-event", "enc1", "p1"));
    let derived_id = frames_for(&envelope, &["Patient-open"])[0]["id"].clone();
    let (_, attachment) = subscriber(&mut state, &["Patient-open"]);
    let replay = replay_frames(&attachment);
    assert_eq!(replay.len(), 1);
    assert_eq!(replay[0]["event"]["hub.event"], "Patient-open");
    assert_eq!(replay[0]["id"], derived_id);
    assert_eq!(replay[0]["timestamp"], TS);
    assert_eq!(replay[0]["event"]["context"][0]["resource"]["id"], "p1");
}

#[test]
fn derived_open_replay_is_not_suppressed_once_the_source_anchor_is_closed() {
    let mut state = state();
    accept(&mut state, encounter_open("enc-event", "enc1", "p1"));
    // While the source is open, a subscriber of both gets only the source.
    let (_, attachment) = subscriber(&mut state, &["Encounter-open", "Patient-open"]);
    assert_eq!(
        replay_summary(&attachment),
        summary(&[("Encounter-open", "enc1")])
    );

    accept(&mut state, encounter_close("enc-close", "enc1", "p1"));
    let (_, attachment) = subscriber(&mut state, &["Encounter-open", "Patient-open"]);
    assert_eq!(
        replay_summary(&attachment),
        summary(&[("Patient-open", "p1")])
    );
    let (_, attachment) = subscriber(&mut state, &["Patient-open"]);
    assert_eq!(
        replay_summary(&attachment),
        summary(&[("Patient-open", "p1")])
    );
}

// ---------------------------------------------------------------------------------------
// Idempotency
// ---------------------------------------------------------------------------------------

#[test]
fn same_id_and_same_event_is_a_duplicate_without_envelope() {
    let mut state = state();
    accept(&mut state, patient_open("e1", "p1"));
    let seq = state.seq();
    let before = state.current_context();
    let (published, effects) = state
        .publish(patient_open("e1", "p1"), &poster())
        .expect("duplicate is ok");
    assert_eq!(published, Published::Duplicate);
    assert!(effects.is_empty());
    assert_eq!(state.seq(), seq);
    assert_eq!(state.current_context(), before);
}

#[test]
fn same_id_with_a_different_event_is_a_conflict() {
    let mut state = state();
    accept(&mut state, patient_open("e1", "p1"));
    let seq = state.seq();
    assert_eq!(
        refuse(&mut state, patient_open("e1", "p2")),
        ErrorCode::Conflict
    );
    assert_eq!(
        refuse(&mut state, patient_close("e1", "p1")),
        ErrorCode::Conflict
    );
    assert_eq!(state.seq(), seq);
    assert_eq!(current_anchor(&state).as_deref(), Some("p1"));
}

#[test]
fn same_id_on_different_topics_is_accepted_on_both() {
    let mut first = state();
    let mut second = TopicState::new(
        TopicId::parse("another-topic-0123456789", &TopicKey::random()).expect("valid topic"),
        TopicSettings::default(),
        1,
    );
    accept(&mut first, patient_open("shared-id", "p1"));
    accept(&mut second, patient_open("shared-id", "p1"));
    assert_eq!(first.seq(), 1);
    assert_eq!(second.seq(), 1);
}

#[test]
fn ids_are_forgotten_after_the_idempotency_capacity() {
    let mut state = state_with(TopicSettings {
        idempotency_capacity: 2,
        ..TopicSettings::default()
    });
    accept(&mut state, patient_open("a", "p1"));
    accept(&mut state, patient_open("b", "p2"));
    accept(&mut state, patient_open("c", "p3"));
    // "c" is still remembered; "a" was evicted and is accepted anew.
    let (published, _) = state
        .publish(patient_open("c", "p3"), &poster())
        .expect("duplicate");
    assert_eq!(published, Published::Duplicate);
    let (published, effects) = state
        .publish(patient_open("a", "p1"), &poster())
        .expect("accepted again");
    assert_eq!(published, Published::Accepted { seq: 4 });
    assert_eq!(effects.envelopes.len(), 1);
}

#[test]
fn refused_event_ids_are_not_remembered() {
    let mut state = state();
    let opened = accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let v1 = version_of(&opened);
    refuse(
        &mut state,
        report_update("u1", "r1", None, vec![put("Observation", "o1", "final")]),
    );
    accept(
        &mut state,
        report_update(
            "u1",
            "r1",
            Some(&v1),
            vec![put("Observation", "o1", "final")],
        ),
    );
    assert_eq!(content_ids(&state), vec!["o1"]);
}

// ---------------------------------------------------------------------------------------
// seq
// ---------------------------------------------------------------------------------------

/// The attach generation of an attached endpoint.
fn attachment_generation(state: &TopicState, endpoint: &EndpointId) -> u64 {
    match state.subscription(endpoint).map(|s| &s.link) {
        Some(Link::Attached { generation }) => *generation,
        other => panic!("not attached: {other:?}"),
    }
}

#[test]
fn every_envelope_takes_the_next_seq_events_and_controls_alike() {
    let mut state = state_with(TopicSettings {
        reconnect_grace_ms: 0,
        ..TopicSettings::default()
    });
    assert_eq!(state.seq(), 0);
    let (endpoint, _) = subscriber(&mut state, &["Patient-open", "SyncError"]);
    let (other, _) = subscriber(&mut state, &["Patient-open"]);
    let mut seqs = Vec::new();

    let opened = accept(
        &mut state,
        diagnostic_report_open("e1", "r1", "p1", &["s1"]),
    );
    seqs.push(envelope_seq(&opened));
    let v1 = version_of(&opened);
    let steps = [
        report_update(
            "u1",
            "r1",
            Some(&v1),
            vec![put("Observation", "o1", "final")],
        ),
        select("s1", "r1", &["o1"]),
        patient_open("e2", "p2"),
        patient_close("e3", "p-unknown"),
        home_open("e4"),
    ];
    for step in steps {
        seqs.push(envelope_seq(&accept(&mut state, step)));
    }
    let effects = state.report_failure(
        &endpoint,
        failure("e2", SyncFailure::NotDelivered(500), 0),
        NOW + 2,
    );
    seqs.push(envelope_seq(&effects.envelopes[0]));
    let effects = state.detach(
        &endpoint,
        Detach {
            generation: attachment_generation(&state, &endpoint),
            reason: DetachReason::ClientClosed {
                code: 1011,
                last_event: None,
            },
            resume: None,
        },
        NOW + 3,
    );
    seqs.push(envelope_seq(&effects.envelopes[0]));
    // A control envelope (the denial of an unsubscribe) takes the next seq too.
    let effects = state
        .unsubscribe(&other, &owner("viewer"), NOW + 4)
        .expect("unsubscribed");
    assert!(is_deny_for(&effects.envelopes[0], &other));
    seqs.push(envelope_seq(&effects.envelopes[0]));

    let expected: Vec<u64> = (1..=9).collect();
    assert_eq!(seqs, expected);
    assert_eq!(state.seq(), 9);
}

#[test]
fn refusals_and_duplicates_do_not_advance_seq() {
    let mut state = state();
    let opened = accept(&mut state, diagnostic_report_open("e1", "r1", "p1", &[]));
    let v1 = version_of(&opened);
    accept(
        &mut state,
        report_update(
            "u1",
            "r1",
            Some(&v1),
            vec![put("Observation", "o1", "final")],
        ),
    );
    assert_eq!(state.seq(), 2);

    refuse(
        &mut state,
        report_update(
            "u2",
            "r1",
            Some(&v1),
            vec![put("Observation", "o2", "final")],
        ),
    );
    refuse(
        &mut state,
        report_update("u3", "r1", None, vec![put("Observation", "o2", "final")]),
    );
    refuse(&mut state, patient_open("e1", "p-other"));
    let (published, _) = state
        .publish(diagnostic_report_open("e1", "r1", "p1", &[]), &poster())
        .expect("duplicate");
    assert_eq!(published, Published::Duplicate);
    assert!(
        state
            .subscribe(
                SubscribeCommand {
                    endpoint: Some(EndpointId::generate()),
                    ..subscribe_command(&["Patient-open"])
                },
                NOW,
            )
            .is_err()
    );
    assert_eq!(state.seq(), 2);

    let envelope = accept(&mut state, patient_open("e2", "p1"));
    assert_eq!(envelope_seq(&envelope), 3, "no gap after refusals");
}

#[path = "subscription_tests.rs"]
mod subscriptions;

#[path = "durable_tests.rs"]
mod durable;

#[path = "gateway_loss_tests.rs"]
mod gateway_loss;
