//! The read side of a socket, polled by its session ([`super::connection`]) in the same
//! task: one task per socket. It waits for bytes without holding a buffer
//! ([`SocketRead::read_with`]; cancel-safe, so it sits in the session's `select!`),
//! decodes frames ([`Decoder`]), notes when the client was last heard and resolves its
//! acknowledgements on the spot; it hands the session only what needs it
//! ([`ReaderEvent`]): a failed acknowledgement, control frames the protocol obliges us to
//! send (pong, close echo), the client's close, a violation, or the connection's loss.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fastwebsockets::OpCode;
use tokio::time::Instant;
use tracing::debug;

use fhircast_proto::EventName;
use fhircast_proto::channel::{Ack, AckRef, parse_ack_ref};

use super::acks::SharedAcks;
use super::halves::SocketRead;
use super::inbound::{Decoder, Inbound, Stop};

/// When the client was last heard from: noted by the read side, read by the session.
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

/// What the read side hands the session (three words: a failure's details are boxed, as
/// most reads hand over nothing or a pong).
#[derive(Debug)]
pub(crate) enum ReaderEvent {
    /// An acknowledgement of a pending notification with a status other than 2xx.
    Failed(Box<(Ack, EventName)>),
    /// A frame the protocol obliges us to send back (pong, close echo).
    Obligated { opcode: OpCode, payload: Box<[u8]> },
    /// The client closed with this code (1005 when it gave none).
    Closed(u16),
    /// The client sent a message over the size limit.
    TooLarge,
    /// The client broke the protocol; the socket is closed with this code (1002, 1007).
    Violation(u16),
    /// The connection broke without a close frame.
    Lost,
}

/// What a socket's read side shares with its session.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) acks: SharedAcks,
    pub(crate) heard: Arc<Heard>,
}

/// Resolves an acknowledgement against the pending ones; returns the event for the
/// session if it reports a failure. `observe` sees every acknowledgement and whether it
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
    (!ack.is_success()).then(|| ReaderEvent::Failed(Box::new((ack.into_owned(), event_name))))
}

impl ReaderEvent {
    /// Whether the socket ends with this event (nothing is read after it).
    pub(crate) fn is_last(&self) -> bool {
        matches!(
            self,
            Self::Closed(_) | Self::TooLarge | Self::Violation(_) | Self::Lost
        )
    }
}

/// Decodes one read's bytes: resolves acknowledgements, and collects in `out` what the
/// session must act on.
fn on_bytes(
    decoder: &mut Decoder,
    bytes: &mut [u8],
    acks: &SharedAcks,
    out: &mut Vec<ReaderEvent>,
    observe: &mut impl FnMut(&AckRef<'_>, bool),
) {
    let mut on = |inbound: Inbound<'_>| match inbound {
        // Only acknowledgements are expected; other messages are ignored (2-5 defines no
        // other subscriber-to-hub frames).
        Inbound::Text(message) => {
            if let Some(ack) = parse_ack_ref(message)
                && let Some(failed) = on_ack(acks, ack, observe)
            {
                out.push(failed);
            }
        }
        Inbound::Ping(payload) => out.push(ReaderEvent::Obligated {
            opcode: OpCode::Pong,
            payload: payload.into(),
        }),
        Inbound::Close { code, payload } => {
            out.push(ReaderEvent::Obligated {
                opcode: OpCode::Close,
                payload: payload.into(),
            });
            out.push(ReaderEvent::Closed(code));
        }
        Inbound::Pong | Inbound::Binary => {}
    };
    match decoder.feed(bytes, &mut on) {
        None | Some(Stop::Closed) => {}
        Some(Stop::TooLarge) => out.push(ReaderEvent::TooLarge),
        Some(Stop::Violation(code)) => out.push(ReaderEvent::Violation(code)),
    }
}

/// The read side of one socket.
pub(crate) struct ReadSide {
    socket: SocketRead,
    decoder: Decoder,
    shared: Shared,
}

