//! The frame loop of one subscriber socket after its handshake. Each read is stamped
//! (microseconds since the run's epoch) the moment it returns; then every frame it
//! completed is taken from the [`Inbox`]: each of our notifications is recorded in the
//! ledger (exactly-once and per-topic order) with its latency from the publish's scheduled
//! time to that stamp, and its ack `{"id":…,"status":200}` is masked into one output
//! buffer. The buffer goes out in one write per read: k notifications in one read cost one
//! read and one write holding k ack frames. The ledger lock and the latency shard are taken
//! once per read, not per frame, and the event id is found by a byte search (no JSON tree).
//!
//! With a hold ([`Acks::hold`], `--ack-hold-us`), acks wait in the buffer until the oldest
//! has waited that long (or the buffer is large, or a pong or close must go out) and the
//! acks of several reads share one write; the latency stamp is still the read's.
//!
//! A stalled subscriber (S5) stops reading until told to resume; whatever it then finds
//! (the backlog, a close frame, the end of the stream) tells whether the hub cut it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::event::{EventId, find};
use super::frames::{self, Masker};
use super::inbox::{Inbox, Incoming};
use super::ledger::{Ledger, Socket, SocketIo, Subscriber, lock};
use super::subscriber::{Control, Outcome};

/// How long a subscription may take from subscribe to confirmation.
pub const BIND_TIMEOUT: Duration = Duration::from_secs(30);

/// How many output bytes are written at once, whatever the hold.
const FLUSH_BYTES: usize = 32 * 1024;

/// How subscribers ack notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acks {
    pub enabled: bool,
    /// How long acks may wait to share a write with later reads' (zero: write per read).
    pub hold: Duration,
}

impl Acks {
    /// Every read's acks in one write right after it.
    pub const IMMEDIATE: Self = Self {
        enabled: true,
        hold: Duration::ZERO,
    };
}

/// A subscription not yet bound: who to tell, and the connect permit to give back.
#[derive(Debug)]
pub struct Pending {
    pub permit: OwnedSemaphorePermit,
    pub started: Instant,
    pub outcomes: mpsc::UnboundedSender<Outcome>,
}

impl Pending {
    /// Reports subscriber `index` bound and gives the connect permit back.
    pub fn bound(self, index: usize) {
        let _ = self.outcomes.send(Outcome {
            index,
            result: Ok(self.started.elapsed()),
        });
        drop(self.permit);
    }
}

/// The frame loop of one socket.
#[derive(Debug)]
pub struct Receiver<'a> {
    /// The subscriber's index in the ledger.
    pub index: usize,
    pub ledger: &'a Ledger,
    pub acks: Acks,
    pub control: &'a Control,
    /// Set until the hub's confirmation arrives (FHIRcast hubs).
    pub pending: Option<Pending>,
    pub masker: Masker,
    io: SocketIo,
}

/// What one read's frames asked for.
#[derive(Debug, Default)]
struct Replies {
    /// Masked frames to write, once.
    out: Vec<u8>,
    /// `(phase, µs)` of the counted deliveries.
    latencies: Vec<(u32, u64)>,
    /// Why the socket is to be closed.
    close: Option<String>,
    /// `out` holds a frame that must not wait (a pong or the close).
    urgent: bool,
}

impl<'a> Receiver<'a> {
    pub fn new(
        index: usize,
        ledger: &'a Ledger,
        acks: Acks,
        control: &'a Control,
        pending: Option<Pending>,
    ) -> Self {
        Self {
            index,
            ledger,
            acks,
            control,
            pending,
            masker: Masker::new(index as u32 ^ 0x9E37_79B9),
            io: SocketIo::default(),
        }
    }

