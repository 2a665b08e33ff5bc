//! The app of the failover scenarios: one socket at a time, resubscribing when the hub
//! closes it, recording what it sees; and the checks on what it saw (no silent skip, its
//! current context at the end).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::MSG;
use super::{BUDGET, EVENTS, RECOVERY_DEADLINE};
use crate::client::{HubClient, endpoint_of};
use crate::cluster::Cluster;
use crate::conformance::assert::{event_name, id_of};
use crate::eventually::eventually;
use crate::subscriber::{ConnectError, Incoming, Subscriber};

/// What the app's socket saw, in order.
#[derive(Debug, Clone)]
pub(super) enum Seen {
    /// An event notification: its id and `hub.event`.
    Event { id: String, name: String },
    /// A close frame from the hub.
    Closed { code: Option<u16>, at: Instant },
    /// The stream ended without a close frame, or could not be read.
    Ended(String),
    /// The app subscribed again (after this many attempts) and its new socket was confirmed.
    Resubscribed(usize),
    /// Anything else (a message that is not an event, a resubscription that failed).
    Note(String),
}

/// An app holding one subscription's socket, recording what it sees; when the hub closes
/// the socket, it subscribes again (through the same gateway) and goes on with the new one.
#[derive(Debug)]
pub(super) struct App {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl App {
    /// Subscribes through `client` and starts reading.
    pub(super) async fn start(client: HubClient) -> Result<Self> {
        let subscriber = subscribe(&client).await?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn(read(client, subscriber, Arc::clone(&seen), stop.clone()));
        Ok(Self { seen, stop, task })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }

    /// Waits until the current socket received `id`, or any socket was closed after the
    /// last event received before (then the app's resubscription has its current context).
    pub(super) async fn wait_for(&self, id: &str) -> Result<()> {
        eventually(
            &format!("the app receives {id} on its current socket"),
            RECOVERY_DEADLINE,
            || async {
                let seen = self.seen();
                let current = seen
                    .iter()
                    .rposition(|seen| matches!(seen, Seen::Resubscribed(_)))
                    .map_or(0, |at| at + 1);
                Ok(seen[current..]
                    .iter()
                    .any(|seen| matches!(seen, Seen::Event { id: got, .. } if got == id))
                    .then_some(()))
            },
        )
        .await
        .map_err(|error| error.context(format!("the app saw: {:?}", self.seen())))
    }

    /// Stops reading (the socket is closed normally) and returns what was seen.
    pub(super) async fn stop(self) -> Vec<Seen> {
        self.stop.cancel();
        let seen = Arc::clone(&self.seen);
        let _ = self.task.await;
        seen.lock().map(|seen| seen.clone()).unwrap_or_default()
    }
}

/// Subscribes as a real app does: a 503 (with `WAIT`, no replica has confirmed the change
/// yet, e.g. while the previous cycle's old primary is still resyncing as a replica) is
/// retried; any other refusal fails.
pub(super) async fn subscribe(client: &HubClient) -> Result<Subscriber> {
    let endpoint = eventually(
        "the hub takes the subscription",
        RECOVERY_DEADLINE,
        || async {
            let reply = client.subscribe_with(EVENTS, &[]).await?;
            if reply.status == 503 {
                return Ok(None);
            }
            reply.expect(202, "subscribe")?;
            Ok(Some(endpoint_of(&reply)?))
        },
    )
    .await?;
    Subscriber::connect_confirmed(&endpoint, MSG).await
}

pub(super) async fn read(
    client: HubClient,
    mut subscriber: Subscriber,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: CancellationToken,
) {
    let record = |item: Seen| {
        if let Ok(mut seen) = seen.lock() {
            seen.push(item);
        }
    };
    loop {
        let item = tokio::select! {
            () = stop.cancelled() => return,
            item = subscriber.next_incoming(BUDGET) => item,
        };
        match item {
            Ok(Incoming::Message(message)) if message.get("event").is_some() => {
                record(Seen::Event {
                    id: id_of(&message).to_owned(),
                    name: event_name(&message).to_owned(),
                });
                continue;
            }
            Ok(Incoming::Message(message)) => {
                record(Seen::Note(message.to_string()));
                continue;
            }
            Ok(Incoming::Closed(code)) => record(Seen::Closed {
                code,
                at: Instant::now(),
            }),
            Ok(Incoming::Ended(why)) => record(Seen::Ended(why)),
            Err(error) => record(Seen::Ended(format!("{error:#}"))),
        }
        // The socket is gone: the app subscribes again, as 1011 asks it to. Like a real
        // client it keeps trying the endpoint it was given while the hub answers 5xx, and
        // subscribes anew only when that endpoint is refused for good (4xx).
        let mut attempts = 0;
        let pending: Mutex<Option<String>> = Mutex::new(None);
        let resubscribed = tokio::select! {
            () = stop.cancelled() => return,
            resubscribed = eventually("the app resubscribes", RECOVERY_DEADLINE, || {
                attempts += 1;
                let (client, pending) = (&client, &pending);
                async move { resubscribe(client, pending).await }
            }) => resubscribed,
        };
        match resubscribed {
            Ok(fresh) => {
                record(Seen::Resubscribed(attempts));
                subscriber = fresh;
            }
            Err(error) => {
                record(Seen::Note(format!("{error:#}")));
                return;
            }
        }
    }
}

/// One resubscription attempt: subscribes unless an endpoint is pending, then attaches to
/// it and reads its confirmation. `Ok(None)` to try again (the endpoint stays pending
/// unless the hub refused it with a 4xx).
async fn resubscribe(
    client: &HubClient,
    pending: &Mutex<Option<String>>,
) -> Result<Option<Subscriber>> {
    let held = pending.lock().ok().and_then(|pending| pending.clone());
    let endpoint = match held {
        Some(endpoint) => endpoint,
        None => {
            let Ok(endpoint) = client.subscribe(EVENTS).await else {
                return Ok(None);
            };
            if let Ok(mut pending) = pending.lock() {
                *pending = Some(endpoint.clone());
            }
            endpoint
        }
    };
    match Subscriber::try_connect(&endpoint).await {
        Ok(mut subscriber) => {
            let confirmed = subscriber.next_message(MSG).await.is_ok_and(|first| {
                first.get("hub.mode").and_then(Value::as_str) == Some("subscribe")
            });
            Ok(confirmed.then_some(subscriber))
        }
        Err(ConnectError::Refused(status)) if (400..500).contains(&status) => {
            if let Ok(mut pending) = pending.lock() {
                *pending = None;
            }
            Ok(None)
        }
        Err(_) => Ok(None),
    }
}

/// How the first event of a resubscribed socket (the current context then) is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Replay {
    /// Wherever it is: after a rollback by the store it may be older than what the app
    /// saw, and the next event need not follow it; the socket is held to the order from its
    /// next event on.
    StartsAnywhere,
    /// It must be the latest acknowledged event then: the next one follows it directly.
    IsTheLatest,
}

