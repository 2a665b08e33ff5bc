//! Unit tests of a topic's subscriptions: subscribe and re-subscribe, attach (once at a
//! time), re-attach within the window, the reconnect grace before a lost connection's
//! SyncError, remembered endpoints, per-client bounds, SyncErrors and who they exclude.

use super::*;

const WINDOW: UnixMs = 300_000;
const GRACE: UnixMs = 10_000;

fn command_for(client: &str, events: &[&str]) -> SubscribeCommand {
    SubscribeCommand {
        owner: owner(client),
        ..subscribe_command(events)
    }
}

fn detach(generation: u64, code: Option<u16>, resume: Option<Position>) -> Detach {
    Detach {
        generation,
        reason: match code {
            Some(code) => DetachReason::ClientClosed {
                code,
                last_event: Some(("e9".to_owned(), "Patient-open".to_owned())),
            },
            None => DetachReason::HubClosed,
        },
        resume,
    }
}

/// Attaching `endpoint` at `now` must end in a denial; returns its reason.
fn ended(state: &mut TopicState, endpoint: &EndpointId, now: UnixMs) -> EndReason {
    match state
        .attach(endpoint, "gw-1", now)
        .expect("attach answered")
    {
        (AttachOutcome::Ended { reason, denial }, _) => {
            let denial = decode(&denial);
            assert_eq!(denial["hub.mode"], "denied");
            assert_eq!(denial["hub.topic"], TOPIC);
            assert_eq!(denial["hub.reason"], reason.denial_reason());
            reason
        }
        (AttachOutcome::Attached(_), _) => panic!("the endpoint attached"),
    }
}

fn sync_errors_in(effects: &Effects) -> Vec<Value> {
    effects
        .envelopes
        .iter()
        .filter(|envelope| matches!(envelope.kind, EnvelopeKind::Event { .. }))
        .flat_map(frames)
        .filter(|frame| frame["event"]["hub.event"] == "SyncError")
        .collect()
}

// ---------------------------------------------------------------------------------------
// Subscribe, re-subscribe, unsubscribe
// ---------------------------------------------------------------------------------------

#[test]
fn resubscribing_an_attached_endpoint_replaces_events_and_confirms() {
    let mut state = state();
    let (endpoint, _) = subscriber(&mut state, &["Patient-open"]);
    let command = SubscribeCommand {
        endpoint: Some(endpoint.clone()),
        subscriber_name: None,
        ..subscribe_command(&["Encounter-open", "SyncError"])
    };
    let (same, effects) = state.subscribe(command, NOW + 10).expect("re-subscribed");
    assert_eq!(same, endpoint);
    assert!(effects.endpoints_added.is_empty());
    assert_eq!(effects.envelopes.len(), 1);
    match &effects.envelopes[0].kind {
        EnvelopeKind::Control {
            endpoint: addressed,
            action:
                ControlAction::Confirm {
                    events,
                    lease_ends_unix_ms,
                    frame,
                },
        } => {
            assert_eq!(addressed, &endpoint);
            assert_eq!(events, &names(&["Encounter-open", "SyncError"]));
            assert_eq!(*lease_ends_unix_ms, NOW + 10 + 3_600_000);
            let confirmation = decode(frame);
            assert_eq!(confirmation["hub.mode"], "subscribe");
            assert_eq!(confirmation["hub.events"], "Encounter-open,SyncError");
        }
        other => panic!("expected a confirmation, got {other:?}"),
    }
    let subscription = state.subscription(&endpoint).expect("still subscribed");
    assert_eq!(subscription.events, names(&["Encounter-open", "SyncError"]));
    assert_eq!(subscription.subscriber_name.as_deref(), Some("Test app"));
}

#[test]
fn resubscribing_an_unattached_endpoint_replaces_events_without_a_control() {
    let mut state = state();
    let (endpoint, _) = state
        .subscribe(subscribe_command(&["Patient-open"]), NOW)
        .expect("subscribed");
    let command = SubscribeCommand {
        endpoint: Some(endpoint.clone()),
        ..subscribe_command(&["Encounter-open"])
    };
    let (_, effects) = state.subscribe(command, NOW + 10).expect("re-subscribed");
    assert!(effects.envelopes.is_empty());
    let attachment = attached(&mut state, &endpoint, NOW + 20);
    assert_eq!(attachment.events, names(&["Encounter-open"]));
}

#[test]
fn unknown_endpoints_are_refused_and_change_nothing() {
    let mut state = state();
    let command = SubscribeCommand {
        endpoint: Some(EndpointId::generate()),
        ..subscribe_command(&["Patient-open"])
    };
    assert_eq!(
        state.subscribe(command, NOW).err(),
        Some(TopicError::UnknownEndpoint)
    );
    assert_eq!(
        state
            .unsubscribe(&EndpointId::generate(), &owner("viewer"), NOW)
            .err(),
        Some(TopicError::UnknownEndpoint)
    );
    assert!(matches!(
        state.attach(&EndpointId::generate(), "gw-1", NOW),
        Err(TopicError::UnknownEndpoint)
    ));
    assert!(state.is_idle());
    assert_eq!(state.seq(), 0);
}