    /// Reads until the socket ends; returns why it ended. `leftover` is what the handshake
    /// read past the 101.
    pub async fn run<S>(&mut self, mut stream: S, leftover: &[u8]) -> String
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let why = self.frames(&mut stream, leftover).await;
        lock(&self.ledger.subscribers[self.index]).io = self.io;
        why
    }

    async fn frames<S>(&mut self, stream: &mut S, leftover: &[u8]) -> String
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let hold_us = u64::try_from(self.acks.hold.as_micros()).unwrap_or(u64::MAX);
        let mut inbox = Inbox::new(leftover);
        let mut replies = Replies::default();
        let mut read_at_us = self.ledger.now_us();
        // When the held output must be written (µs since the epoch).
        let mut flush_at_us: Option<u64> = None;
        loop {
            self.take_frames(&mut inbox, read_at_us, &mut replies);
            if !replies.out.is_empty() {
                let due = *flush_at_us.get_or_insert(read_at_us.saturating_add(hold_us));
                let stalling = self.control.stall.load(Ordering::Acquire);
                if hold_us == 0
                    || replies.urgent
                    || replies.close.is_some()
                    || stalling
                    || self.pending.is_some()
                    || read_at_us >= due
                    || replies.out.len() >= FLUSH_BYTES
                {
                    if let Err(err) = self.write(stream, &mut replies).await {
                        return err;
                    }
                    flush_at_us = None;
                }
            }
            if let Some(why) = replies.close.take() {
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
            let room = inbox.room();
            let read = if self.pending.is_some() {
                match tokio::time::timeout(BIND_TIMEOUT, stream.read(room)).await {
                    Ok(read) => read,
                    Err(_) => return "no confirmation in time".to_owned(),
                }
            } else if let Some(due) = flush_at_us {
                let due = self.ledger.epoch + Duration::from_micros(due);
                match tokio::time::timeout_at(due.into(), stream.read(room)).await {
                    Ok(read) => read,
                    Err(_) => {
                        // Nothing more came in time: the held acks go out alone.
                        if let Err(err) = self.write(stream, &mut replies).await {
                            return err;
                        }
                        flush_at_us = None;
                        continue;
                    }
                }
            } else {
                stream.read(room).await
            };
            // The latency stamp: when the bytes were read, before any ack is written.
            read_at_us = self.ledger.now_us();
            match read {
                Ok(0) => return "the hub closed the connection".to_owned(),
                Ok(count) => {
                    inbox.filled(count);
                    self.io.reads += 1;
                }
                Err(err) => return format!("read failed: {err}"),
            }
        }
    }

    /// Writes the output buffer in one write.
    async fn write<S>(&mut self, stream: &mut S, replies: &mut Replies) -> Result<(), String>
    where
        S: AsyncWrite + Unpin,
    {
        let written = stream.write_all(&replies.out).await;
        replies.out.clear();
        replies.urgent = false;
        self.io.writes += 1;
        written.map_err(|err| format!("write failed: {err}"))
    }

    /// Takes every complete frame of the inbox: ledger entries, latencies, and the frames
    /// to write back.
    fn take_frames(&mut self, inbox: &mut Inbox, read_at_us: u64, replies: &mut Replies) {
        let ledger = self.ledger;
        let mut state = lock(&ledger.subscribers[self.index]);
        let result = inbox.frames(|incoming| match incoming {
            Incoming::Message(payload) => {
                self.message(payload, read_at_us, &mut state, replies);
                true
            }
            Incoming::Ping(payload) => {
                ledger.other.pings.fetch_add(1, Ordering::Relaxed);
                self.masker
                    .write(&mut replies.out, frames::OP_PONG, payload);
                replies.urgent = true;
                true
            }
            Incoming::Close { code, echo } => {
                self.masker.write(&mut replies.out, frames::OP_CLOSE, echo);
                replies.urgent = true;
                replies.close = Some(format!("closed by the hub ({code})"));
                false
            }
        });
        if let Err(why) = result {
            replies.close = Some(why.to_owned());
        }
        state.io = self.io;
        drop(state);
        if !replies.latencies.is_empty() {
            self.count(&replies.latencies);
            replies.latencies.clear();
        }
    }

    /// Records counted deliveries' latencies and counts.
    fn count(&self, latencies: &[(u32, u64)]) {
        let ledger = self.ledger;
        ledger.latency.record(self.index, latencies);
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

    /// One complete message.
    fn message(
        &mut self,
        payload: &[u8],
        read_at_us: u64,
        state: &mut Subscriber,
        replies: &mut Replies,
    ) {
        if let Some((id, text)) = EventId::find(payload) {
            self.io.notifications += 1;
            if self.acks.enabled {
                self.masker.ack(&mut replies.out, text);
                self.io.acks += 1;
            }
            if state.delivered(&id) && id.phase > 0 {
                replies
                    .latencies
                    .push((id.phase, read_at_us.saturating_sub(id.sched_us)));
            }
            return;
        }
        let other = &self.ledger.other;
        if find(payload, b"\"hub.mode\":\"subscribe\"").is_some() {
            other.confirmations.fetch_add(1, Ordering::Relaxed);
            if let Some(pending) = self.pending.take() {
                state.socket = Socket::Bound;
                pending.bound(self.index);
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

#[cfg(test)]
#[path = "receive_tests.rs"]
mod tests;
