//! The life of one attached WebSocket: the writer side, which owns the socket's state
//! (granted events, lease, pending acks) and runs in the socket's task, beside the reader
//! task. In order: confirmation, replay, then live batches from the outbox. Writes are
//! buffered and flushed once per drained batch (coalesced writes); a batch that cannot be
//! written within the write timeout cuts the socket as too slow.

use std::sync::Arc;

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload, WebSocketWrite};
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use fhircast_proto::bus::{ControlAction, Delivery, Envelope, EnvelopeKind};
use fhircast_proto::channel::{Ack, denial};
use fhircast_proto::sync_error::SyncFailure;
use fhircast_proto::{EndpointId, EventName, TopicId};
use hub_node::topic::{Attachment, DeliveryFailure, DetachReason, instant_at};

use super::acks::Acks;
use super::fanout::{CLOSE_SLOW, Eviction, Registration};
use super::reader::ReaderEvent;
use crate::hub_client::HubClient;
use crate::state::SocketSettings;

/// Close code of a drain: clients resubscribe elsewhere.
const CLOSE_DRAINING: u16 = 1012;
/// Close code of an oversized message.
const CLOSE_TOO_BIG: u16 = 1009;

/// How a socket ended, from the hub's point of view; also the error of every write step,
/// since a failed step ends the socket.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// The client closed or lost the connection.
    Client(u16),
    /// The hub closed it.
    Hub,
}

pub(crate) struct Session<W> {
    pub(crate) writer: WebSocketWrite<W>,
    pub(crate) endpoint: EndpointId,
    pub(crate) topic: TopicId,
    pub(crate) events: Vec<EventName>,
    pub(crate) lease_ends: Instant,
    pub(crate) snapshot: (u64, u64),
    pub(crate) acks: Acks,
    pub(crate) last_delivered: Option<(String, String)>,
    pub(crate) last_heard: Instant,
    pub(crate) next_ping: Instant,
    pub(crate) settings: SocketSettings,
    pub(crate) hub: Arc<dyn HubClient>,
    pub(crate) tracker: TaskTracker,
}

impl<W: AsyncWrite + Unpin> Session<W> {
    /// Creates the session of a freshly attached socket.
    pub(crate) fn new(
        writer: WebSocketWrite<W>,
        endpoint: EndpointId,
        attachment: &Attachment,
        settings: SocketSettings,
        hub: Arc<dyn HubClient>,
        tracker: TaskTracker,
    ) -> Self {
        let now = Instant::now();
        Self {
            writer,
            endpoint,
            topic: attachment.topic.clone(),
            events: attachment.events.clone(),
            lease_ends: instant_at(attachment.lease_ends),
            snapshot: (attachment.epoch, attachment.seq),
            acks: Acks::default(),
            last_delivered: None,
            last_heard: now,
            next_ping: now + settings.ping_interval,
            settings,
            hub,
            tracker,
        }
    }

    /// Runs the socket until it ends, then tells the topic.
    pub(crate) async fn run(
        mut self,
        attachment: Attachment,
        mut registration: Registration,
        mut reader: mpsc::Receiver<ReaderEvent>,
        shutdown: CancellationToken,
    ) {
        let ending = match self.start(attachment).await {
            Err(ending) => ending,
            Ok(()) => self.serve(&mut registration, &mut reader, &shutdown).await,
        };
        let reason = match ending {
            Ending::Client(code) => DetachReason::ClientClosed {
                code,
                last_event: self.acks.oldest().or(self.last_delivered.take()),
            },
            Ending::Hub => DetachReason::HubClosed,
        };
        // The subscription may already be gone (unsubscribed, expired): nothing to do then.
        let _ = self.hub.detach(self.endpoint.clone(), reason).await;
    }

    async fn start(&mut self, attachment: Attachment) -> Result<(), Ending> {
        self.write_text(&attachment.confirmation).await?;
        for delivery in &attachment.replay {
            self.deliver(delivery).await?;
        }
        self.flush().await
    }