#[test]
fn resubscribing_an_expired_unattached_endpoint_is_unknown_endpoint() {
    let mut state = state();
    let window = TopicSettings::default().attach_window_ms;
    let (endpoint, _) = state
        .subscribe(subscribe_command(&["Patient-open"]), NOW)
        .expect("subscribed");
    let command = SubscribeCommand {
        endpoint: Some(endpoint.clone()),
        ..subscribe_command(&["Encounter-open"])
    };
    assert_eq!(
        state.subscribe(command, NOW + window + 1).err(),
        Some(TopicError::UnknownEndpoint)
    );
}

#[test]
fn unsubscribing_an_attached_subscription_denies_it_and_remembers_the_endpoint() {
    let mut state = state();
    let (endpoint, _) = subscriber(&mut state, &["Patient-open", "SyncError"]);
    let effects = state
        .unsubscribe(&endpoint, &owner("viewer"), NOW + 2)
        .expect("unsubscribed");
    assert_eq!(effects.envelopes.len(), 1);
    assert!(is_deny_for(&effects.envelopes[0], &endpoint));
    assert_eq!(
        frames(&effects.envelopes[0])[0]["hub.reason"],
        "unsubscribed"
    );
    // Still resolvable: a reconnect gets the denial, not a 404.
    assert!(effects.endpoints_removed.is_empty());
    assert!(
        effects.notes.is_empty(),
        "the subscriber asked: nothing to note"
    );
    assert!(state.subscription(&endpoint).is_none());
    assert_eq!(
        ended(&mut state, &endpoint, NOW + 3),
        EndReason::Unsubscribed
    );
    // Unsubscribing again is accepted and changes nothing.
    let seq = state.seq();
    let again = state
        .unsubscribe(&endpoint, &owner("viewer"), NOW + 4)
        .expect("idempotent");
    assert!(again.is_empty());
    assert_eq!(state.seq(), seq);
}

#[test]
fn unsubscribing_an_unattached_endpoint_ends_it_without_a_denial() {
    let mut state = state();
    let (endpoint, _) = state
        .subscribe(subscribe_command(&["Patient-open"]), NOW)
        .expect("subscribed");
    let effects = state
        .unsubscribe(&endpoint, &owner("viewer"), NOW + 1)
        .expect("unsubscribed");
    assert!(effects.envelopes.is_empty());
    assert_eq!(
        ended(&mut state, &endpoint, NOW + 2),
        EndReason::Unsubscribed
    );
}

// ---------------------------------------------------------------------------------------
// Attach: once at a time, within the windows
// ---------------------------------------------------------------------------------------

#[test]
fn a_second_attach_on_a_live_endpoint_is_refused_and_changes_nothing() {
    let mut state = state();
    let (endpoint, _) = subscriber(&mut state, &["Patient-open"]);
    let before = state.subscription(&endpoint).cloned();
    let seq = state.seq();
    assert_eq!(
        state.attach(&endpoint, "gw-1", NOW + 2).err(),
        Some(TopicError::EndpointInUse)
    );
    assert_eq!(state.subscription(&endpoint).cloned(), before);
    assert_eq!(state.seq(), seq);
    assert_eq!(
        state.next_expiry(),
        before.and_then(|s| s.lease_ends).map(|e| e + 5_000)
    );
}

#[test]
fn attaching_within_the_window_starts_the_lease() {
    let mut state = state();
    let window = TopicSettings::default().attach_window_ms;
    let (endpoint, _) = state
        .subscribe(subscribe_command(&["Patient-open"]), NOW)
        .expect("subscribed");
    let attachment = attached(&mut state, &endpoint, NOW + window - 1);
    assert_eq!(attachment.lease_ends, NOW + window - 1 + 3_600_000);
    assert_eq!(
        attachment.resume, None,
        "a first attach has no resume position"
    );
    let subscription = state.subscription(&endpoint).expect("subscribed");
    assert!(subscription.is_attached());
    assert_eq!(subscription.lease_ends, Some(attachment.lease_ends));
}

#[test]
fn lease_never_outlives_the_token() {
    let mut state = state();
    let token_expires = NOW + 1 + 90_000;
    let (_, attachment) = subscriber_with(
        &mut state,
        SubscribeCommand {
            token_expires,
            ..subscribe_command(&["Patient-open"])
        },
    );
    assert_eq!(attachment.lease_ends, token_expires);
    let confirmation = decode(&attachment.confirmation);
    let lease_seconds = confirmation["hub.lease_seconds"]
        .as_u64()
        .expect("numeric lease");
    assert!(lease_seconds * 1000 <= token_expires - (NOW + 1));
}