/// Checks that no socket skipped an acknowledged event silently: on each socket the
/// acknowledged events it received (repeats dropped) must be consecutive in `acked` order.
/// A socket may miss events only across a close and resubscription; how the new socket's
/// first event is judged is `replay`. Events never published are violations too; published
/// but unacknowledged ones (refused, indeterminate) may come or not. Returns every
/// violation.
pub(super) fn silent_skips(
    acked: &[String],
    published: &HashSet<String>,
    seen: &[Seen],
    replay_rule: Replay,
) -> Vec<String> {
    let position: HashMap<&str, usize> = acked
        .iter()
        .enumerate()
        .map(|(n, id)| (id.as_str(), n))
        .collect();
    let mut problems = Vec::new();
    let mut socket = 0;
    let mut previous: Option<usize> = None;
    let mut received: HashSet<&str> = HashSet::new();
    let mut replay = false;
    for item in seen {
        match item {
            Seen::Resubscribed(_) => {
                socket += 1;
                previous = None;
                received.clear();
                replay = true;
            }
            Seen::Event { id, name } => {
                if !published.contains(id) {
                    problems.push(format!(
                        "socket {socket}: received {name} {id}, which was never published"
                    ));
                    continue;
                }
                let Some(&at) = position.get(id.as_str()) else {
                    continue;
                };
                if !received.insert(id) {
                    continue;
                }
                if std::mem::take(&mut replay) && replay_rule == Replay::StartsAnywhere {
                    // The order is checked from the next event on.
                    continue;
                }
                match previous {
                    Some(before) if at < before => problems.push(format!(
                        "socket {socket}: acknowledged #{at} ({id}) arrived after #{before}"
                    )),
                    Some(before) if at > before + 1 => problems.push(format!(
                        "socket {socket}: after acknowledged #{before} ({}) came #{at} ({id}): \
                         {} acknowledged events skipped without a close ({:?})",
                        acked[before],
                        at - before - 1,
                        &acked[before + 1..at]
                    )),
                    _ => {}
                }
                previous = Some(previous.map_or(at, |before| before.max(at)));
            }
            Seen::Closed { .. } | Seen::Ended(_) | Seen::Note(_) => {}
        }
    }
    problems
}

