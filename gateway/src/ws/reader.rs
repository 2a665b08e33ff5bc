//! The read side of a socket, in its own task (fastwebsockets' `read_frame` is not
//! cancel-safe, so it never sits in a `select!` beside the outbox). It notes when the
//! client was last heard and resolves its acknowledgements itself (both shared with the
//! writer, so the usual frame costs the writer nothing); it tells the writer only what
//! needs it ([`ReaderEvent`]): a failed acknowledgement, control frames the protocol obliges
//! us to send (pong, close echo), the client's close, or the connection's loss.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Role, WebSocketError, WebSocketRead, after_handshake_split};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use fhircast_proto::EventName;
use fhircast_proto::channel::{Ack, AckRef, parse_ack_ref};

use super::acks::SharedAcks;

/// When the client was last heard from, shared by the socket's reader and writer.
#[derive(Debug)]
pub(crate) struct Heard {
    since: Instant,
    /// Milliseconds after `since`.
    last_ms: AtomicU64,
}

impl Heard {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            since: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(elapsed, Ordering::Relaxed);
    }

    /// Returns when the client was last heard (the socket's start if never).
    pub(crate) fn last(&self) -> Instant {
        self.since + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// What the reader tells the writer.
#[derive(Debug)]
pub(crate) enum ReaderEvent {
    /// An acknowledgement of a pending notification with a status other than 2xx.
    Failed { ack: Ack, event_name: EventName },
    /// A frame the protocol obliges us to send back (pong, close echo).
    Obligated { opcode: OpCode, payload: Vec<u8> },
    /// The client closed with this code (1005 when it gave none).
    Closed(u16),
    /// The client sent a message over the size limit.
    TooLarge,
    /// The connection broke without a close frame.
    Lost,
}

/// What a socket's reader shares with its writer.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) acks: SharedAcks,
    pub(crate) heard: Arc<Heard>,
}

/// Resolves an acknowledgement against the pending ones; returns the event for the
/// writer if it reports a failure. `observe` sees every acknowledgement and whether it
/// resolved a pending one (for the fuzz harness; a no-op in the gateway).
fn on_ack(
    acks: &SharedAcks,
    ack: AckRef<'_>,
    observe: &mut impl FnMut(&AckRef<'_>, bool),
) -> Option<ReaderEvent> {
    let resolved = acks.lock().resolve(&ack.id);
    observe(&ack, resolved.is_some());
    let event_name = resolved?;
    if ack.status_implied {
        debug!("leniency: an ack without status counted as 200");
    }
    (!ack.is_success()).then(|| ReaderEvent::Failed {
        ack: ack.into_owned(),
        event_name,
    })
}

/// Reads frames until the connection ends or `stop` is cancelled.
pub(crate) async fn run<S>(
    mut reader: WebSocketRead<S>,
    events: mpsc::Sender<ReaderEvent>,
    shared: Shared,
    max_message_bytes: usize,
    stop: CancellationToken,
    mut observe: impl FnMut(&AckRef<'_>, bool),
) where
    S: AsyncRead + Unpin,
{
    let mut message: Vec<u8> = Vec::new();
    let mut in_text_message = false;
    let obligated = events.clone();
    let mut send_fn = move |frame: Frame<'_>| {
        let event = ReaderEvent::Obligated {
            opcode: frame.opcode,
            payload: frame.payload.to_vec(),
        };
        let obligated = obligated.clone();
        async move {
            obligated
                .send(event)
                .await
                .map_err(|_| std::io::Error::other("socket writer ended"))
        }
    };
    loop {
        // Cancelling the read is safe here: after `stop` nothing reads this socket again.
        let frame = tokio::select! {
            () = stop.cancelled() => return,
            frame = reader.read_frame(&mut send_fn) => frame,
        };
        let event = match frame {
            Err(WebSocketError::FrameTooLarge) => ReaderEvent::TooLarge,
            Err(_) => ReaderEvent::Lost,
            Ok(frame) => {
                shared.heard.touch();
                match frame.opcode {
                    OpCode::Close => ReaderEvent::Closed(close_code(&frame.payload)),
                    OpCode::Text | OpCode::Continuation | OpCode::Binary => {
                        let starts_text = frame.opcode == OpCode::Text;
                        if frame.opcode != OpCode::Continuation {
                            message.clear();
                            in_text_message = starts_text;
                        }
                        if message.len() + frame.payload.len() > max_message_bytes {
                            ReaderEvent::TooLarge
                        } else {
                            message.extend_from_slice(&frame.payload);
                            if !frame.fin || !in_text_message {
                                continue;
                            }
                            // Only acknowledgements are expected; other messages are
                            // ignored (2-5 defines no other subscriber-to-hub frames).
                            let Some(ack) = parse_ack_ref(&message) else {
                                continue;
                            };
                            match on_ack(&shared.acks, ack, &mut observe) {
                                Some(failed) => failed,
                                None => continue,
                            }
                        }
                    }
                    OpCode::Ping | OpCode::Pong => continue,
                }
            }
        };
        let last = matches!(
            event,
            ReaderEvent::Closed(_) | ReaderEvent::TooLarge | ReaderEvent::Lost
        );
        if events.send(event).await.is_err() || last {
            return;
        }
    }
}

/// What [`read_inbound`] saw.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct InboundTrace {
    /// Every event the reader reported, in order, as its `Debug` text.
    pub events: Vec<String>,
    /// Every acknowledgement read, resolving or not.
    pub acks: Vec<Ack>,
    /// The pending event ids those acknowledgements resolved, in order.
    pub resolved: Vec<String>,
}