impl ReadSide {
    pub(crate) fn new(socket: SocketRead, shared: Shared, max_message_bytes: usize) -> Self {
        Self {
            socket,
            decoder: Decoder::new(max_message_bytes),
            shared,
        }
    }

    /// Waits for the client's next bytes and decodes them; returns, in order, what the
    /// session must act on (usually nothing: acknowledgements are resolved here, and an
    /// empty list allocates nothing). The last event of a socket is one that
    /// [`ReaderEvent::is_last`]. Cancel-safe: no bytes are taken until they are handled.
    pub(crate) async fn next(
        &mut self,
        observe: &mut impl FnMut(&AckRef<'_>, bool),
    ) -> Vec<ReaderEvent> {
        let mut out = Vec::new();
        let Self {
            socket,
            decoder,
            shared,
        } = self;
        let read = socket
            .read_with(|bytes| {
                shared.heard.touch();
                on_bytes(decoder, bytes, &shared.acks, &mut out, observe);
            })
            .await;
        if !matches!(read, Ok(read) if read > 0) {
            out.push(ReaderEvent::Lost);
        }
        out
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
/// side ([`ReadSide`] with the message cap, resolving acknowledgements against `pending`
/// event ids as a socket does, in reads of a few KiB). No network and no hub: for the
/// `ws_inbound` fuzz target.
#[doc(hidden)]
pub async fn read_inbound(
    bytes: &[u8],
    max_message_bytes: usize,
    pending: &[&str],
) -> InboundTrace {
    let acks = SharedAcks::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let open = EventName::parse("Patient-open").ok();
    for event_id in pending {
        if let Some(open) = &open {
            acks.lock()
                .expect(&Arc::from(*event_id), open, deadline, None);
        }
    }
    let mut events = Vec::new();
    let mut read = Vec::new();
    let mut resolved = Vec::new();
    let mut observe = |ack: &AckRef<'_>, hit: bool| {
        if hit {
            resolved.push(ack.id.to_string());
        }
        read.push(ack.clone().into_owned());
    };
    let shared = Shared {
        acks,
        heard: Heard::new(),
    };
    let mut side = ReadSide::new(SocketRead::over(bytes.to_vec()), shared, max_message_bytes);
    'reading: loop {
        for event in side.next(&mut observe).await {
            let last = event.is_last();
            events.push(format!("{event:?}"));
            if last {
                break 'reading;
            }
        }
    }
    InboundTrace {
        events,
        acks: read,
        resolved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_read_holds_no_read_buffer() {
        // The scratch buffer of a read lives only while its bytes are handled: the wait
        // for the next bytes (what every idle socket keeps) is far smaller than one.
        let shared = Shared {
            acks: SharedAcks::default(),
            heard: Heard::new(),
        };
        let mut side = ReadSide::new(SocketRead::over(Vec::new()), shared, 1024);
        let mut observe = |_: &AckRef<'_>, _: bool| {};
        let waiting = side.next(&mut observe);
        let size = std::mem::size_of_val(&waiting);
        assert!(size < 512, "a read's wait is {size} bytes");
    }

    #[test]
    fn reader_events_are_three_words() {
        assert!(std::mem::size_of::<ReaderEvent>() <= 24);
    }

    #[tokio::test]
    async fn inbound_acks_resolve_pending_events_once() {
        // Masked with the zero key: the payload reads as it is.
        let ack = br#"{"id":"e1","status":200}"#;
        let mut bytes = vec![
            0x81,
            0x80 | u8::try_from(ack.len()).expect("short"),
            0,
            0,
            0,
            0,
        ];
        bytes.extend_from_slice(ack);
        bytes.extend_from_slice(&bytes.clone());
        bytes.extend_from_slice(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);
        let trace = read_inbound(&bytes, 1024, &["e1", "e2"]).await;
        assert_eq!(trace.acks.len(), 2);
        assert_eq!(trace.resolved, ["e1"]);
        assert_eq!(
            trace.events.last().map(String::as_str),
            Some("Closed(1000)")
        );
    }
}
