//! One subscriber: subscribe over HTTP (form, Bearer token), follow `hub.channel.endpoint`,
//! connect, then hand the socket to its frame loop ([`super::receive`]) for the rest of the
//! run: it waits for the confirmation frame (the bare broadcaster binds on the 101), records
//! and acks every notification, and says why the socket ended.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::sync::{Notify, Semaphore, mpsc};

use super::cli::Kind;
use super::http::Http;
use super::ledger::{Ledger, Socket, lock};
use super::receive::{Acks, BIND_TIMEOUT, Pending, Receiver};
use super::target::{Target, Url};
use super::wsconnect;

/// What every subscriber shares.
#[derive(Debug)]
pub struct Shared {
    pub target: Target,
    pub http: Http,
    pub tls: Arc<rustls::ClientConfig>,
    pub source_addrs: Vec<IpAddr>,
    pub allow_remote: bool,
    pub acks: Acks,
    pub ledger: Arc<Ledger>,
}

/// One subscriber's plan.
#[derive(Clone, Debug)]
pub struct Plan {
    pub index: usize,
    pub topic_index: u32,
    pub topic: String,
    pub token: Option<String>,
}

/// Per-subscriber switches the scenario flips.
#[derive(Debug, Default)]
pub struct Control {
    pub stall: AtomicBool,
    pub resume: Notify,
}

/// How a connection attempt ended.
#[derive(Debug)]
pub struct Outcome {
    pub index: usize,
    /// Subscribe sent to bound, or why it failed.
    pub result: Result<Duration, String>,
}

/// Runs one subscriber until its socket ends (or the task is aborted).
pub async fn run(
    plan: Plan,
    shared: Arc<Shared>,
    control: Arc<Control>,
    permits: Arc<Semaphore>,
    outcomes: mpsc::UnboundedSender<Outcome>,
) {
    let Ok(permit) = permits.acquire_owned().await else {
        return;
    };
    let started = Instant::now();
    let source = shared.source_addrs[plan.index % shared.source_addrs.len()];
    let opened = tokio::time::timeout(BIND_TIMEOUT, open(&plan, &shared, source)).await;
    let (stream, leftover) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(err)) => return fail(&plan, &shared, &outcomes, format!("{err:#}")),
        Err(_) => return fail(&plan, &shared, &outcomes, "timed out connecting".to_owned()),
    };
    let mut pending = Some(Pending {
        permit,
        started,
        outcomes: outcomes.clone(),
    });
    if shared.target.kind == Kind::Bare
        && let Some(pending) = pending.take()
    {
        lock(&shared.ledger.subscribers[plan.index]).socket = Socket::Bound;
        pending.bound(plan.index);
    }
    let mut receiver = Receiver::new(plan.index, &shared.ledger, shared.acks, &control, pending);
    let end = receiver.run(stream, &leftover).await;
    if let Some(pending) = receiver.pending.take() {
        let _ = pending.outcomes.send(Outcome {
            index: plan.index,
            result: Err(format!("closed before the confirmation: {end}")),
        });
        lock(&shared.ledger.subscribers[plan.index]).socket = Socket::Failed;
    } else {
        lock(&shared.ledger.subscribers[plan.index]).socket = Socket::Closed(Instant::now());
    }
}

fn fail(plan: &Plan, shared: &Shared, outcomes: &mpsc::UnboundedSender<Outcome>, why: String) {
    lock(&shared.ledger.subscribers[plan.index]).socket = Socket::Failed;
    let _ = outcomes.send(Outcome {
        index: plan.index,
        result: Err(why),
    });
}

/// Subscribes (FHIRcast) and opens the WebSocket.
async fn open(
    plan: &Plan,
    shared: &Shared,
    source: IpAddr,
) -> Result<(wsconnect::Stream, bytes::Bytes)> {
    let ws_url = match shared.target.kind {
        Kind::Bare => shared.target.bare_ws_url(&plan.topic),
        Kind::Fhircast => subscribe(plan, shared, source).await?,
    };
    let url = Url::parse(&ws_url)?;
    if !shared.allow_remote && !url.is_loopback() {
        bail!("the endpoint {ws_url} is not on loopback (use --allow-remote)");
    }
    wsconnect::connect(&url, source, &shared.tls).await
}

/// POSTs the subscription; returns `hub.channel.endpoint`.
async fn subscribe(plan: &Plan, shared: &Shared, source: IpAddr) -> Result<String> {
    let form = [
        ("hub.channel.type", "websocket"),
        ("hub.mode", "subscribe"),
        ("hub.topic", plan.topic.as_str()),
        ("hub.events", "Patient-open"),
    ];
    let mut request = shared
        .http
        .client(source)
        .post(&shared.target.hub_url)
        .form(&form);
    if let Some(token) = &plan.token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.context("subscribe request")?;
    let status = response.status();
    let body = response.text().await.context("subscribe answer")?;
    if status.as_u16() != 202 {
        bail!("subscribe answered {status}: {}", body.trim());
    }
    let json: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("subscribe answer `{body}`"))?;
    json.get("hub.channel.endpoint")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no hub.channel.endpoint in `{body}`"))
}