#[test]
fn attaching_after_the_attach_window_gets_a_denial() {
    let mut state = state();
    let window = TopicSettings::default().attach_window_ms;
    let (endpoint, _) = state
        .subscribe(subscribe_command(&["Patient-open"]), NOW)
        .expect("subscribed");
    assert_eq!(
        ended(&mut state, &endpoint, NOW + window),
        EndReason::AttachWindowPassed
    );
    assert!(state.subscription(&endpoint).is_none());
}

#[test]
fn expire_ends_unattached_endpoints_past_the_window_and_forgets_them_later() {
    let mut state = state();
    let window = TopicSettings::default().attach_window_ms;
    let (pending, _) = state
        .subscribe(subscribe_command(&["Patient-open"]), NOW)
        .expect("subscribed");
    let (live, _) = subscriber(&mut state, &["Patient-open"]);
    assert_eq!(state.next_expiry(), Some(NOW + window));

    assert!(state.expire(NOW + window - 1).is_empty());
    let effects = state.expire(NOW + window);
    assert!(effects.envelopes.is_empty(), "no socket, no denial");
    assert!(
        effects.endpoints_removed.is_empty(),
        "remembered, still resolvable"
    );
    assert_eq!(
        effects.notes,
        vec![Note::Ended {
            endpoint: pending.clone(),
            client: "viewer".to_owned(),
            reason: EndReason::AttachWindowPassed,
        }]
    );
    assert!(state.subscription(&live).is_some());
    assert_eq!(
        state.ended_reason(&pending),
        Some(EndReason::AttachWindowPassed)
    );
    // Remembered until its lease would have ended (window + lease), then forgotten.
    let forget_at = NOW + window + 3_600_000;
    assert!(state.expire(forget_at - 1).endpoints_removed.is_empty());
    let effects = state.expire(forget_at);
    assert_eq!(effects.endpoints_removed, vec![pending.clone()]);
    assert!(matches!(
        state.attach(&pending, "gw-1", forget_at),
        Err(TopicError::UnknownEndpoint)
    ));
}

#[test]
fn expire_denies_attached_subscriptions_past_lease_and_grace() {
    let mut state = state();
    let (endpoint, attachment) = subscriber(&mut state, &["Patient-open"]);
    let grace = TopicSettings::default().lease_grace_ms;
    assert_eq!(state.next_expiry(), Some(attachment.lease_ends + grace));
    assert!(state.expire(attachment.lease_ends + grace - 1).is_empty());
    let effects = state.expire(attachment.lease_ends + grace);
    assert_eq!(effects.envelopes.len(), 1);
    assert!(is_deny_for(&effects.envelopes[0], &endpoint));
    assert_eq!(state.ended_reason(&endpoint), Some(EndReason::LeaseExpired));
}

// ---------------------------------------------------------------------------------------
// Re-attach within the window
// ---------------------------------------------------------------------------------------

#[test]
fn a_closed_socket_leaves_the_subscription_attachable_again() {
    let mut state = state();
    let (endpoint, first) = subscriber(&mut state, &["Patient-open"]);
    accept(&mut state, patient_open("e1", "p1"));
    let resume = Position {
        epoch: first.epoch,
        seq: 1,
    };
    let effects = state.detach(
        &endpoint,
        detach(first.generation, Some(1000), Some(resume)),
        NOW + 1_000,
    );
    assert!(effects.is_empty() && effects.notes.is_empty());
    assert!(matches!(
        state.subscription(&endpoint).map(|s| &s.link),
        Some(Link::Detached { deadline, .. }) if *deadline == NOW + 1_000 + WINDOW
    ));

    let second = attached(&mut state, &endpoint, NOW + 61_000);
    assert!(second.generation > first.generation);
    assert_eq!(second.resume, Some(resume));
    assert_eq!(
        second.lease_ends, first.lease_ends,
        "the lease is not restarted"
    );
    let confirmation = decode(&second.confirmation);
    assert_eq!(
        confirmation["hub.lease_seconds"],
        (first.lease_ends - (NOW + 61_000)) / 1000
    );
    assert_eq!(
        replay_summary(&second),
        [("Patient-open".to_owned(), "p1".to_owned())]
    );
    assert_eq!(
        state.attach(&endpoint, "gw-1", NOW + 62_000).err(),
        Some(TopicError::EndpointInUse)
    );
}

#[test]
fn a_report_from_an_earlier_socket_is_ignored() {
    let mut state = state();
    let (endpoint, first) = subscriber(&mut state, &["Patient-open"]);
    state.detach(
        &endpoint,
        detach(first.generation, Some(1000), None),
        NOW + 10,
    );
    let second = attached(&mut state, &endpoint, NOW + 20);
    let stale = state.detach(
        &endpoint,
        detach(first.generation, Some(1006), None),
        NOW + 30,
    );
    assert!(stale.is_empty());
    assert!(
        state
            .subscription(&endpoint)
            .is_some_and(Subscription::is_attached)
    );
    let current = state.detach(
        &endpoint,
        detach(second.generation, Some(1000), None),
        NOW + 40,
    );
    assert!(current.is_empty());
    assert!(
        !state
            .subscription(&endpoint)
            .is_some_and(Subscription::is_attached)
    );
}

