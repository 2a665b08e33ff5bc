//! The checker against hand-made histories: what passes, what each invariant catches.

use anyhow::Result;
use serde_json::Value;
use tokio::time::Instant;

use super::*;

fn publish(history: &History, topic: &str, id: &str, outcome: Outcome) {
    let now = Instant::now();
    history.record_publish(Publish {
        topic: topic.to_owned(),
        id: id.to_owned(),
        event: Value::Null,
        sent: now,
        done: now,
        outcome,
    });
}

fn notify(history: &History, subscriber: SubscriberId, topic: &str, id: &str) {
    history.received(
        subscriber,
        &serde_json::json!({
            "id": id,
            "event": { "hub.topic": topic, "hub.event": "Patient-open" },
        }),
    );
}

/// A subscriber of `t` attached before `a`, `b`, `c` were acknowledged.
fn three_published() -> (History, SubscriberId) {
    let history = History::new();
    let subscriber = history.add_subscriber("s", "t");
    history.socket_opened(subscriber, Opening::Subscribe, "ws://e");
    for id in ["a", "b", "c"] {
        publish(&history, "t", id, Outcome::Acked(200));
    }
    (history, subscriber)
}

#[test]
fn everything_in_order_with_a_duplicate_passes_and_counts_it() -> Result<()> {
    let (history, s) = three_published();
    for id in ["a", "b", "b", "c"] {
        notify(&history, s, "t", id);
    }
    let report = history.check(Gaps::Never);
    report.ensure_ok()?;
    assert_eq!(report.duplicates(), 1);
    assert_eq!(report.subscribers[0].delivered, 3);
    Ok(())
}

#[test]
fn a_missing_event_out_of_order_and_a_foreign_topic_are_violations() {
    let (history, s) = three_published();
    notify(&history, s, "t", "c");
    notify(&history, s, "t", "a");
    notify(&history, s, "other", "a");
    let report = history.check(Gaps::Never);
    let text = report.violations.join("\n");
    assert!(text.contains("I1/I2 s: 1 of 3"), "{text}");
    assert!(
        text.contains("I2 s: 1 acknowledged events arrived out of"),
        "{text}"
    );
    assert!(
        text.contains("I3 s: 1 notifications for another topic"),
        "{text}"
    );
}

#[test]
fn a_1011_and_a_resubscription_excuse_only_what_the_rule_allows() {
    let (history, s) = three_published();
    notify(&history, s, "t", "a");
    history.socket_ended(s, SocketEnd::Closed(Some(1011)));
    history.socket_opened(s, Opening::Resubscribe, "ws://f");
    // The new subscription starts with the current context, `c`: `b` is superseded.
    notify(&history, s, "t", "c");
    history
        .check(Gaps::SupersededAfter1011)
        .ensure_ok()
        .expect("b is excused");
    let strict = history.check(Gaps::Never);
    assert_eq!(strict.subscribers[0].missing, 1, "{strict}");
}

#[test]
fn the_state_must_hold_each_acknowledged_event_once_in_order() {
    let (history, _) = three_published();
    publish(
        &history,
        "t",
        "r",
        Outcome::Refused {
            status: 503,
            retry_after: Some("1".to_owned()),
        },
    );
    let ids = |ids: &[&str]| ids.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>();
    let fine = history.check_state("t", &ids(&["a", "b", "r", "c"]));
    assert!(fine.violations.is_empty(), "{:?}", fine.violations);
    assert_eq!(fine.unacked_applied, 1);
    let bad = history.check_state("t", &ids(&["b", "a", "a", "x"]));
    let text = bad.violations.join("\n");
    for what in [
        "missing",
        "twice",
        "never published",
        "out of publish order",
    ] {
        assert!(text.contains(what), "{what}: {text}");
    }
}
