//! The read side of a socket, in its own task (fastwebsockets' `read_frame` is not
//! cancel-safe, so it never sits in a `select!` beside the outbox). It turns frames into
//! [`ReaderEvent`]s for the socket's writer: acknowledgements, control frames the protocol
//! obliges us to send (pong, close echo), the client's close, or the connection's loss.

use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Role, WebSocketError, WebSocketRead, after_handshake_split};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use fhircast_proto::channel::{Ack, parse_ack};

use super::acks::Acks;

/// What the reader tells the writer.
#[derive(Debug)]
pub(crate) enum ReaderEvent {
    /// The client sent something: it is alive.
    Heard,
    /// An acknowledgement.
    Ack(Ack),
    /// A frame the protocol obliges us to send back (pong, close echo).
    Obligated { opcode: OpCode, payload: Vec<u8> },
    /// The client closed with this code (1005 when it gave none).
    Closed(u16),
    /// The client sent a message over the size limit.
    TooLarge,
    /// The connection broke without a close frame.
    Lost,
}

/// Reads frames until the connection ends or `stop` is cancelled.
pub(crate) async fn run<S>(
    mut reader: WebSocketRead<S>,
    events: mpsc::Sender<ReaderEvent>,
    max_message_bytes: usize,
    stop: CancellationToken,
) where
    S: AsyncRead + Unpin,
{
    let mut message: Vec<u8> = Vec::new();
    let mut in_text_message = false;
    loop {
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
        // Cancelling the read is safe here: after `stop` nothing reads this socket again.
        let frame = tokio::select! {
            () = stop.cancelled() => return,
            frame = reader.read_frame(&mut send_fn) => frame,
        };
        let event = match frame {
            Err(WebSocketError::FrameTooLarge) => ReaderEvent::TooLarge,
            Err(_) => ReaderEvent::Lost,
            Ok(frame) => {
                if events.send(ReaderEvent::Heard).await.is_err() {
                    return;
                }
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
                            match parse_ack(&message) {
                                Some(ack) => ReaderEvent::Ack(ack),
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
    /// The acknowledgements among them.
    pub acks: Vec<Ack>,
    /// The pending event ids those acknowledgements resolved, in order.
    pub resolved: Vec<String>,
}

/// Runs `bytes`, what a subscriber sent after the handshake, through a socket's real read
/// side (fastwebsockets with the message cap, then [`run`]) and resolves each
/// acknowledgement against `pending` event ids as the socket's session does. No network and
/// no hub: for the `ws_inbound` fuzz target.
#[doc(hidden)]
pub async fn read_inbound(
    bytes: &[u8],
    max_message_bytes: usize,
    pending: &[&str],
) -> InboundTrace {
    let (mut reader, _writer) = after_handshake_split(bytes, tokio::io::sink(), Role::Server);
    reader.set_max_message_size(max_message_bytes);
    let mut acks = Acks::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    for event_id in pending {
        acks.expect(event_id, "Patient-open", deadline, None);
    }
    let (events_tx, mut events_rx) = mpsc::channel(64);
    let mut trace = InboundTrace::default();
    let consume = async {
        while let Some(event) = events_rx.recv().await {
            trace.events.push(format!("{event:?}"));
            if let ReaderEvent::Ack(ack) = event {
                if acks.resolve(&ack.id).is_some() {
                    trace.resolved.push(ack.id.clone());
                }
                trace.acks.push(ack);
            }
        }
    };
    let stop = CancellationToken::new();
    tokio::join!(run(reader, events_tx, max_message_bytes, stop), consume);
    trace
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
