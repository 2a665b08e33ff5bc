//! One subscriber: subscribe over HTTP (form, Bearer token), follow `hub.channel.endpoint`,
//! connect, wait for the confirmation frame (the bare broadcaster binds on the 101), then
//! read notifications for the rest of the run: find our event id by a byte search, record
//! the delivery in the ledger and its latency from the publish's scheduled time, and ack
//! it as apps do (`{"id":…,"status":200}`), all acks of one read batch in one write.
//!
//! A stalled subscriber (S5) stops reading its socket until told to resume; whatever it
//! then finds (the backlog, a close frame, the end of the stream) tells whether the hub
//! cut it.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};

use super::cli::Kind;
use super::event::{EventId, find};
use super::frames::{self, Masker, Parse};
use super::http::Http;
use super::ledger::{Ledger, Socket, lock};
use super::target::{Target, Url};
use super::wsconnect;

/// How long a subscription may take from subscribe to confirmation.
const BIND_TIMEOUT: Duration = Duration::from_secs(30);
/// Read buffer: starts small (thousands of idle sockets), grows while reads fill it.
const INITIAL_BUFFER: usize = 4096;
const MAX_BUFFER: usize = 256 * 1024;

/// What every subscriber shares.
#[derive(Debug)]
pub struct Shared {
    pub target: Target,
    pub http: Http,
    pub tls: Arc<rustls::ClientConfig>,
    pub source_addrs: Vec<IpAddr>,
    pub allow_remote: bool,
    pub ack: bool,
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
    if shared.target.kind == Kind::Bare {
        bound(&plan, &shared, &mut pending);
    }
    let mut socket = SocketLoop {
        plan: &plan,
        shared: &shared,
        control: &control,
        pending,
        masker: Masker::new(plan.index as u32 ^ 0x9E37_79B9),
    };
    let end = socket.run(stream, &leftover).await;
    if let Some(pending) = socket.pending.take() {
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

/// A subscription not yet bound: who to tell, and the connect permit to give back.
#[derive(Debug)]
struct Pending {
    permit: OwnedSemaphorePermit,
    started: Instant,
    outcomes: mpsc::UnboundedSender<Outcome>,
}

fn bound(plan: &Plan, shared: &Shared, pending: &mut Option<Pending>) {
    let Some(pending) = pending.take() else {
        return;
    };
    lock(&shared.ledger.subscribers[plan.index]).socket = Socket::Bound;
    let _ = pending.outcomes.send(Outcome {
        index: plan.index,
        result: Ok(pending.started.elapsed()),
    });
    drop(pending.permit);
}

/// The frame loop of one socket.
struct SocketLoop<'a> {
    plan: &'a Plan,
    shared: &'a Shared,
    control: &'a Control,
    pending: Option<Pending>,
    masker: Masker,
}

/// What one batch of frames asked for.
#[derive(Default)]
struct Batch {
    out: Vec<u8>,
    latencies: Vec<(u32, u64)>,
    close: Option<String>,
}

impl SocketLoop<'_> {
    /// Reads until the socket ends; returns why it ended.
    async fn run<S>(&mut self, mut stream: S, leftover: &[u8]) -> String
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut buf = vec![0u8; INITIAL_BUFFER.max(leftover.len() * 2)];
        buf[..leftover.len()].copy_from_slice(leftover);
        let (mut start, mut end) = (0usize, leftover.len());
        let mut fragments: Vec<u8> = Vec::new();
        let mut batch = Batch::default();
        loop {
            // Every complete frame in the buffer.
            let mut need = 0;
            {
                let now_us = self.shared.ledger.now_us();
                let mut state = lock(&self.shared.ledger.subscribers[self.plan.index]);
                loop {
                    let (frame, used) = match frames::parse(&buf[start..end]) {
                        Ok(parsed) => parsed,
                        Err(Parse::Incomplete(total)) => {
                            need = total;
                            break;
                        }
                        Err(Parse::Invalid) => {
                            batch.close = Some("invalid frame from the hub".to_owned());
                            break;
                        }
                    };
                    start += used;
                    let assembled = match frame.opcode {
                        frames::OP_TEXT | frames::OP_BINARY if frame.fin => {
                            fragments.clear();
                            self.message(frame.payload, now_us, &mut state, &mut batch);
                            false
                        }
                        frames::OP_TEXT | frames::OP_BINARY | frames::OP_CONTINUATION => {
                            if frame.opcode != frames::OP_CONTINUATION {
                                fragments.clear();
                            }
                            fragments.extend_from_slice(frame.payload);
                            if fragments.len() > frames::MAX_FRAME {
                                batch.close = Some("oversized message".to_owned());
                                break;
                            }
                            frame.fin
                        }
                        frames::OP_PING => {
                            let other = &self.shared.ledger.other;
                            other.pings.fetch_add(1, Ordering::Relaxed);
                            self.masker
                                .write(&mut batch.out, frames::OP_PONG, frame.payload);
                            false
                        }
                        frames::OP_CLOSE => {
                            let code = frame
                                .payload
                                .get(..2)
                                .map_or(1005, |code| u16::from_be_bytes([code[0], code[1]]));
                            let echo = frame.payload.get(..2).unwrap_or_default();
                            self.masker.write(&mut batch.out, frames::OP_CLOSE, echo);
                            batch.close = Some(format!("closed by the hub ({code})"));
                            break;
                        }
                        _ => false,
                    };
                    if assembled {
                        self.message(&fragments, now_us, &mut state, &mut batch);
                        fragments.clear();
                    }
                }
                drop(state);
                if !batch.latencies.is_empty() {
                    self.count(&batch.latencies);
                    batch.latencies.clear();
                }
            }
            if !batch.out.is_empty() {
                if let Err(err) = stream.write_all(&batch.out).await {
                    return format!("write failed: {err}");
                }
                batch.out.clear();
            }
            if let Some(why) = batch.close.take() {
                let _ = stream.shutdown().await;
                return why;
            }
            if self.control.stall.load(Ordering::Acquire) {
                let resumed = self.control.resume.notified();
                tokio::pin!(resumed);
                resumed.as_mut().enable();
                if self.control.stall.load(Ordering::Acquire) {
                    resumed.await;
                }
            }
            // Room for the next read.
            if start == end {
                (start, end) = (0, 0);
            } else if start > 0 && (need > buf.len() - start || buf.len() - end < 1024) {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            if need > buf.len() || end == buf.len() {
                let grown = (buf.len() * 2).max(need).min(MAX_BUFFER.max(need));
                buf.resize(grown, 0);
            }
            let read = if self.pending.is_some() {
                match tokio::time::timeout(BIND_TIMEOUT, stream.read(&mut buf[end..])).await {
                    Ok(read) => read,
                    Err(_) => return "no confirmation in time".to_owned(),
                }
            } else {
                stream.read(&mut buf[end..]).await
            };
            match read {
                Ok(0) => return "the hub closed the connection".to_owned(),
                Ok(n) => end += n,
                Err(err) => return format!("read failed: {err}"),
            }
        }
    }