#[test]
fn the_reattach_window_passes_into_a_denial() {
    let mut state = state();
    let (endpoint, first) = subscriber(&mut state, &["Patient-open"]);
    state.detach(&endpoint, detach(first.generation, None, None), NOW + 10);
    assert_eq!(
        ended(&mut state, &endpoint, NOW + 10 + WINDOW),
        EndReason::ReattachWindowPassed
    );
}

#[test]
fn expire_ends_a_detached_subscription_when_its_window_passes() {
    let mut state = state();
    let (endpoint, first) = subscriber(&mut state, &["Patient-open"]);
    state.detach(
        &endpoint,
        detach(first.generation, Some(1001), None),
        NOW + 10,
    );
    assert_eq!(state.next_expiry(), Some(NOW + 10 + WINDOW));
    let effects = state.expire(NOW + 10 + WINDOW);
    assert!(
        effects.envelopes.is_empty(),
        "no socket, no denial, no SyncError"
    );
    assert_eq!(
        state.ended_reason(&endpoint),
        Some(EndReason::ReattachWindowPassed)
    );
}

#[test]
fn the_reattach_window_never_reaches_beyond_the_lease() {
    let mut state = state();
    let (endpoint, first) = subscriber_with(
        &mut state,
        SubscribeCommand {
            lease_seconds: 60,
            ..subscribe_command(&["Patient-open"])
        },
    );
    state.detach(
        &endpoint,
        detach(first.generation, Some(1000), None),
        NOW + 10,
    );
    assert!(matches!(
        state.subscription(&endpoint).map(|s| &s.link),
        Some(Link::Detached { deadline, .. }) if *deadline == first.lease_ends
    ));
    assert_eq!(
        ended(&mut state, &endpoint, first.lease_ends),
        EndReason::LeaseExpired
    );
}

#[test]
fn a_zero_reattach_window_makes_endpoints_single_use() {
    let mut state = state_with(TopicSettings {
        reattach_window_ms: 0,
        ..TopicSettings::default()
    });
    let (endpoint, first) = subscriber(&mut state, &["Patient-open"]);
    let effects = state.detach(
        &endpoint,
        detach(first.generation, Some(1000), None),
        NOW + 10,
    );
    assert!(effects.envelopes.is_empty());
    assert_eq!(
        ended(&mut state, &endpoint, NOW + 20),
        EndReason::ConnectionClosed
    );
}

// ---------------------------------------------------------------------------------------
// The reconnect grace before a lost connection's SyncError
// ---------------------------------------------------------------------------------------

#[test]
fn an_abnormal_close_raises_its_sync_error_only_after_the_grace() {
    let mut state = state();
    let (endpoint, first) = subscriber_with(
        &mut state,
        SubscribeCommand {
            subscriber_name: Some("Lost app".to_owned()),
            ..subscribe_command(&["Patient-open"])
        },
    );
    let (watcher, _) = subscriber(&mut state, &["SyncError"]);
    let effects = state.detach(
        &endpoint,
        detach(first.generation, Some(1006), None),
        NOW + 10,
    );
    assert!(
        effects.envelopes.is_empty(),
        "nothing before the grace ends"
    );
    assert_eq!(state.next_expiry(), Some(NOW + 10 + GRACE));
    assert!(state.expire(NOW + 10 + GRACE - 1).is_empty());

    let effects = state.expire(NOW + 10 + GRACE);
    let sync_errors = sync_errors_in(&effects);
    assert_eq!(sync_errors.len(), 1);
    assert_eq!(
        envelope_exclude(&effects.envelopes[0]),
        std::slice::from_ref(&endpoint)
    );
    let codings = sync_error_codings(&sync_errors[0]);
    assert!(codings.contains(&(EVENT_ID_SYSTEM.to_owned(), "e9".to_owned())));
    assert!(codings.contains(&(SUBSCRIBER_NAME_SYSTEM.to_owned(), "Lost app".to_owned())));
    assert!(matches!(
        effects.notes.as_slice(),
        [Note::SyncError {
            failure: SyncFailure::ConnectionLost(1006),
            ..
        }]
    ));
    assert!(
        deliveries(&effects.envelopes[0])[0]
            .is_for(&state.subscription(&watcher).expect("watcher").events)
    );
    // Raised once; the endpoint may still be attached again until the window passes.
    assert!(state.expire(NOW + 10 + GRACE + 1).is_empty());
    attached(&mut state, &endpoint, NOW + 10 + GRACE + 2);
}

