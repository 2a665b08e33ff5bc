//! What the fault scenarios (FLT-…) share: how many fault cycles to run, a steady
//! publisher and a following subscriber that record into a [`History`], and the frame a
//! scenario runs in.
//!
//! - [`cycles`]: every fault scenario repeats its fault `FHIRCAST_SOAK_CYCLES` times (3 by
//!   default; `make soak` sets it), and scales its time budget with [`budget`].
//! - [`Publisher`]: publishes a fresh Patient-open every period through one gateway, one at
//!   a time, recording each publish and its [`Outcome`] (status, `Retry-After`, or no
//!   answer within [`PUBLISH_TIMEOUT`]).
//! - [`Follower`]: one subscribing app. It subscribes and attaches, records every message
//!   and how each socket ended, and comes back the way a FHIRcast client does: after a
//!   1011 (the hub could not guarantee order) it subscribes again; after any other end it
//!   re-attaches the same endpoint through the next gateway of its [`Route`], retrying
//!   (409 while the hub still holds the old socket, refused connections to a dead gateway)
//!   for up to [`RECONNECT_DEADLINE`].
//! - [`run_scenario`]: runs a scenario against a cluster within a budget, shows the
//!   members' logs on failure and stops the cluster cleanly on success.
//!
//! Waiting goes through [`eventually`]; the only timed pauses are the faults themselves.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use reqwest::header::RETRY_AFTER;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::client::HubClient;
use crate::cluster::Cluster;
use crate::eventually::eventually;
use crate::invariants::{
    Gaps, History, Opening, Outcome, Publish, Report, SocketEnd, SubscriberId,
};
use crate::payloads::patient_open;
use crate::proxy::with_address;
use crate::subscriber::{Incoming, Subscriber};

/// The environment variable that sets how many cycles each fault scenario runs.
pub const CYCLES_ENV: &str = "FHIRCAST_SOAK_CYCLES";
/// Cycles per fault scenario when [`CYCLES_ENV`] is unset (what `make test` runs).
pub const DEFAULT_CYCLES: usize = 3;
/// How long one publish may take before it counts as indeterminate (the gateway retries
/// an unreachable owner or Redis for about 4 s before it answers 503).
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(8);
/// How long a follower keeps trying to come back after its socket ended.
pub const RECONNECT_DEADLINE: Duration = Duration::from_secs(20);
/// How long a (re-)attach waits for the confirmation.
const CONFIRMATION: Duration = Duration::from_secs(5);
/// How long the end of a cycle waits for every subscriber to get what it is due.
pub const SETTLE: Duration = Duration::from_secs(15);
/// The most publishes one publisher makes (bounds a scenario whose cycle stalls).
const MAX_PUBLISHES: usize = 100_000;

/// How many fault cycles each scenario runs: [`CYCLES_ENV`] if it holds a positive
/// number, else [`DEFAULT_CYCLES`].
pub fn cycles() -> usize {
    std::env::var(CYCLES_ENV)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .filter(|cycles| *cycles > 0)
        .unwrap_or(DEFAULT_CYCLES)
}

/// A scenario's time budget: `setup` plus `per_cycle` for each of [`cycles`].
pub fn budget(setup: Duration, per_cycle: Duration) -> Duration {
    setup + per_cycle * u32::try_from(cycles()).unwrap_or(u32::MAX)
}

/// Runs `scenario` against `cluster` (borrowed for the whole run) within `budget`. On
/// failure every member's log tail is printed to stderr (the cluster is then dropped, which
/// kills what still runs); on success the cluster is stopped, each member with SIGTERM and
/// a clean exit.
pub async fn run_scenario<F>(mut cluster: Cluster, budget: Duration, scenario: F) -> Result<()>
where
    F: AsyncFnOnce(&mut Cluster) -> Result<()>,
{
    let outcome = match tokio::time::timeout(budget, scenario(&mut cluster)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(anyhow!(
            "the scenario took longer than its budget of {budget:?}"
        )),
    };
    if outcome.is_err() {
        eprintln!("{}", cluster.logs_tail());
    }
    outcome?;
    cluster.stop().await
}

/// Ends a cycle on `topic` once its publisher has stopped: waits until every follower
/// got what it is due ([`History::settle`], up to [`SETTLE`]), stops them, and checks I1–I3
/// with `gaps` and I4 against the topic's accepted ids in Redis (a cycle publishes a few
/// hundred events at most, far below the 10 000 ids a topic keeps). Returns the report
/// (the caller prints it, then fails on its violations).
pub async fn close_cycle(
    cluster: &Cluster,
    history: &History,
    topic: &str,
    gaps: Gaps,
    followers: Vec<Follower>,
) -> Result<Report> {
    history.settle(gaps, SETTLE).await;
    Follower::stop_all(followers).await?;
    let mut report = history.check(gaps);
    let accepted = cluster.accepted_ids(topic).await?;
    report.push_state(history.check_state(topic, &accepted));
    Ok(report)
}

