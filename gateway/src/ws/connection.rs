//! The life of one attached WebSocket, in the socket's one task: the session owns the
//! socket's state (granted events, lease, pending acks, how far the subscriber is caught
//! up), writes, and polls the read side ([`ReadSide`]) beside its outbox. In order:
//! confirmation; then, on a re-attach, what the subscriber missed from the topic's
//! history, or the current-context replay when the history no longer covers it; then live
//! envelopes from the outbox.
//! Writes are buffered and flushed once per drained batch (coalesced writes); a batch that
//! cannot be written within the write timeout cuts the socket as too slow. The task wakes
//! for its outbox, the client's bytes (acks are resolved as they are read), or one timer
//! (lease end, ping, the oldest ack's deadline, the stall watch) that is moved only when
//! it must fire earlier: a timer that fires early is simply set again.
//!
//! The stall watch cuts a subscriber that stopped reading while the kernel's socket buffers
//! still take our writes (so neither the write timeout nor the outbox notices): when the
//! oldest notification written since the client was last heard (any frame: an ack, a pong)
//! went out half the stall timeout ago, the socket sends one ping; when the client is still
//! silent a whole stall timeout after that write, the socket is closed as too slow (1008)
//! and detached like the hub's other closes, so the subscriber can re-attach and get what
//! it missed. A client that reads but never acknowledges answers the ping and stays. The
//! watch costs nothing per notification: the write time is the pending ack's deadline less
//! the ack timeout, and the client's last frame is already noted by the read side.
//!
//! When the socket ends, the topic learns where the subscriber was caught up to (the
//! notification before the oldest it had not acknowledged), so a re-attach sends again
//! everything after it: at-least-once across reconnects, with the original ids.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketWrite};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use fhircast_proto::bus::Bus;
use fhircast_proto::bus::{ControlAction, Delivery, Envelope, EnvelopeKind};
use fhircast_proto::channel::{Ack, AckRef, denial};
use fhircast_proto::hub::{
    Attachment, DeliveryFailure, Detach, DetachReason, Position, instant_at,
};
use fhircast_proto::sync_error::SyncFailure;
use fhircast_proto::{EndpointId, EventName, TopicId};

use super::acks::{Acks, SharedAcks};
use super::fanout::{CLOSE_RECONNECT, CLOSE_SLOW, Eviction, Registration};
use super::reader::{Heard, ReadSide, ReaderEvent, Shared};
use crate::hub_client::HubClient;
use crate::state::SocketSettings;

/// Close code of an oversized message.
const CLOSE_TOO_BIG: u16 = 1009;

/// Payload of the hub's pings (keepalive and stall probe).
const PING_PAYLOAD: &[u8] = b"fhircast";

/// Longest the close frame of a stalled socket may wait for room in the socket's buffers:
/// a subscriber that stopped reading is not waited for.
const STALLED_CLOSE_WAIT: Duration = Duration::from_secs(1);

/// What the stall watch does when it is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StallAction {
    /// Ping once: an answer shows the subscriber still reads.
    Probe,
    /// Close the socket as stalled.
    Cut,
}

/// The stall watch's next step for the oldest notification `written` since the client was
/// last heard, given when this wait's probe was sent (if it was): the probe is due half the
/// stall timeout after the write, the cut a whole stall timeout after it but never sooner
/// than half the timeout after the probe (a probe sent late, after a long write, still gets
/// its time). `None` when the timeout is zero (the watch is off) or the instants overflow.
fn stall_step(
    written: Instant,
    probe_sent: Option<Instant>,
    stall_timeout: Duration,
) -> Option<(Instant, StallAction)> {
    if stall_timeout.is_zero() {
        return None;
    }
    let half = stall_timeout / 2;
    match probe_sent {
        None => Some((written.checked_add(half)?, StallAction::Probe)),
        Some(sent) => {
            let due = written
                .checked_add(stall_timeout)?
                .max(sent.checked_add(half)?);
            Some((due, StallAction::Cut))
        }
    }
}