#[test]
fn reconnecting_within_the_grace_raises_no_sync_error() {
    let mut state = state();
    let (endpoint, first) = subscriber(&mut state, &["Patient-open"]);
    state.detach(
        &endpoint,
        detach(first.generation, Some(1006), None),
        NOW + 10,
    );
    attached(&mut state, &endpoint, NOW + 10 + GRACE - 1);
    let effects = state.expire(NOW + 10 + GRACE + 60_000);
    assert!(sync_errors_in(&effects).is_empty());
    assert!(
        state
            .subscription(&endpoint)
            .is_some_and(Subscription::is_attached)
    );
}

#[test]
fn normal_and_codeless_closes_never_raise_a_sync_error() {
    for code in [Some(1000), Some(1001), Some(1005), None] {
        let mut state = state();
        let (endpoint, first) = subscriber(&mut state, &["Patient-open"]);
        accept(&mut state, patient_open("e1", "p1"));
        let seq = state.seq();
        let effects = state.detach(&endpoint, detach(first.generation, code, None), NOW + 10);
        assert!(effects.envelopes.is_empty(), "close {code:?}");
        let effects = state.expire(NOW + 10 + WINDOW);
        assert!(sync_errors_in(&effects).is_empty(), "close {code:?}");
        assert_eq!(state.seq(), seq, "close {code:?}");
    }
}

#[test]
fn a_zero_grace_raises_the_sync_error_at_once() {
    let mut state = state_with(TopicSettings {
        reconnect_grace_ms: 0,
        ..TopicSettings::default()
    });
    let (endpoint, first) = subscriber(&mut state, &["Patient-open"]);
    let effects = state.detach(
        &endpoint,
        detach(first.generation, Some(1011), None),
        NOW + 10,
    );
    assert_eq!(sync_errors_in(&effects).len(), 1);
}

#[test]
fn a_subscription_ending_during_the_grace_raises_its_sync_error_then() {
    let mut state = state_with(TopicSettings {
        reattach_window_ms: 2_000,
        ..TopicSettings::default()
    });
    let (endpoint, first) = subscriber(&mut state, &["Patient-open"]);
    state.detach(
        &endpoint,
        detach(first.generation, Some(1006), None),
        NOW + 10,
    );
    let effects = state.expire(NOW + 10 + 2_000);
    assert_eq!(sync_errors_in(&effects).len(), 1);
    assert_eq!(
        state.ended_reason(&endpoint),
        Some(EndReason::ReattachWindowPassed)
    );
}

#[test]
fn a_lost_connection_sync_error_never_carries_an_empty_code() {
    // The subscriber received nothing: the SyncError names the topic's last event.
    let mut state = state_with(TopicSettings {
        reconnect_grace_ms: 0,
        ..TopicSettings::default()
    });
    let (endpoint, first) = subscriber(&mut state, &["Encounter-open"]);
    accept(&mut state, patient_open("e-last", "p1"));
    let effects = state.detach(
        &endpoint,
        Detach {
            generation: first.generation,
            reason: DetachReason::ClientClosed {
                code: 1006,
                last_event: None,
            },
            resume: None,
        },
        NOW + 10,
    );
    let sync_errors = sync_errors_in(&effects);
    assert_eq!(sync_errors.len(), 1);
    for (system, code) in sync_error_codings(&sync_errors[0]) {
        assert!(!code.is_empty(), "{system} has an empty code");
    }
    assert!(
        sync_error_codings(&sync_errors[0])
            .contains(&(EVENT_ID_SYSTEM.to_owned(), "e-last".to_owned()))
    );

    // A topic that never carried an event: nothing to be out of step with, no SyncError.
    let mut empty = state_with(TopicSettings {
        reconnect_grace_ms: 0,
        ..TopicSettings::default()
    });
    let (endpoint, first) = subscriber(&mut empty, &["Patient-open"]);
    let effects = empty.detach(
        &endpoint,
        Detach {
            generation: first.generation,
            reason: DetachReason::ClientClosed {
                code: 1006,
                last_event: None,
            },
            resume: None,
        },
        NOW + 10,
    );
    assert!(effects.envelopes.is_empty());
}

// ---------------------------------------------------------------------------------------
// Bounds: per-client share of unattached slots, remembered endpoints
// ---------------------------------------------------------------------------------------

#[test]
fn one_client_cannot_take_every_unattached_slot() {
    let share = 4;
    let mut state = state_with(TopicSettings {
        max_unattached_per_client: share,
        ..TopicSettings::default()
    });
    for _ in 0..share {
        state
            .subscribe(command_for("greedy", &["Patient-open"]), NOW)
            .expect("within the share");
    }
    let refused = state
        .subscribe(command_for("greedy", &["Patient-open"]), NOW)
        .expect_err("beyond the share");
    assert_eq!(refused.code(), ErrorCode::Overloaded);
    assert!(refused.to_string().contains("unconnected"));
    // Other apps still subscribe.
    state
        .subscribe(command_for("other-app", &["Patient-open"]), NOW)
        .expect("another client has its own share");
}

