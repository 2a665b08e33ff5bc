//! Publishing: spec-shaped events POSTed over HTTP/1.1 keep-alive connections, either open
//! loop (a scheduler releases publish k at start + k/rate into a queue that several
//! connections drain, so a slow answer never delays the schedule and latency counts from
//! the scheduled time) or closed loop (each connection sends its next publish as soon as
//! the previous one is answered: the hub's publish throughput, S6).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use super::event::{EventId, EventTemplate};
use super::http::Http;
use super::latency;
use super::ledger::{Ledger, lock};
use super::target::Target;
use crate::results::{Latency, Publishes};

/// One topic as the publisher sees it.
#[derive(Debug)]
pub struct Topic {
    pub url: String,
    pub token: Option<String>,
    pub template: EventTemplate,
}

/// Counters of one phase's publishes.
#[derive(Debug, Default)]
pub struct PhaseStats {
    pub offered: AtomicU64,
    pub sent: AtomicU64,
    pub accepted: AtomicU64,
    pub failed: AtomicU64,
    pub http: Mutex<Option<Histogram<u64>>>,
    /// Non-2xx statuses and errors seen, for the notes.
    pub refusals: Mutex<BTreeMap<String, u64>>,
}

impl PhaseStats {
    /// The result figures over `seconds`.
    pub fn publishes(&self, seconds: f64) -> Publishes {
        let accepted = self.accepted.load(Ordering::Relaxed);
        Publishes {
            sent: self.sent.load(Ordering::Relaxed),
            accepted,
            failed: self.failed.load(Ordering::Relaxed),
            per_s: if seconds > 0.0 {
                accepted as f64 / seconds
            } else {
                0.0
            },
            http_latency_us: lock(&self.http).as_ref().map(latency::summary),
        }
    }

    pub fn http_latency(&self) -> Option<Latency> {
        lock(&self.http).as_ref().map(latency::summary)
    }