    /// Records counted deliveries' latencies and counts.
    fn count(&self, latencies: &[(u32, u64)]) {
        let ledger = &self.shared.ledger;
        ledger.latency.record(self.plan.index, latencies);
        let mut run_phase = u32::MAX;
        let mut run = 0u64;
        for &(phase, _) in latencies {
            if phase != run_phase {
                if run > 0 {
                    add(ledger, run_phase, run);
                }
                (run_phase, run) = (phase, 0);
            }
            run += 1;
        }
        if run > 0 {
            add(ledger, run_phase, run);
        }
    }

    /// One complete text message.
    fn message(
        &mut self,
        payload: &[u8],
        now_us: u64,
        state: &mut super::ledger::Subscriber,
        batch: &mut Batch,
    ) {
        if let Some((id, text)) = EventId::find(payload) {
            if self.shared.ack {
                self.masker.ack(&mut batch.out, text);
            }
            if state.delivered(&id) && id.phase > 0 {
                batch
                    .latencies
                    .push((id.phase, now_us.saturating_sub(id.sched_us)));
            }
            return;
        }
        let other = &self.shared.ledger.other;
        if find(payload, b"\"hub.mode\":\"subscribe\"").is_some() {
            other.confirmations.fetch_add(1, Ordering::Relaxed);
            if self.pending.is_some() {
                state.socket = Socket::Bound;
                if let Some(pending) = self.pending.take() {
                    let _ = pending.outcomes.send(Outcome {
                        index: self.plan.index,
                        result: Ok(pending.started.elapsed()),
                    });
                    drop(pending.permit);
                }
            }
        } else if find(payload, b"\"hub.mode\":\"denied\"").is_some() {
            other.denials.fetch_add(1, Ordering::Relaxed);
        } else if find(payload, b"SyncError").is_some() {
            other.sync_errors.fetch_add(1, Ordering::Relaxed);
        } else {
            other.other.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn add(ledger: &Ledger, phase: u32, count: u64) {
    if let Some(counter) = ledger.phase_received.get(phase as usize) {
        counter.fetch_add(count, Ordering::Relaxed);
    }
}