/// Publishes steadily to one topic through one gateway, recording into a [`History`].
#[derive(Debug)]
pub struct Publisher {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Starts publishing a Patient-open for a fresh patient every `every` (one publish at a
    /// time: a slow answer delays the next tick) through `client`.
    pub fn start(history: &History, client: HubClient, every: Duration) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(publish_steadily(
            history.clone(),
            client,
            every,
            stop.clone(),
        ));
        Self { stop, task }
    }

    /// Stops after the publish in flight (if any) is answered and recorded.
    pub async fn stop(self) -> Result<()> {
        self.stop.cancel();
        self.task.await.context("the publisher task")
    }
}

async fn publish_steadily(
    history: History,
    client: HubClient,
    every: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for n in 0..MAX_PUBLISHES {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let event = patient_open(client.topic(), &format!("p-{n}"));
        let sent = Instant::now();
        let outcome = match tokio::time::timeout(PUBLISH_TIMEOUT, client.publish(&event)).await {
            Ok(Ok(reply)) if (200..300).contains(&reply.status) => Outcome::Acked(reply.status),
            Ok(Ok(reply)) => Outcome::Refused {
                status: reply.status,
                retry_after: reply
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned),
            },
            Ok(Err(error)) => Outcome::Indeterminate(format!("{error:#}")),
            Err(_) => Outcome::Indeterminate(format!("no answer within {PUBLISH_TIMEOUT:?}")),
        };
        history.record_publish(Publish {
            topic: client.topic().to_owned(),
            id: event["id"].as_str().unwrap_or_default().to_owned(),
            event,
            sent,
            done: Instant::now(),
            outcome,
        });
    }
}

/// Waits until `count` publishes to `topic` sent at or after `since` were acknowledged.
pub async fn wait_steady(
    history: &History,
    topic: &str,
    since: Instant,
    count: usize,
    deadline: Duration,
    what: &str,
) -> Result<()> {
    eventually(what, deadline, || async {
        Ok((history.acks_sent_since(topic, since) >= count).then_some(()))
    })
    .await
    .map_err(|error| error.context(history.last_failures(5)))
}

/// Waits for the first publish to `topic` sent at or after `since` to be acknowledged;
/// returns when it was answered.
pub async fn wait_first_ack(
    history: &History,
    topic: &str,
    since: Instant,
    deadline: Duration,
    what: &str,
) -> Result<Instant> {
    eventually(what, deadline, || async {
        Ok(history.first_ack_sent_since(topic, since))
    })
    .await
    .map_err(|error| error.context(history.last_failures(5)))
}

/// Where a [`Follower`] goes: the gateways it attaches through (it starts on the first and
/// comes back through the next one in turn) and the clients it subscribes through (the
/// first at the start, the next ones in turn after a 1011). Every client names the topic.
#[derive(Debug, Clone)]
pub struct Route {
    /// Gateway addresses to attach through.
    pub attach: Vec<SocketAddr>,
    /// Clients (one per gateway) to subscribe through.
    pub subscribe: Vec<HubClient>,
}

impl Route {
    /// Attaches through gateways `attach` and subscribes `topic` through gateways
    /// `subscribe`, each list in the order they are tried.
    pub fn through(
        cluster: &Cluster,
        topic: &str,
        attach: &[usize],
        subscribe: &[usize],
    ) -> Result<Self> {
        Ok(Self {
            attach: attach
                .iter()
                .map(|gateway| cluster.gateway_address(*gateway))
                .collect::<Result<_>>()?,
            subscribe: subscribe
                .iter()
                .map(|gateway| cluster.client(*gateway, topic))
                .collect::<Result<_>>()?,
        })
    }
}