    /// "429 ×12, timeout ×1" or empty.
    pub fn refusal_note(&self) -> Option<String> {
        let refusals = lock(&self.refusals);
        (!refusals.is_empty()).then(|| {
            refusals
                .iter()
                .map(|(what, count)| format!("{what} x{count}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

/// The publishing side of a run.
#[derive(Debug)]
pub struct Publisher {
    pub topics: Vec<Topic>,
    pub http: Http,
    pub ledger: Arc<Ledger>,
    /// Global publish counter (round-robin over topics).
    next: AtomicU64,
}

/// One scheduled publish.
#[derive(Debug, Clone, Copy)]
struct Job {
    topic: u32,
    seq: u64,
    phase: u32,
    sched_us: u64,
}

/// One open-loop step: `warmup` then `measured` seconds at `rate` publishes/s.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub rate: f64,
    pub warmup: Duration,
    pub measured: Duration,
    pub phase: u32,
    pub connections: usize,
}

impl Publisher {
    pub fn new(
        target: &Target,
        topics: Vec<(String, Option<String>)>,
        payload: usize,
        http: Http,
        ledger: Arc<Ledger>,
    ) -> Self {
        let topics = topics
            .into_iter()
            .enumerate()
            .map(|(index, (name, token))| Topic {
                url: target.publish_url(&name),
                template: EventTemplate::new(&name, index, payload),
                token,
            })
            .collect();
        Self {
            topics,
            http,
            ledger,
            next: AtomicU64::new(0),
        }
    }

    /// Takes the next publish: its topic (round-robin) and sequence number.
    fn take(&self, phase: u32) -> (u32, u64) {
        let global = self.next.fetch_add(1, Ordering::Relaxed);
        let topic = (global % self.topics.len().max(1) as u64) as u32;
        let seq = lock(&self.ledger.topics[topic as usize]).next(phase);
        (topic, seq)
    }

    /// Runs one open-loop step until its schedule ends (or `deadline`), then waits for every
    /// answer. Returns when the last answer is in.
    pub async fn open_loop(
        self: &Arc<Self>,
        schedule: Schedule,
        deadline: Instant,
        stats: Arc<PhaseStats>,
        started: Instant,
    ) {
        let (sender, receiver) = mpsc::unbounded_channel::<Job>();
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let mut workers = Vec::new();
        for worker in 0..schedule.connections.max(1) {
            let (publisher, receiver, stats) = (self.clone(), receiver.clone(), stats.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let job = receiver.lock().await.recv().await;
                    let Some(job) = job else { break };
                    publisher.send(worker, job, &stats).await;
                }
            }));
        }
        let end = started + schedule.warmup + schedule.measured;
        let measured_from = started + schedule.warmup;
        let interval = 1.0 / schedule.rate.max(0.001);
        for k in 0u64.. {
            let at = started + Duration::from_secs_f64(k as f64 * interval);
            if at >= end || at >= deadline {
                break;
            }
            tokio::time::sleep_until(at.into()).await;
            let phase = if at >= measured_from {
                schedule.phase
            } else {
                0
            };
            if phase > 0 {
                stats.offered.fetch_add(1, Ordering::Relaxed);
            }
            let (topic, seq) = self.take(phase);
            let sched_us =
                u64::try_from(at.duration_since(self.ledger.epoch).as_micros()).unwrap_or(u64::MAX);
            if sender
                .send(Job {
                    topic,
                    seq,
                    phase,
                    sched_us,
                })
                .is_err()
            {
                break;
            }
        }
        drop(sender);
        for worker in workers {
            let _ = worker.await;
        }
    }

    /// Closed loop: `connections` publishers, each sending as soon as its previous publish
    /// is answered, until `until`.
    pub async fn closed_loop(
        self: &Arc<Self>,
        connections: usize,
        phase: u32,
        until: Instant,
        stats: Arc<PhaseStats>,
    ) {
        let mut workers = Vec::new();
        for worker in 0..connections.max(1) {
            let (publisher, stats) = (self.clone(), stats.clone());
            workers.push(tokio::spawn(async move {
                while Instant::now() < until {
                    stats.offered.fetch_add(1, Ordering::Relaxed);
                    let (topic, seq) = publisher.take(phase);
                    let sched_us = publisher.ledger.now_us();
                    publisher
                        .send(
                            worker,
                            Job {
                                topic,
                                seq,
                                phase,
                                sched_us,
                            },
                            &stats,
                        )
                        .await;
                }
            }));
        }
        for worker in workers {
            let _ = worker.await;
        }
    }

    /// Sends one publish and records its answer.
    async fn send(&self, worker: usize, job: Job, stats: &PhaseStats) {
        let Some(topic) = self.topics.get(job.topic as usize) else {
            return;
        };
        let floor = lock(&self.ledger.topics[job.topic as usize]).floor();
        let id = EventId {
            phase: job.phase,
            topic: job.topic,
            seq: job.seq,
            sched_us: job.sched_us,
            floor,
        };
        let body = topic.template.body(&id);
        let mut request = self
            .http
            .nth(worker)
            .post(&topic.url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = &topic.token {
            request = request.bearer_auth(token);
        }
        let measured = job.phase > 0;
        if measured {
            stats.sent.fetch_add(1, Ordering::Relaxed);
        }
        let outcome = match request.send().await {
            Ok(response) => {
                let status = response.status();
                // Read the body so the connection is reused.
                let _ = response.bytes().await;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(status.as_u16().to_string())
                }
            }
            Err(err) if err.is_timeout() => Err("timeout".to_owned()),
            Err(err) if err.is_connect() => Err("connect error".to_owned()),
            Err(_) => Err("request error".to_owned()),
        };
        let now_us = self.ledger.now_us();
        let accepted = outcome.is_ok();
        lock(&self.ledger.topics[job.topic as usize]).answered(job.seq, accepted);
        match outcome {
            Ok(()) if measured => {
                stats.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Ok(()) => {}
            Err(what) => {
                *lock(&stats.refusals).entry(what).or_default() += 1;
                if measured {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if measured {
            let mut http = lock(&stats.http);
            latency::record(
                http.get_or_insert_with(latency::histogram),
                now_us.saturating_sub(job.sched_us),
            );
        }
    }
}