/// Returns when the oldest pending notification written after `last_heard` was written
/// (its deadline less the ack timeout), or `None` if the client was heard after every
/// pending one.
fn unheard_write(acks: &Acks, last_heard: Instant, ack_timeout: Duration) -> Option<Instant> {
    let deadline = acks.first_deadline_after(last_heard.checked_add(ack_timeout)?)?;
    deadline.checked_sub(ack_timeout)
}

/// A due step of the stall watch.
#[derive(Clone, Copy, Debug)]
struct Stall {
    /// When the notification being waited on was written.
    written: Instant,
    /// When the step is due.
    due: Instant,
    action: StallAction,
}

/// How a socket ended, from the hub's point of view; also the error of every write step,
/// since a failed step ends the socket.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// The client closed or lost the connection.
    Client(u16),
    /// The hub closed it.
    Hub,
}

/// On a re-attach, returns the envelopes the subscriber missed (after its resume position,
/// up to the attach snapshot) when the topic's history still holds all of them; `None`
/// means the current-context replay must do instead.
async fn missed_since(
    bus: &Arc<dyn Bus>,
    endpoint: &EndpointId,
    attachment: &Attachment,
) -> Option<Vec<Arc<Envelope>>> {
    let resume = attachment.resume?;
    if resume.epoch != attachment.epoch || resume.seq > attachment.seq {
        return None;
    }
    let topic = attachment.topic.topic_ref();
    let history = bus.backfill(topic, resume.epoch, resume.seq).await.ok()??;
    let missed: Vec<Arc<Envelope>> = history
        .into_iter()
        .filter(|envelope| envelope.seq <= attachment.seq)
        .collect();
    let complete = missed.len() as u64 == attachment.seq - resume.seq;
    debug!(
        topic = %topic,
        endpoint = %endpoint,
        missed = missed.len(),
        complete,
        "re-attach: resending what the subscriber missed"
    );
    complete.then_some(missed)
}

/// What a session needs besides its socket.
pub(crate) struct SessionContext {
    pub(crate) settings: SocketSettings,
    pub(crate) hub: Arc<dyn HubClient>,
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) tracker: TaskTracker,
}

pub(crate) struct Session<W> {
    writer: WebSocketWrite<W>,
    endpoint: EndpointId,
    topic: TopicId,
    events: Vec<EventName>,
    lease_ends: Instant,
    snapshot: (u64, u64),
    generation: u64,
    /// The seq of the last envelope this socket processed (delivered or not for it).
    high_water: u64,
    acks: SharedAcks,
    last_delivered: Option<(Arc<str>, EventName)>,
    heard: Arc<Heard>,
    next_ping: Instant,
    /// The stall probe sent: when the notification it was about was written, and when the
    /// probe went out. A probe is sent once per such notification.
    stall_probe: Option<(Instant, Instant)>,
    context: SessionContext,
}

impl<W: AsyncWrite + Unpin> Session<W> {
    /// Creates the session of a freshly attached socket, and what its read side shares with
    /// it.
    pub(crate) fn new(
        writer: WebSocketWrite<W>,
        endpoint: EndpointId,
        attachment: &Attachment,
        context: SessionContext,
    ) -> (Self, Shared) {
        let acks = SharedAcks::default();
        let heard = Heard::new();
        let shared = Shared {
            acks: acks.clone(),
            heard: Arc::clone(&heard),
        };
        let now = Instant::now();
        let session = Self {
            writer,
            endpoint,
            topic: attachment.topic.clone(),
            events: attachment.events.clone(),
            lease_ends: instant_at(attachment.lease_ends),
            snapshot: (attachment.epoch, attachment.seq),
            generation: attachment.generation,
            high_water: attachment.seq,
            acks,
            last_delivered: None,
            heard,
            next_ping: now + context.settings.ping_interval,
            stall_probe: None,
            context,
        };
        (session, shared)
    }