/// Runs `bytes`, what a subscriber sent after the handshake, through a socket's real read
/// side (fastwebsockets with the message cap, then [`run`], resolving acknowledgements
/// against `pending` event ids as the socket's reader does). No network and no hub: for
/// the `ws_inbound` fuzz target.
#[doc(hidden)]
pub async fn read_inbound(
    bytes: &[u8],
    max_message_bytes: usize,
    pending: &[&str],
) -> InboundTrace {
    let (mut reader, _writer) = after_handshake_split(bytes, tokio::io::sink(), Role::Server);
    reader.set_max_message_size(max_message_bytes);
    let acks = SharedAcks::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let open = EventName::parse("Patient-open").ok();
    for event_id in pending {
        if let Some(open) = &open {
            acks.lock()
                .expect(&Arc::from(*event_id), open, deadline, None);
        }
    }
    let (events_tx, mut events_rx) = mpsc::channel(64);
    let mut events = Vec::new();
    let mut read = Vec::new();
    let mut resolved = Vec::new();
    let observe = |ack: &AckRef<'_>, hit: bool| {
        if hit {
            resolved.push(ack.id.to_string());
        }
        read.push(ack.clone().into_owned());
    };
    let consume = async {
        while let Some(event) = events_rx.recv().await {
            events.push(format!("{event:?}"));
        }
    };
    let shared = Shared {
        acks,
        heard: Heard::new(),
    };
    let stop = CancellationToken::new();
    tokio::join!(
        run(reader, events_tx, shared, max_message_bytes, stop, observe),
        consume
    );
    InboundTrace {
        events,
        acks: read,
        resolved,
    }
}

fn close_code(payload: &[u8]) -> u16 {
    match payload {
        [high, low, ..] => u16::from_be_bytes([*high, *low]),
        _ => 1005,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inbound_acks_resolve_pending_events_once() {
        let ack = br#"{"id":"e1","status":200}"#;
        let mut bytes = vec![0x81, u8::try_from(ack.len()).expect("short")];
        bytes.extend_from_slice(ack);
        bytes.extend_from_slice(&bytes.clone());
        bytes.extend_from_slice(&[0x88, 0x02, 0x03, 0xe8]);
        let trace = read_inbound(&bytes, 1024, &["e1", "e2"]).await;
        assert_eq!(trace.acks.len(), 2);
        assert_eq!(trace.resolved, ["e1"]);
        assert_eq!(
            trace.events.last().map(String::as_str),
            Some("Closed(1000)")
        );
    }
}