    async fn serve(
        &mut self,
        registration: &mut Registration,
        reader: &mut mpsc::Receiver<ReaderEvent>,
        shutdown: &CancellationToken,
    ) -> Ending {
        let eviction = Arc::clone(&registration.eviction);
        loop {
            let wake = self.next_wake();
            let step = tokio::select! {
                biased;
                code = eviction.evicted() => {
                    let reason = if code == CLOSE_SLOW { "subscriber too slow" } else { "delivery order lost, resubscribe" };
                    self.close(code, reason).await;
                    return Ending::Hub;
                }
                () = shutdown.cancelled() => {
                    self.close(CLOSE_DRAINING, "hub is restarting, resubscribe").await;
                    return Ending::Hub;
                }
                event = reader.recv() => self.on_reader(event).await,
                envelope = registration.outbox.recv() => match envelope {
                    Some(envelope) => {
                        self.on_outbox(envelope, &mut registration.outbox, &eviction).await
                    }
                    None => Err(Ending::Hub),
                },
                () = sleep_until(wake) => self.on_timer().await,
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.lease_ends.min(self.next_ping);
        if let Some(deadline) = self.acks.next_deadline() {
            wake = wake.min(deadline);
        }
        wake
    }

    async fn on_reader(&mut self, event: Option<ReaderEvent>) -> Result<(), Ending> {
        match event {
            Some(ReaderEvent::Heard) => {
                self.last_heard = Instant::now();
                Ok(())
            }
            Some(ReaderEvent::Ack(ack)) => {
                self.on_ack(ack);
                Ok(())
            }
            Some(ReaderEvent::Obligated { opcode, payload }) => {
                let frame = Frame::new(true, opcode, None, Payload::Owned(payload));
                let _ = self.write_frame(frame).await;
                let _ = self.flush().await;
                Ok(())
            }
            Some(ReaderEvent::Closed(code)) => Err(Ending::Client(code)),
            Some(ReaderEvent::TooLarge) => {
                self.close(CLOSE_TOO_BIG, "message too large").await;
                Err(Ending::Hub)
            }
            Some(ReaderEvent::Lost) | None => Err(Ending::Client(1006)),
        }
    }

    fn on_ack(&mut self, ack: Ack) {
        let Some(event_name) = self.acks.resolve(&ack.id) else {
            return;
        };
        // 2-5: 409 and other 4xx mean the subscriber refused; 5xx that it failed.
        let failure = match ack.status {
            400..=499 => SyncFailure::Refused(ack.status),
            500..=599 => SyncFailure::NotDelivered(ack.status),
            _ => return,
        };
        self.report(DeliveryFailure {
            event_id: ack.id,
            event_name,
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
        match &envelope.kind {
            EnvelopeKind::Event {
                seq,
                deliveries,
                exclude,
            } => {
                let (epoch, snapshot_seq) = self.snapshot;
                if envelope.epoch == epoch && *seq <= snapshot_seq {
                    return Ok(());
                }
                if exclude.as_ref() == Some(&self.endpoint) {
                    return Ok(());
                }
                for delivery in deliveries {
                    if delivery.is_for(&self.events) {
                        self.deliver(delivery).await?;
                    }
                }
                Ok(())
            }
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
                ControlAction::Deliver(delivery) => self.deliver(delivery).await,
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
        for (pending, consecutive) in self.acks.take_expired(now) {
            self.report(DeliveryFailure {
                event_id: pending.event_id,
                event_name: pending.event_name,
                failure: SyncFailure::Timeout,
                consecutive_timeouts: consecutive,
            });
        }
        if now >= self.next_ping {
            if now.duration_since(self.last_heard) >= self.settings.ping_interval * 2 {
                // Silent for two intervals: the connection is as good as lost.
                self.close(1011, "no answer to pings").await;
                return Err(Ending::Client(1006));
            }
            self.next_ping = now + self.settings.ping_interval;
            let ping = Frame::new(true, OpCode::Ping, None, Payload::Borrowed(b"fhircast"));
            self.write_frame(ping).await?;
            self.flush().await?;
        }
        Ok(())
    }

    /// Reports a failure to the topic without holding up the socket.
    fn report(&self, report: DeliveryFailure) {
        let hub = Arc::clone(&self.hub);
        let endpoint = self.endpoint.clone();
        self.tracker.spawn(async move {
            let _ = hub.report_failure(endpoint, report).await;
        });
    }

    async fn deliver(&mut self, delivery: &Delivery) -> Result<(), Ending> {
        self.write_text(&delivery.frame).await?;
        self.last_delivered = Some((delivery.event_id.clone(), delivery.name.to_string()));
        // A SyncError is not itself acknowledged into another SyncError.
        if !delivery.name.is_sync_error() {
            let deadline = Instant::now() + self.settings.ack_timeout;
            self.acks
                .expect(&delivery.event_id, delivery.name.as_str(), deadline);
        }
        Ok(())
    }

    async fn write_text(&mut self, frame: &Bytes) -> Result<(), Ending> {
        self.write_frame(Frame::text(Payload::Borrowed(frame)))
            .await
    }

    /// Writes one frame; a write the client does not take within the write timeout ends
    /// the socket as too slow.
    async fn write_frame(&mut self, frame: Frame<'_>) -> Result<(), Ending> {
        match timeout(self.settings.write_timeout, self.writer.write_frame(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ending::Client(1006)),
            Err(_) => Err(Ending::Hub),
        }
    }

    /// Flushes buffered frames, bounded like [`Self::write_frame`].
    async fn flush(&mut self) -> Result<(), Ending> {
        match timeout(self.settings.write_timeout, self.writer.flush()).await {
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
}