    /// Runs the socket until it ends, then tells the topic.
    pub(crate) async fn run(
        mut self,
        attachment: Attachment,
        mut registration: Registration,
        mut read: ReadSide,
        shutdown: CancellationToken,
    ) {
        let ending = match Box::pin(self.start(attachment)).await {
            Err(ending) => ending,
            Ok(()) => self.serve(&mut registration, &mut read, &shutdown).await,
        };
        let oldest = self.acks.lock().oldest();
        let reason = match ending {
            Ending::Client(code) => DetachReason::ClientClosed {
                code,
                last_event: oldest
                    .or(self.last_delivered.take())
                    .map(|(id, name)| (id.to_string(), name.to_string())),
            },
            Ending::Hub => DetachReason::HubClosed,
        };
        let resume = self
            .acks
            .lock()
            .caught_up_through(self.high_water)
            .map(|seq| Position {
                epoch: self.snapshot.0,
                seq,
            });
        let detach = Detach {
            generation: self.generation,
            reason,
            resume,
        };
        // The subscription may already be gone (unsubscribed, expired): nothing to do then.
        let _ = self.context.hub.detach(self.endpoint.clone(), detach).await;
    }

    async fn start(&mut self, attachment: Attachment) -> Result<(), Ending> {
        self.write_text(&attachment.confirmation).await?;
        let missed = missed_since(&self.context.bus, &self.endpoint, &attachment).await;
        match missed {
            Some(missed) => {
                for envelope in &missed {
                    self.deliver_missed(envelope).await?;
                }
            }
            None => {
                for delivery in &attachment.replay {
                    self.deliver(delivery, None).await?;
                }
            }
        }
        self.flush().await
    }

    /// Delivers an envelope from the topic's history on a re-attach: events meant for
    /// this subscriber; control envelopes are already reflected in the attachment.
    async fn deliver_missed(&mut self, envelope: &Envelope) -> Result<(), Ending> {
        match &envelope.kind {
            EnvelopeKind::Event {
                deliveries,
                exclude,
            } => self.deliver_event(deliveries, exclude, envelope.seq).await,
            EnvelopeKind::Control { .. } => Ok(()),
        }
    }

    /// Delivers the notifications of event envelope `seq` this subscriber is granted,
    /// unless the envelope excludes it.
    async fn deliver_event(
        &mut self,
        deliveries: &[Delivery],
        exclude: &[EndpointId],
        seq: u64,
    ) -> Result<(), Ending> {
        if exclude.contains(&self.endpoint) {
            return Ok(());
        }
        for delivery in deliveries {
            if delivery.is_for(&self.events) {
                self.deliver(delivery, Some(seq)).await?;
            }
        }
        Ok(())
    }