#[test]
fn one_client_holds_a_bounded_number_of_subscriptions_connected_or_not() {
    let mut state = state_with(TopicSettings {
        max_subscriptions_per_client: 2,
        ..TopicSettings::default()
    });
    let (connected, _) = subscriber_with(&mut state, command_for("app", &["Patient-open"]));
    let (pending, _) = state
        .subscribe(command_for("app", &["Patient-open"]), NOW)
        .expect("within the cap");
    let refused = state
        .subscribe(command_for("app", &["Patient-open"]), NOW + 2)
        .expect_err("beyond the cap");
    assert_eq!(refused.code(), ErrorCode::Overloaded);
    assert!(refused.to_string().contains("at most 2"), "{refused}");
    // Re-subscribing an endpoint the client holds replaces it: it counts once.
    let again = SubscribeCommand {
        endpoint: Some(connected.clone()),
        ..command_for("app", &["Patient-open", "Patient-close"])
    };
    let (same, _) = state.subscribe(again, NOW + 3).expect("re-subscribed");
    assert_eq!(same, connected);
    // Another client has its own cap.
    state
        .subscribe(command_for("other-app", &["Patient-open"]), NOW + 3)
        .expect("another client");
    // An endpoint never connected in time no longer counts, even before its timer ran.
    let late = NOW + TopicSettings::default().attach_window_ms + 1;
    state
        .subscribe(command_for("app", &["Patient-open"]), late)
        .expect("the overdue endpoint made room");
    assert!(state.subscription(&pending).is_some(), "not yet expired");
}

#[test]
fn a_clients_remembered_endpoints_make_room_oldest_first() {
    let share = 2;
    let mut state = state_with(TopicSettings {
        max_unattached_per_client: share,
        ..TopicSettings::default()
    });
    let mut gone = Vec::new();
    for _ in 0..2 {
        let (endpoint, _) = state
            .subscribe(command_for("app", &["Patient-open"]), NOW)
            .expect("subscribed");
        state
            .unsubscribe(&endpoint, &owner("app"), NOW + 1)
            .expect("unsubscribed");
        gone.push(endpoint);
    }
    assert_eq!(state.remembered_endpoints(), 2);
    let (_, effects) = state
        .subscribe(command_for("app", &["Patient-open"]), NOW + 2)
        .expect("remembered endpoints make room");
    assert_eq!(effects.endpoints_removed, vec![gone[0].clone()]);
    assert!(matches!(effects.notes.as_slice(), [Note::Forgotten { .. }]));
    assert_eq!(state.ended_reason(&gone[1]), Some(EndReason::Unsubscribed));
    assert_eq!(state.remembered_endpoints(), 1);
}

#[test]
fn a_topic_remembers_a_bounded_number_of_endpoints() {
    let mut state = state_with(TopicSettings {
        max_remembered_endpoints: 3,
        ..TopicSettings::default()
    });
    let mut removed = Vec::new();
    let mut all = Vec::new();
    for n in 0..5 {
        let (endpoint, _) = state
            .subscribe(command_for(&format!("app-{n}"), &["Patient-open"]), NOW)
            .expect("subscribed");
        let effects = state
            .unsubscribe(&endpoint, &owner(&format!("app-{n}")), NOW + 1)
            .expect("unsubscribed");
        removed.extend(effects.endpoints_removed);
        all.push(endpoint);
    }
    assert_eq!(state.remembered_endpoints(), 3);
    assert_eq!(removed, all[..2].to_vec(), "the oldest are forgotten first");
}

// ---------------------------------------------------------------------------------------
// SyncError
// ---------------------------------------------------------------------------------------

#[test]
fn refused_delivery_raises_a_sync_error_excluding_the_failing_subscriber() {
    let mut state = state();
    let (failing, _) = subscriber_with(
        &mut state,
        SubscribeCommand {
            subscriber_name: Some("Failing viewer".to_owned()),
            ..subscribe_command(&["Patient-open"])
        },
    );
    let (other, _) = subscriber(&mut state, &["SyncError"]);
    let seq = state.seq();

    let effects = state.report_failure(
        &failing,
        failure("e1", SyncFailure::Refused(409), 0),
        NOW + 2,
    );
    assert_eq!(effects.envelopes.len(), 1);
    assert!(effects.endpoints_removed.is_empty());
    let envelope = &effects.envelopes[0];
    assert_eq!(envelope_exclude(envelope), std::slice::from_ref(&failing));
    assert_eq!(envelope_seq(envelope), seq + 1);
    assert_eq!(state.seq(), seq + 1);
    let sync_errors = deliveries(envelope);
    assert_eq!(sync_errors.len(), 1);
    assert_eq!(sync_errors[0].name, name("SyncError"));
    assert!(sync_errors[0].is_for(&state.subscription(&other).expect("other").events));

    let frame = decode(&sync_errors[0].frame);
    assert_eq!(frame["id"], json!(&*sync_errors[0].event_id));
    let codings = sync_error_codings(&frame);
    assert!(codings.contains(&(EVENT_ID_SYSTEM.to_owned(), "e1".to_owned())));
    assert!(codings.contains(&(EVENT_NAME_SYSTEM.to_owned(), "Patient-open".to_owned())));
    assert!(codings.contains(&(
        SUBSCRIBER_NAME_SYSTEM.to_owned(),
        "Failing viewer".to_owned()
    )));
    let issue = &frame["event"]["context"][0]["resource"]["issue"][0];
    assert_eq!(issue["severity"], "warning");
    assert_eq!(issue["code"], "processing");
    // A refusal does not end the subscription.
    assert!(state.subscription(&failing).is_some());
}