/// One subscribing app that follows its topic through faults (see the module docs).
#[derive(Debug)]
pub struct Follower {
    id: SubscriberId,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Follower {
    /// Subscribes to `events` through `route.subscribe[0]`, attaches through
    /// `route.attach[0]`, and follows the topic in the background as `name`.
    pub async fn start(history: &History, name: &str, route: Route, events: &str) -> Result<Self> {
        let client = route.subscribe.first().context("a route needs a client")?;
        let address = *route.attach.first().context("a route needs a gateway")?;
        let topic = client.topic().to_owned();
        let endpoint = client.subscribe(events).await?;
        let subscriber =
            Subscriber::connect_confirmed(&with_address(&endpoint, address), CONFIRMATION)
                .await
                .with_context(|| format!("{name}: the first attach"))?;
        let id = history.add_subscriber(name, &topic);
        history.socket_opened(id, Opening::Subscribe, &endpoint);
        let stop = CancellationToken::new();
        let follow = Follow {
            history: history.clone(),
            id,
            name: name.to_owned(),
            route,
            events: events.to_owned(),
            endpoint,
            at: 0,
            turn: 0,
        };
        let task = tokio::spawn(follow.run(subscriber, stop.clone()));
        Ok(Self { id, stop, task })
    }

    /// Starts `count` followers named `{prefix}0…`, all on `route`.
    pub async fn start_many(
        history: &History,
        prefix: &str,
        count: usize,
        route: &Route,
        events: &str,
    ) -> Result<Vec<Self>> {
        let mut followers = Vec::with_capacity(count);
        for n in 0..count {
            followers
                .push(Self::start(history, &format!("{prefix}{n}"), route.clone(), events).await?);
        }
        Ok(followers)
    }

    /// Returns its handle in the history.
    pub fn id(&self) -> SubscriberId {
        self.id
    }

    /// Closes its socket (1000, recorded as stopped) and ends its task.
    pub async fn stop(self) -> Result<()> {
        self.stop.cancel();
        self.task.await.context("a follower task")
    }

    /// Stops every follower.
    pub async fn stop_all(followers: Vec<Self>) -> Result<()> {
        for follower in followers {
            follower.stop().await?;
        }
        Ok(())
    }
}

/// A follower's state in its task.
struct Follow {
    history: History,
    id: SubscriberId,
    name: String,
    route: Route,
    events: String,
    /// The current subscription's endpoint.
    endpoint: String,
    /// The index in `route.attach` of the gateway the current socket is on.
    at: usize,
    /// How many subscribe attempts were made (picks the next client).
    turn: usize,
}

impl Follow {
    async fn run(mut self, mut socket: Subscriber, stop: CancellationToken) {
        loop {
            let item = tokio::select! {
                () = stop.cancelled() => {
                    let _ = socket.close(1000);
                    self.history.socket_ended(self.id, SocketEnd::Stopped);
                    return;
                }
                item = socket.recv() => item,
            };
            let end = match item {
                Some(Incoming::Message(message)) => {
                    self.history.received(self.id, &message);
                    continue;
                }
                Some(Incoming::Closed(code)) => SocketEnd::Closed(code),
                Some(Incoming::Ended(why)) => SocketEnd::Dropped(why),
                None => SocketEnd::Dropped("the socket task ended".to_owned()),
            };
            let resubscribe = end.is_gap();
            self.history.socket_ended(self.id, end);
            let back = tokio::select! {
                () = stop.cancelled() => return,
                back = self.come_back(resubscribe) => back,
            };
            match back {
                Ok((next, opening)) => {
                    socket = next;
                    self.history.socket_opened(self.id, opening, &self.endpoint);
                }
                Err(error) => {
                    self.history.gave_up(self.id, format!("{error:#}"));
                    return;
                }
            }
        }
    }

    /// Attaches again: the same endpoint, or (`resubscribe`) a new subscription, through
    /// the next gateways of the route in turn, until it works or [`RECONNECT_DEADLINE`].
    async fn come_back(&mut self, resubscribe: bool) -> Result<(Subscriber, Opening)> {
        let endpoint = Arc::new(Mutex::new((!resubscribe).then(|| self.endpoint.clone())));
        let gateways = self.route.attach.len();
        let mut attempt = 0;
        let start = self.at;
        let what = format!(
            "{} {} through {:?}",
            self.name,
            if resubscribe {
                "subscribes again"
            } else {
                "re-attaches"
            },
            self.route.attach
        );
        let (socket, at) = eventually(&what, RECONNECT_DEADLINE, || {
            attempt += 1;
            let at = (start + attempt) % gateways;
            let address = self.route.attach[at];
            self.turn += 1;
            let client = self.route.subscribe[self.turn % self.route.subscribe.len()].clone();
            let endpoint = Arc::clone(&endpoint);
            let events = self.events.clone();
            async move {
                let known = endpoint.lock().ok().and_then(|known| known.clone());
                let url = match known {
                    Some(url) => url,
                    None => {
                        let url = client.subscribe(&events).await?;
                        if let Ok(mut known) = endpoint.lock() {
                            *known = Some(url.clone());
                        }
                        url
                    }
                };
                let url = with_address(&url, address);
                let attach = Subscriber::connect_confirmed(&url, CONFIRMATION);
                let socket = tokio::time::timeout(CONFIRMATION, attach)
                    .await
                    .map_err(|_| anyhow!("no confirmation within {CONFIRMATION:?}"))??;
                Ok(Some((socket, at)))
            }
        })
        .await?;
        if let Some(url) = endpoint.lock().ok().and_then(|known| known.clone()) {
            self.endpoint = url;
        }
        self.at = at;
        let opening = if resubscribe {
            Opening::Resubscribe
        } else {
            Opening::Reattach
        };
        Ok((socket, opening))
    }
}