    /// Serves the socket until it ends. What each wake-up does is boxed: the state an idle
    /// socket keeps is only its waits, and a write's state exists only while it runs.
    async fn serve(
        &mut self,
        registration: &mut Registration,
        read: &mut ReadSide,
        shutdown: &CancellationToken,
    ) -> Ending {
        let eviction = Arc::clone(&registration.eviction);
        let mut no_observer = |_: &AckRef<'_>, _: bool| {};
        let timer = sleep_until(self.next_wake());
        tokio::pin!(timer);
        loop {
            self.move_timer_earlier(timer.as_mut());
            let step = tokio::select! {
                biased;
                code = eviction.evicted() => {
                    if let Some(denial) = eviction.denial() {
                        // The subscription ended (revalidation): as a denial over the bus.
                        let _ = Box::pin(self.write_text(denial)).await;
                        Box::pin(self.close(code, "subscription ended")).await;
                        return Ending::Hub;
                    }
                    let reason = match code {
                        CLOSE_SLOW => "subscriber too slow",
                        CLOSE_RECONNECT => "this gateway left the cluster, reconnect",
                        _ => "delivery order lost, resubscribe",
                    };
                    Box::pin(self.close(code, reason)).await;
                    return Ending::Hub;
                }
                () = shutdown.cancelled() => {
                    Box::pin(self.close(CLOSE_RECONNECT, "hub is restarting, resubscribe")).await;
                    return Ending::Hub;
                }
                events = read.next(&mut no_observer) => Box::pin(self.on_read(events)).await,
                envelope = registration.outbox.recv() => match envelope {
                    Some(envelope) => {
                        let outbox = &mut registration.outbox;
                        Box::pin(self.on_outbox(envelope, outbox, &eviction)).await
                    }
                    None => Err(Ending::Hub),
                },
                () = &mut timer => {
                    let step = Box::pin(self.on_timer()).await;
                    timer.as_mut().reset(self.next_wake());
                    step
                }
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.lease_ends.min(self.next_ping);
        let acks = self.acks.lock();
        if let Some(deadline) = acks.next_deadline() {
            wake = wake.min(deadline);
        }
        if let Some(stall) = self.stall(&acks) {
            wake = wake.min(stall.due);
        }
        wake
    }

    /// The stall watch's next step: about the oldest notification written since the client
    /// was last heard, if any (`None` too when the watch is off).
    fn stall(&self, acks: &Acks) -> Option<Stall> {
        let settings = &self.context.settings;
        if settings.stall_timeout.is_zero() {
            return None;
        }
        let written = unheard_write(acks, self.heard.last(), settings.ack_timeout)?;
        let probe_sent = self
            .stall_probe
            .and_then(|(probed, sent)| (probed == written).then_some(sent));
        let (due, action) = stall_step(written, probe_sent, settings.stall_timeout)?;
        Some(Stall {
            written,
            due,
            action,
        })
    }

    /// Sets the timer earlier if something is due before it fires; a timer that fires
    /// too early (its ack was answered meanwhile) is set again after [`Self::on_timer`].
    fn move_timer_earlier(&self, timer: std::pin::Pin<&mut Sleep>) {
        let wake = self.next_wake();
        if wake < timer.deadline() {
            timer.reset(wake);
        }
    }

    /// Acts on what one read brought, in order; stops at the first that ends the socket.
    async fn on_read(&mut self, events: Vec<ReaderEvent>) -> Result<(), Ending> {
        for event in events {
            self.on_reader(event).await?;
        }
        Ok(())
    }

    async fn on_reader(&mut self, event: ReaderEvent) -> Result<(), Ending> {
        match event {
            ReaderEvent::Failed(failed) => {
                let (ack, event_name) = *failed;
                self.on_failed_ack(ack, &event_name);
                Ok(())
            }
            ReaderEvent::Obligated { opcode, payload } => {
                let frame = Frame::new(true, opcode, None, Payload::Owned(payload.into()));
                let _ = self.write_frame(frame).await;
                let _ = self.flush().await;
                Ok(())
            }
            ReaderEvent::Closed(code) => Err(Ending::Client(code)),
            ReaderEvent::TooLarge => {
                self.close(CLOSE_TOO_BIG, "message too large").await;
                Err(Ending::Hub)
            }
            ReaderEvent::Violation(code) => {
                self.close(code, "WebSocket protocol violation").await;
                Err(Ending::Client(code))
            }
            ReaderEvent::Lost => Err(Ending::Client(1006)),
        }
    }

    /// Reports an acknowledgement the read side resolved with a status other than 2xx.
    fn on_failed_ack(&self, ack: Ack, event_name: &EventName) {
        // 2-5: 2xx is success; 409 and other 4xx mean the subscriber refused, 5xx that it
        // failed, anything else (1xx, 3xx) is a failure too.
        let Some(failure) = SyncFailure::from_status(ack.status) else {
            return;
        };
        self.report(DeliveryFailure {
            event_id: ack.id,
            event_name: event_name.to_string(),
            failure,
            consecutive_timeouts: 0,
        });
    }

    /// Writes a batch: the first envelope and whatever else is queued, flushed once
    /// (coalesced writes). A batch stuck behind a full TCP window ends the socket as soon as
    /// the fan-out evicts it (or a write times out); no close frame can get through then, so
    /// the connection is just dropped.
    async fn on_outbox(
        &mut self,
        first: Arc<Envelope>,
        outbox: &mut mpsc::Receiver<Arc<Envelope>>,
        eviction: &Eviction,
    ) -> Result<(), Ending> {
        let batch = async {
            self.on_envelope(&first).await?;
            while let Ok(next) = outbox.try_recv() {
                self.on_envelope(&next).await?;
            }
            self.flush().await
        };
        tokio::select! {
            biased;
            written = batch => written,
            _ = eviction.evicted() => Err(Ending::Hub),
        }
    }

    async fn on_envelope(&mut self, envelope: &Envelope) -> Result<(), Ending> {
        let (epoch, snapshot_seq) = self.snapshot;
        if envelope.epoch == epoch && envelope.seq <= snapshot_seq {
            return Ok(());
        }
        self.high_water = self.high_water.max(envelope.seq);
        match &envelope.kind {
            EnvelopeKind::Event {
                deliveries,
                exclude,
            } => self.deliver_event(deliveries, exclude, envelope.seq).await,
            EnvelopeKind::Control { action, .. } => match action {
                ControlAction::Confirm {
                    events,
                    lease_ends_unix_ms,
                    frame,
                } => {
                    self.events.clone_from(events);
                    self.lease_ends = instant_at(*lease_ends_unix_ms);
                    self.write_text(frame).await
                }
                ControlAction::Deny { frame } => {
                    let _ = self.write_text(frame).await;
                    self.close(1000, "subscription ended").await;
                    Err(Ending::Hub)
                }
                ControlAction::Deliver(delivery) => {
                    self.deliver(delivery, Some(envelope.seq)).await
                }
            },
        }
    }

    async fn on_timer(&mut self) -> Result<(), Ending> {
        let now = Instant::now();
        if now >= self.lease_ends {
            // 2-4: at lease end the hub unsubscribes and closes; a denial first (MAY).
            let frame = denial(self.topic.expose(), &self.events, "the lease expired");
            let _ = self.write_text(&frame).await;
            self.close(1000, "lease expired").await;
            return Err(Ending::Hub);
        }
        let expired = self.acks.lock().take_expired(now);
        for (pending, consecutive) in expired {
            self.report(DeliveryFailure {
                event_id: pending.event_id.to_string(),
                event_name: pending.event_name.to_string(),
                failure: SyncFailure::Timeout,
                consecutive_timeouts: consecutive,
            });
        }
        let stall = self.stall(&self.acks.lock());
        if let Some(stall) = stall.filter(|stall| now >= stall.due) {
            match stall.action {
                StallAction::Probe => {
                    self.stall_probe = Some((stall.written, now));
                    let ping =
                        Frame::new(true, OpCode::Ping, None, Payload::Borrowed(PING_PAYLOAD));
                    self.write_frame(ping).await?;
                    self.flush().await?;
                }
                StallAction::Cut => {
                    info!(
                        topic = %self.topic.topic_ref(),
                        endpoint = %self.endpoint,
                        "closing a socket whose subscriber stopped reading (1008)"
                    );
                    self.close_within(CLOSE_SLOW, "subscriber stalled", STALLED_CLOSE_WAIT)
                        .await;
                    return Err(Ending::Hub);
                }
            }
        }
        if now >= self.next_ping {
            let last_heard = self.heard.last();
            if now.saturating_duration_since(last_heard) >= self.context.settings.ping_interval * 2
            {
                // Silent for two intervals: the connection is as good as lost.
                self.close(1011, "no answer to pings").await;
                return Err(Ending::Client(1006));
            }
            self.next_ping = now + self.context.settings.ping_interval;
            let ping = Frame::new(true, OpCode::Ping, None, Payload::Borrowed(PING_PAYLOAD));
            self.write_frame(ping).await?;
            self.flush().await?;
        }
        Ok(())
    }

    /// Reports a failure to the topic without holding up the socket.
    fn report(&self, report: DeliveryFailure) {
        let hub = Arc::clone(&self.context.hub);
        let endpoint = self.endpoint.clone();
        self.context.tracker.spawn(async move {
            let _ = hub.report_failure(endpoint, report).await;
        });
    }

    /// Writes a notification and starts waiting for its ack; `seq` is the envelope that
    /// carried it (`None` for the current-context replay).
    async fn deliver(&mut self, delivery: &Delivery, seq: Option<u64>) -> Result<(), Ending> {
        // Pending before it is written: a quick ack must find it.
        // A SyncError is not itself acknowledged into another SyncError.
        if !delivery.name.is_sync_error() {
            let deadline = Instant::now() + self.context.settings.ack_timeout;
            self.acks
                .lock()
                .expect(&delivery.event_id, &delivery.name, deadline, seq);
        }
        self.write_text(&delivery.frame).await?;
        self.last_delivered = Some((Arc::clone(&delivery.event_id), delivery.name.clone()));
        Ok(())
    }

    async fn write_text(&mut self, frame: &Bytes) -> Result<(), Ending> {
        self.write_frame(Frame::text(Payload::Borrowed(frame)))
            .await
    }

    /// Writes one frame; a write the client does not take within the write timeout ends
    /// the socket as too slow.
    async fn write_frame(&mut self, frame: Frame<'_>) -> Result<(), Ending> {
        match timeout(
            self.context.settings.write_timeout,
            self.writer.write_frame(frame),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ending::Client(1006)),
            Err(_) => Err(Ending::Hub),
        }
    }

    /// Flushes buffered frames, bounded like [`Self::write_frame`].
    async fn flush(&mut self) -> Result<(), Ending> {
        match timeout(self.context.settings.write_timeout, self.writer.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ending::Client(1006)),
            Err(_) => Err(Ending::Hub),
        }
    }