#[test]
fn unresponsive_subscriber_is_unsubscribed_at_the_timeout_threshold() {
    let mut state = state();
    let (failing, _) = subscriber(&mut state, &["Patient-open"]);
    let effects = state.report_failure(&failing, failure("e1", SyncFailure::Timeout, 1), NOW + 2);
    assert_eq!(effects.envelopes.len(), 2);
    assert_eq!(
        envelope_exclude(&effects.envelopes[0]),
        std::slice::from_ref(&failing)
    );
    assert_eq!(deliveries(&effects.envelopes[0])[0].name, name("SyncError"));
    assert!(is_deny_for(&effects.envelopes[1], &failing));
    assert_eq!(frames(&effects.envelopes[1])[0]["hub.mode"], "denied");
    assert!(state.subscription(&failing).is_none());
    assert_eq!(state.ended_reason(&failing), Some(EndReason::Unresponsive));
    assert!(effects.notes.contains(&Note::Ended {
        endpoint: failing.clone(),
        client: "viewer".to_owned(),
        reason: EndReason::Unresponsive,
    }));
}

#[test]
fn timeouts_below_the_threshold_keep_the_subscription() {
    let mut state = state_with(TopicSettings {
        unresponsive_threshold: 3,
        ..TopicSettings::default()
    });
    let (failing, _) = subscriber(&mut state, &["Patient-open"]);
    let effects = state.report_failure(&failing, failure("e1", SyncFailure::Timeout, 2), NOW + 2);
    assert_eq!(effects.envelopes.len(), 1, "a SyncError but no denial");
    assert!(state.subscription(&failing).is_some());
    state.report_failure(&failing, failure("e2", SyncFailure::Timeout, 3), NOW + 3);
    assert!(state.subscription(&failing).is_none());
}

#[test]
fn hub_close_raises_no_sync_error() {
    let mut state = state();
    let (endpoint, first) = subscriber(&mut state, &["Patient-open"]);
    let seq = state.seq();
    let effects = state.detach(&endpoint, detach(first.generation, None, None), NOW + 2);
    assert!(effects.envelopes.is_empty());
    assert!(state.expire(NOW + 2 + WINDOW).envelopes.is_empty());
    assert_eq!(state.seq(), seq);
}

#[test]
fn a_posted_sync_error_goes_to_everyone_but_the_app_that_posted_it() {
    let mut state = state();
    let (poster_a, _) = subscriber_with(&mut state, command_for("app-a", &["SyncError"]));
    let (poster_b, _) = subscriber_with(&mut state, command_for("app-a", &["SyncError"]));
    let (other, _) = subscriber_with(&mut state, command_for("app-b", &["SyncError"]));
    let posted = request(
        "se-1",
        "syncerror",
        json!([{
            "key": "operationoutcome",
            "resource": {"resourceType": "OperationOutcome", "issue": [{
                "severity": "warning", "code": "processing", "diagnostics": "refused",
                "details": {"coding": [
                    {"system": EVENT_ID_SYSTEM, "code": "e1"},
                    {"system": EVENT_NAME_SYSTEM, "code": "Patient-open"}
                ]}
            }]}
        }]),
    );
    let (_, effects) = state.publish(posted, &owner("app-a")).expect("accepted");
    let exclude = envelope_exclude(&effects.envelopes[0]);
    assert!(exclude.contains(&poster_a) && exclude.contains(&poster_b));
    assert!(!exclude.contains(&other));
}

