//! A gateway that leaves the cluster takes its sockets with it: the topic detaches exactly
//! the subscriptions attached through it, as lost connections, so they can be attached
//! again through another gateway and resume from where their socket attached.

use super::*;

fn subscribe_pending(state: &mut TopicState) -> EndpointId {
    let (endpoint, _) = state
        .subscribe(subscribe_command(&["Patient-open", "SyncError"]), NOW)
        .expect("subscribed");
    endpoint
}

fn attach_via(state: &mut TopicState, endpoint: &EndpointId, gateway: &str) -> Attachment {
    match state
        .attach(endpoint, gateway, NOW + 1)
        .expect("attach answered")
    {
        (AttachOutcome::Attached(attachment), _) => attachment,
        (AttachOutcome::Ended { reason, .. }, _) => panic!("endpoint ended: {reason:?}"),
    }
}

#[test]
fn only_the_subscriptions_of_the_vanished_gateway_are_detached_and_can_come_back_elsewhere() {
    let mut state = state();
    let on_lost = subscribe_pending(&mut state);
    let on_kept = subscribe_pending(&mut state);
    attach_via(&mut state, &on_lost, "gw-1");
    accept(&mut state, patient_open("before", "p1"));
    attach_via(&mut state, &on_kept, "gw-2");
    accept(&mut state, patient_open("while-attached", "p2"));

    let effects = state.gateways_gone(|gateway| gateway == "gw-1", NOW + 10);
    assert!(
        effects.envelopes.is_empty(),
        "nothing is raised before the reconnect grace"
    );
    assert!(
        !state.subscription(&on_lost).expect("kept").is_attached(),
        "the vanished gateway's socket is detached"
    );
    assert!(
        state.subscription(&on_kept).expect("kept").is_attached(),
        "a socket on a live gateway stays attached"
    );

    // Re-attached through another gateway: it resumes from where its socket attached, so
    // the event published while it was attached (maybe never received) comes again.
    let again = attach_via(&mut state, &on_lost, "gw-2");
    assert_eq!(
        again.resume,
        Some(Position { epoch: 7, seq: 0 }),
        "resume from the position at the first attach"
    );
    assert_eq!(
        state.subscription(&on_lost).and_then(|s| s.gateway.clone()),
        Some("gw-2".to_owned())
    );
}

#[test]
fn a_vanished_gateways_subscriber_that_never_comes_back_raises_its_sync_error_after_the_grace() {
    let mut state = state();
    let lost = subscribe_pending(&mut state);
    let watcher = subscribe_pending(&mut state);
    attach_via(&mut state, &lost, "gw-1");
    attach_via(&mut state, &watcher, "gw-2");
    accept(&mut state, patient_open("e1", "p1"));
    state.gateways_gone(|gateway| gateway == "gw-1", NOW + 10);
    let grace = state.settings.reconnect_grace_ms;
    let effects = state.expire(NOW + 10 + grace);
    let raised: Vec<Value> = effects.envelopes.iter().flat_map(frames).collect();
    assert_eq!(raised.len(), 1, "one SyncError: {raised:?}");
    assert_eq!(raised[0]["event"]["hub.event"], "SyncError");
    assert_eq!(
        envelope_exclude(&effects.envelopes[0]),
        std::slice::from_ref(&lost),
        "the SyncError is about the lost subscriber and not sent to it"
    );
}
