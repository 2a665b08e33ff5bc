//! The steady publisher of the Sentinel failover scenarios: one Patient-open every
//! 50 ms, each attempt logged with its outcome and timing, so a scenario can tell when
//! publishing stopped and resumed around a failover. (The other fault scenarios use the
//! history recorder of `crate::faults` and `crate::invariants`; these predate it.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::client::HubClient;
use crate::conformance::assert::id_of;
use crate::payloads::patient_open;

/// How often the publisher publishes.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// How long one publish may take before it counts as indeterminate.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// The most publishes the publisher makes (bounds the test if a cycle stalls).
const MAX_PUBLISHES: usize = 1000;

/// One publish and what came of it.
#[derive(Debug, Clone)]
pub(super) struct Attempt {
    pub(super) id: String,
    pub(super) sent: Instant,
    pub(super) done: Instant,
    /// The HTTP status, or why there was none (timeout, connection error).
    pub(super) outcome: Result<u16, String>,
}

impl Attempt {
    pub(super) fn succeeded(&self) -> bool {
        self.outcome
            .as_ref()
            .is_ok_and(|status| (200..300).contains(status))
    }
}

/// Every publish attempt, in order (the n-th opened patient `p-{n}`).
pub(super) type Log = Arc<Mutex<Vec<Attempt>>>;

/// Publishes a Patient-open every [`PUBLISH_EVERY`], one at a time, until `stop` or
/// [`MAX_PUBLISHES`], logging each attempt.
pub(super) async fn publish_steadily(client: HubClient, log: Log, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(PUBLISH_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for n in 0..MAX_PUBLISHES {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let event = patient_open(client.topic(), &format!("p-{n}"));
        let sent = Instant::now();
        let outcome = match tokio::time::timeout(PUBLISH_TIMEOUT, client.publish(&event)).await {
            Ok(Ok(reply)) => Ok(reply.status),
            Ok(Err(error)) => Err(format!("{error:#}")),
            Err(_) => Err(format!("no answer within {PUBLISH_TIMEOUT:?}")),
        };
        let attempt = Attempt {
            id: id_of(&event).to_owned(),
            sent,
            done: Instant::now(),
            outcome,
        };
        if let Ok(mut log) = log.lock() {
            log.push(attempt);
        }
    }
}

/// Describes the last failed publishes, for failure messages.
pub(super) fn last_failures(log: &Log) -> String {
    let Ok(log) = log.lock() else {
        return String::new();
    };
    let failures: Vec<String> = log
        .iter()
        .filter(|attempt| !attempt.succeeded())
        .rev()
        .take(5)
        .map(|attempt| format!("{:?}", attempt.outcome))
        .collect();
    format!("last failed publishes (newest first): {failures:?}")
}