#[test]
fn a_posted_sync_error_naming_its_subscriber_excludes_only_that_one() {
    let mut state = state();
    let named = |name: &str| SubscribeCommand {
        subscriber_name: Some(name.to_owned()),
        ..command_for("shared-client", &["SyncError"])
    };
    let (viewer, _) = subscriber_with(&mut state, named("Viewer"));
    let (reporting, _) = subscriber_with(&mut state, named("Reporting"));
    let (stranger, _) = subscriber_with(
        &mut state,
        SubscribeCommand {
            subscriber_name: Some("Viewer".to_owned()),
            ..command_for("someone-else", &["SyncError"])
        },
    );
    let posted = request(
        "se-2",
        "SyncError",
        json!([{
            "key": "operationoutcome",
            "resource": {"resourceType": "OperationOutcome", "issue": [{
                "severity": "warning", "code": "processing", "diagnostics": "Viewer refused",
                "details": {"coding": [
                    {"system": EVENT_ID_SYSTEM, "code": "e1"},
                    {"system": EVENT_NAME_SYSTEM, "code": "Patient-open"},
                    {"system": SUBSCRIBER_NAME_SYSTEM, "code": "Viewer"}
                ]}
            }]}
        }]),
    );
    let (_, effects) = state
        .publish(posted, &owner("shared-client"))
        .expect("accepted");
    let exclude = envelope_exclude(&effects.envelopes[0]);
    assert_eq!(exclude, std::slice::from_ref(&viewer));
    assert!(!exclude.contains(&reporting));
    assert!(
        !exclude.contains(&stranger),
        "another app's subscription is never excluded"
    );
}

#[test]
fn auz_05_only_the_creator_may_re_subscribe_or_unsubscribe_an_endpoint() {
    let mut state = state();
    let (endpoint, _) = subscriber(&mut state, &["Patient-open"]);
    let forbidden = |result: Result<Effects, TopicError>| matches!(result, Err(TopicError::Rejected(err)) if err.code() == ErrorCode::Forbidden);
    // Another app of the same user, then the same app for another user.
    let other_app = owner("intruder");
    let other_user = Owner {
        subject: Some("user-2".to_owned()),
        ..owner("viewer")
    };
    for intruder in [other_app, other_user] {
        let takeover = SubscribeCommand {
            endpoint: Some(endpoint.clone()),
            owner: intruder.clone(),
            events: names(&["Patient-open", "Patient-close"]),
            ..subscribe_command(&[])
        };
        assert!(forbidden(
            state
                .subscribe(takeover, NOW + 2)
                .map(|(_, effects)| effects)
        ));
        assert!(forbidden(state.unsubscribe(&endpoint, &intruder, NOW + 2)));
    }
    let kept = state.subscription(&endpoint).expect("still subscribed");
    assert!(kept.is_attached(), "the creator's socket was touched");
    assert_eq!(kept.events, names(&["Patient-open"]));
    // The creator still may; afterwards the ended endpoint stays the creator's.
    let effects = state
        .unsubscribe(&endpoint, &owner("viewer"), NOW + 3)
        .expect("the creator unsubscribes");
    assert!(is_deny_for(&effects.envelopes[0], &endpoint));
    assert!(forbidden(state.unsubscribe(
        &endpoint,
        &owner("intruder"),
        NOW + 4
    )));
}

#[test]
fn auz_10_revoking_ends_every_subscription_with_a_denial() {
    let mut state = state();
    let (first, _) = subscriber(&mut state, &["Patient-open"]);
    let (second, _) = subscriber_with(&mut state, command_for("other-app", &["Patient-open"]));
    let (pending, _) = state
        .subscribe(command_for("third-app", &["Patient-open"]), NOW + 2)
        .expect("subscribed");
    let (ended, effects) = state.revoke(NOW + 3);
    assert_eq!(ended, 3);
    assert_eq!(effects.envelopes.len(), 2, "one denial per attached socket");
    assert!(
        is_deny_for(&effects.envelopes[0], &first) || is_deny_for(&effects.envelopes[1], &first)
    );
    assert!(
        effects
            .envelopes
            .iter()
            .any(|envelope| is_deny_for(envelope, &second))
    );
    for endpoint in [&first, &second, &pending] {
        assert_eq!(state.ended_reason(endpoint), Some(EndReason::Revoked));
        assert!(state.subscription(endpoint).is_none());
    }
}

// ---------------------------------------------------------------------------------------
// Revalidation (TOP-08)
// ---------------------------------------------------------------------------------------

#[test]
fn revalidation_names_the_endpoints_without_a_subscription_with_their_denials() {
    let mut state = state();
    let (live, _) = subscriber(&mut state, &["Patient-open"]);
    let (gone, _) = subscriber(&mut state, &["Patient-open"]);
    state
        .unsubscribe(&gone, &owner("viewer"), NOW + 1)
        .expect("unsubscribed");
    let forgotten = EndpointId::generate();
    let ended = state.revalidate(&[live, gone.clone(), forgotten.clone()]);
    let named: Vec<&EndpointId> = ended.iter().map(|ended| &ended.endpoint).collect();
    assert_eq!(named, [&gone, &forgotten]);
    let denial = decode(&ended[0].denial);
    assert_eq!(denial["hub.mode"], "denied");
    assert_eq!(denial["hub.topic"], TOPIC);
    assert_eq!(
        denial["hub.reason"],
        EndReason::Unsubscribed.denial_reason()
    );
    assert_eq!(decode(&ended[1].denial)["hub.mode"], "denied");
}