pub(super) fn closes(seen: &[Seen]) -> Vec<Option<u16>> {
    seen.iter()
        .filter_map(|seen| match seen {
            Seen::Closed { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

pub(super) fn resubscriptions(seen: &[Seen]) -> usize {
    seen.iter()
        .filter(|seen| matches!(seen, Seen::Resubscribed(_)))
        .count()
}

/// Renders the app's timeline, naming acknowledged events by their patient.
pub(super) fn describe(seen: &[Seen], acked: &[(String, String)]) -> String {
    let names: HashMap<&str, &str> = acked
        .iter()
        .map(|(id, patient)| (id.as_str(), patient.as_str()))
        .collect();
    let mut out = String::new();
    for item in seen {
        if !out.is_empty() {
            out.push_str(", ");
        }
        match item {
            Seen::Event { id, name } => {
                let label = names.get(id.as_str()).copied().unwrap_or(id.as_str());
                let _ = write!(out, "{name}({label})");
            }
            Seen::Closed { code, .. } => {
                let _ = write!(out, "close {code:?}");
            }
            Seen::Ended(why) => {
                let _ = write!(out, "ended ({why})");
            }
            Seen::Resubscribed(attempts) => {
                let _ = write!(out, "resubscribed (attempt {attempts})");
            }
            Seen::Note(note) => {
                let _ = write!(out, "note {note}");
            }
        }
    }
    out
}

/// What a fresh subscription through gw-0 and Get Current Context show at the end.
#[derive(Debug)]
pub(super) struct Current {
    /// The id of the current context replayed after the confirmation.
    replay: Result<String, String>,
    /// The patient Get Current Context shows.
    patient: Result<String, String>,
}

impl Current {
    pub(super) async fn read(cluster: &Cluster, topic: &str) -> Result<Self> {
        let client = cluster.client(0, topic)?;
        let fresh = eventually("a fresh subscription", RECOVERY_DEADLINE, || async {
            Ok(Some(subscribe(&client).await?))
        })
        .await;
        let replay = match fresh {
            Ok(mut fresh) => fresh
                .next_event(MSG)
                .await
                .map(|event| id_of(&event).to_owned())
                .map_err(|error| format!("no current context after the confirmation: {error:#}")),
            Err(error) => Err(format!("{error:#}")),
        };
        let patient = match client.context().await {
            Ok(context) => context
                .pointer("/context/0/resource/id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("no patient in the current context {context}")),
            Err(error) => Err(format!("{error:#}")),
        };
        Ok(Self { replay, patient })
    }

    /// Adds a problem unless the replay is `id` and the context shows `patient`.
    pub(super) fn expect(&self, id: &str, patient: &str, what: &str, problems: &mut Vec<String>) {
        if self.replay.as_deref() != Ok(id) {
            problems.push(format!(
                "a fresh subscription's current context is {:?}, not {what} ({id})",
                self.replay
            ));
        }
        if self.patient.as_deref() != Ok(patient) {
            problems.push(format!(
                "Get Current Context shows patient {:?}, not {patient} ({what})",
                self.patient
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(count: usize) -> Vec<String> {
        (0..count).map(|n| format!("e{n}")).collect()
    }

    fn event(n: usize) -> Seen {
        Seen::Event {
            id: format!("e{n}"),
            name: "Patient-open".to_owned(),
        }
    }

    fn resubscribed() -> Vec<Seen> {
        vec![
            Seen::Closed {
                code: Some(1011),
                at: Instant::now(),
            },
            Seen::Resubscribed(1),
        ]
    }

    fn check(seen: &[Seen], rule: Replay) -> Vec<String> {
        let acked = ids(10);
        let published: HashSet<String> = acked.iter().cloned().collect();
        silent_skips(&acked, &published, seen, rule)
    }

    #[test]
    fn consecutive_events_and_repeats_pass() {
        let seen = [event(0), event(1), event(1), event(2)];
        assert!(check(&seen, Replay::IsTheLatest).is_empty());
    }

    #[test]
    fn a_skip_without_a_close_is_reported() {
        let seen = [event(0), event(1), event(3)];
        let problems = check(&seen, Replay::StartsAnywhere);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("1 acknowledged events skipped"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_stale_replay_passes_only_where_it_may_start_anywhere() {
        let mut seen = vec![event(0), event(1), event(2), event(3)];
        seen.extend(resubscribed());
        // The store rolled back to e1; the socket goes on with e4.
        seen.extend([event(1), event(4), event(5)]);
        assert!(check(&seen, Replay::StartsAnywhere).is_empty());
        assert_eq!(check(&seen, Replay::IsTheLatest).len(), 1);
    }

    #[test]
    fn a_skip_after_the_replay_is_reported() {
        let mut seen = vec![event(0)];
        seen.extend(resubscribed());
        seen.extend([event(1), event(2), event(5)]);
        assert_eq!(check(&seen, Replay::StartsAnywhere).len(), 1);
    }

    #[test]
    fn an_event_never_published_is_reported() {
        let seen = [
            event(0),
            Seen::Event {
                id: "stranger".to_owned(),
                name: "Patient-open".to_owned(),
            },
        ];
        assert_eq!(check(&seen, Replay::StartsAnywhere).len(), 1);
    }
}
