//! The deltas a topic commits are complete and its restore is faithful: a store that only
//! ever applies committed changes holds exactly the live state, and the state rebuilt from
//! it behaves like the live one.

use fhircast_proto::sync_error::SyncFailure;

use super::*;
use crate::store::{Change, Delta, Snapshot};

/// Commits `effects` the way the actor does: the change is applied to the store's copy.
fn commit(state: &mut TopicState, store: &mut Snapshot, effects: Effects) -> Change {
    let change = state.take_change(effects);
    store.apply(&change, state.settings.idempotency_capacity);
    change
}

fn assert_store_matches(state: &TopicState, store: &Snapshot, step: &str) {
    let live = state.to_snapshot();
    assert_eq!(
        live.subscriptions, store.subscriptions,
        "subscriptions after {step}"
    );
    assert_eq!(live.ended, store.ended, "remembered endpoints after {step}");
    assert_eq!(live.contexts, store.contexts, "open anchors after {step}");
    assert_eq!(live.accepted, store.accepted, "accepted ids after {step}");
    assert_eq!(live.header, store.header, "header after {step}");
}

#[test]
fn every_command_commits_only_what_it_touched_and_the_store_equals_the_live_state() {
    let settings = TopicSettings {
        idempotency_capacity: 4,
        max_open_contexts: 3,
        ..TopicSettings::default()
    };
    let mut state = state_with(settings);
    let mut store = Snapshot::default();
    let mut now = NOW;

    let (a, effects) = state
        .subscribe(
            subscribe_command(&[
                "Patient-open",
                "Patient-close",
                "Encounter-open",
                "SyncError",
            ]),
            now,
        )
        .expect("subscribe a");
    let change = commit(&mut state, &mut store, effects);
    assert_eq!(
        change.deltas.len(),
        1,
        "a subscribe writes one subscription"
    );
    assert_store_matches(&state, &store, "subscribe");

    let (_, effects) = state.attach(&a, "gw-1", now).expect("attach a");
    let change = commit(&mut state, &mut store, effects);
    assert_eq!(change.deltas.len(), 1, "an attach writes one subscription");
    assert!(
        matches!(&change.deltas[0], Delta::Subscription { endpoint, record: Some(s) } if *endpoint == a && s.is_attached())
    );

    let (b, effects) = state
        .subscribe(subscribe_command(&["Patient-open", "SyncError"]), now)
        .expect("subscribe b");
    commit(&mut state, &mut store, effects);

    for (n, patient) in ["p1", "p2", "p3", "p4", "p5", "p6"].iter().enumerate() {
        now += 10;
        let (_, effects) = state
            .publish(patient_open(&format!("e{n}"), patient), &poster())
            .expect("open");
        let change = commit(&mut state, &mut store, effects);
        let contexts = change
            .deltas
            .iter()
            .filter(|d| matches!(d, Delta::Context { .. }))
            .count();
        assert!(
            contexts <= 2,
            "an open writes its anchor (and the one it pushes out), not every anchor: {contexts}"
        );
        assert_store_matches(&state, &store, "an open");
    }
    let (_, effects) = state
        .publish(patient_close("c1", "p6"), &poster())
        .expect("close");
    commit(&mut state, &mut store, effects);
    let (_, effects) = state
        .publish(encounter_open("e-enc", "enc1", "p5"), &poster())
        .expect("encounter");
    commit(&mut state, &mut store, effects);
    assert_store_matches(&state, &store, "close and encounter");

    now += 10;
    let effects = state.detach(
        &a,
        Detach {
            generation: 1,
            reason: DetachReason::ClientClosed {
                code: 1006,
                last_event: None,
            },
            resume: None,
        },
        now,
    );
    commit(&mut state, &mut store, effects);
    let effects = state.report_failure(
        &b,
        DeliveryFailure {
            event_id: "e1".into(),
            event_name: "Patient-open".into(),
            failure: SyncFailure::Timeout,
            consecutive_timeouts: 1,
        },
        now,
    );
    commit(&mut state, &mut store, effects);
    let effects = state
        .unsubscribe(&b, &owner("viewer"), now)
        .expect("unsubscribe b");
    commit(&mut state, &mut store, effects);
    assert_store_matches(&state, &store, "detach, failure, unsubscribe");

    // Time passes: the lost connection's SyncError, then the re-attach window.
    for step in [20_000, 400_000, 2 * DAY_MS] {
        let effects = state.expire(now + step);
        commit(&mut state, &mut store, effects);
        assert_store_matches(&state, &store, "expiry");
    }

    let mut restored =
        TopicState::restore(topic(), state.settings.clone(), store.clone()).expect("restored");
    assert_eq!(restored.to_snapshot(), state.to_snapshot());
    assert_eq!(restored.current_context(), state.current_context());
    assert_eq!(restored.next_expiry(), state.next_expiry());
    // The restored topic goes on where the live one stands: same seq, same idempotency.
    let (again, _) = restored
        .publish(patient_open("e5", "p6"), &poster())
        .expect("retry");
    assert_eq!(
        again,
        Published::Duplicate,
        "accepted ids survive the restore"
    );
    let (next, _) = restored
        .publish(patient_open("fresh", "p9"), &poster())
        .expect("fresh");
    assert_eq!(
        next,
        Published::Accepted {
            seq: state.seq() + 1
        }
    );
}

#[test]
fn a_topic_never_committed_restores_to_nothing() {
    assert!(TopicState::restore(topic(), TopicSettings::default(), Snapshot::default()).is_none());
}