    /// Sends a close frame (best effort; each write is bounded by the write timeout).
    async fn close(&mut self, code: u16, reason: &str) {
        let sent = self
            .write_frame(Frame::close(code, reason.as_bytes()))
            .await;
        if sent.is_ok() {
            let _ = self.flush().await;
        }
    }

    /// Sends a close frame if the socket's buffers take it within `wait` (best effort).
    async fn close_within(&mut self, code: u16, reason: &str, wait: Duration) {
        let writer = &mut self.writer;
        let _ = timeout(wait, async {
            writer
                .write_frame(Frame::close(code, reason.as_bytes()))
                .await?;
            writer.flush().await
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhircast_proto::EventName;

    const STALL: Duration = Duration::from_millis(8_000);
    const ACK_TIMEOUT: Duration = Duration::from_millis(10_000);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_probe_is_due_halfway_and_the_cut_at_the_end() {
        let written = Instant::now();
        assert_eq!(
            stall_step(written, None, STALL),
            Some((written + ms(4_000), StallAction::Probe))
        );
        let probed = written + ms(4_000);
        assert_eq!(
            stall_step(written, Some(probed), STALL),
            Some((written + STALL, StallAction::Cut))
        );
    }

    #[test]
    fn a_late_probe_still_gets_half_the_timeout() {
        let written = Instant::now();
        let late = written + ms(7_500);
        assert_eq!(
            stall_step(written, Some(late), STALL),
            Some((late + ms(4_000), StallAction::Cut))
        );
    }

    #[test]
    fn a_zero_timeout_watches_nothing() {
        assert_eq!(stall_step(Instant::now(), None, Duration::ZERO), None);
    }

    #[test]
    fn only_notifications_written_after_the_client_was_last_heard_count() {
        let start = Instant::now();
        let open = EventName::parse("Patient-open").expect("a standard event");
        let mut acks = Acks::default();
        // Nothing pending: nothing to wait on, however long the silence.
        assert_eq!(unheard_write(&acks, start, ACK_TIMEOUT), None);
        for (n, id) in [(0, "a"), (1_000, "b"), (2_000, "c")] {
            let written = start + ms(n);
            acks.expect(&Arc::from(id), &open, written + ACK_TIMEOUT, Some(n));
        }
        // Heard before any of them: the oldest is the one waited on.
        let before = start.checked_sub(ms(1)).unwrap_or(start);
        assert_eq!(unheard_write(&acks, before, ACK_TIMEOUT), Some(start));
        // A client that answered a ping after "a" and "b" (but acknowledged neither) is
        // waited on from "c": what it never acknowledges does not count against it.
        assert_eq!(
            unheard_write(&acks, start + ms(1_500), ACK_TIMEOUT),
            Some(start + ms(2_000))
        );
        // Heard after all of them (or at the same millisecond as the last).
        assert_eq!(unheard_write(&acks, start + ms(2_000), ACK_TIMEOUT), None);
    }
}
