//! What a subscriber sends on its WebSocket, decoded (RFC 6455, the server's side): frames
//! parsed from whatever bytes a read returned, unmasked in place, fragments joined into
//! messages under the size cap. The decoder holds no buffer between reads unless a frame
//! was cut in two, so an idle socket costs it nothing; the socket's reader
//! ([`super::reader`]) reads into a scratch buffer that lives only for the read.
//!
//! Strict where the protocol's safety is at stake (client frames must be masked, control
//! frames short and whole, no reserved bits or opcodes, text valid UTF-8): a violation
//! ends the socket with 1002 or 1007. Lenient where it costs nothing: a length not encoded
//! in the fewest bytes is accepted.

/// Close code of a protocol violation.
pub(crate) const CLOSE_PROTOCOL: u16 = 1002;
/// Close code of text that is not UTF-8.
pub(crate) const CLOSE_NOT_UTF8: u16 = 1007;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Longest payload of a control frame.
const MAX_CONTROL_PAYLOAD: usize = 125;

/// One thing the subscriber said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Inbound<'a> {
    /// A whole text message (valid UTF-8).
    Text(&'a [u8]),
    /// A whole binary message (FHIRcast defines none; it only shows the client is there).
    Binary,
    /// A ping, to be answered with a pong carrying this payload.
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close with this code (1005 when the client gave none) and the payload to echo.
    Close { code: u16, payload: &'a [u8] },
}

/// Why the decoder stopped; nothing is decoded after it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The client closed (its close frame was handed on as [`Inbound::Close`]).
    Closed,
    /// A message over the cap (close 1009).
    TooLarge,
    /// A violation of the protocol, with the close code to send (1002 or 1007).
    Violation(u16),
}

/// A frame's header, once all of it has arrived.
#[derive(Debug)]
struct Head {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    header_len: usize,
    payload_len: usize,
}

/// Parses a frame header from the start of `bytes`: `Ok(None)` while it is incomplete.
/// `max_payload` bounds the payload before it is waited for.
fn parse_head(bytes: &[u8], max_payload: usize) -> Result<Option<Head>, Stop> {
    let [first, second, rest @ ..] = bytes else {
        return Ok(None);
    };
    if first & 0b0111_0000 != 0 {
        return Err(Stop::Violation(CLOSE_PROTOCOL));
    }
    let fin = first & 0b1000_0000 != 0;
    let opcode = first & 0b0000_1111;
    let control = opcode & 0b1000 != 0;
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(Stop::Violation(CLOSE_PROTOCOL));
    }
    if second & 0b1000_0000 == 0 {
        // Every frame from a client is masked.
        return Err(Stop::Violation(CLOSE_PROTOCOL));
    }
    let (payload_len, extended) = match second & 0b0111_1111 {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(eight) => {
                let mut array = [0; 8];
                array.copy_from_slice(eight);
                let length = u64::from_be_bytes(array);
                if length >> 63 != 0 {
                    return Err(Stop::Violation(CLOSE_PROTOCOL));
                }
                (length, 8)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 0),
    };
    if control && (!fin || payload_len > MAX_CONTROL_PAYLOAD as u64) {
        return Err(Stop::Violation(CLOSE_PROTOCOL));
    }
    let payload_len = match usize::try_from(payload_len) {
        Ok(length) if length <= max_payload => length,
        _ => return Err(Stop::TooLarge),
    };
    let Some(mask) = rest.get(extended..extended + 4) else {
        return Ok(None);
    };
    Ok(Some(Head {
        fin,
        opcode,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        header_len: 2 + extended + 4,
        payload_len,
    }))
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (byte, key) in payload.iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
}

/// Whether a close code may be sent by a peer (RFC 6455 7.4, and the registered 1012-1014).
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The state between reads: a frame cut in two, a fragmented message being joined.
#[derive(Debug)]
pub(crate) struct Decoder {
    max_message: usize,
    /// Bytes of a frame whose end has not arrived (empty, and unallocated, otherwise).
    partial: Vec<u8>,
    /// The fragments so far of a message, and whether it is text.
    message: Vec<u8>,
    in_message: Option<bool>,
    stopped: bool,
}

impl Decoder {
    pub(crate) fn new(max_message: usize) -> Self {
        Self {
            max_message,
            partial: Vec::new(),
            message: Vec::new(),
            in_message: None,
            stopped: false,
        }
    }

    /// Decodes what a read returned (`bytes` is unmasked in place), handing each whole
    /// message or control frame to `on`. Returns why decoding stopped, if it did.
    pub(crate) fn feed(
        &mut self,
        bytes: &mut [u8],
        on: &mut impl FnMut(Inbound<'_>),
    ) -> Option<Stop> {
        if self.stopped {
            return None;
        }
        let result = if self.partial.is_empty() {
            let (used, result) = self.decode(bytes, on);
            if result.is_none() {
                self.partial.extend_from_slice(&bytes[used..]);
            }
            result
        } else {
            let mut joined = std::mem::take(&mut self.partial);
            joined.extend_from_slice(bytes);
            let (used, result) = self.decode(&mut joined, on);
            if result.is_none() && used < joined.len() {
                joined.drain(..used);
                self.partial = joined;
            }
            result
        };
        if result.is_some() {
            self.stopped = true;
            self.partial = Vec::new();
            self.message = Vec::new();
        }
        result
    }

    /// Decodes whole frames from the start of `bytes`; returns how many bytes they took.
    fn decode(
        &mut self,
        bytes: &mut [u8],
        on: &mut impl FnMut(Inbound<'_>),
    ) -> (usize, Option<Stop>) {
        let mut used = 0;
        loop {
            let rest = &mut bytes[used..];
            let head = match parse_head(rest, self.max_message) {
                Ok(Some(head)) => head,
                Ok(None) => return (used, None),
                Err(stop) => return (used, Some(stop)),
            };
            let end = head.header_len + head.payload_len;
            let Some(frame) = rest.get_mut(..end) else {
                return (used, None);
            };
            used += end;
            let payload = &mut frame[head.header_len..];
            unmask(payload, head.mask);
            if let Err(stop) = self.on_frame(&head, payload, on) {
                return (used, Some(stop));
            }
        }
    }

    /// Handles one whole frame.
    fn on_frame(
        &mut self,
        head: &Head,
        payload: &[u8],
        on: &mut impl FnMut(Inbound<'_>),
    ) -> Result<(), Stop> {
        match head.opcode {
            OP_PING => {
                on(Inbound::Ping(payload));
                Ok(())
            }
            OP_PONG => {
                on(Inbound::Pong);
                Ok(())
            }
            OP_CLOSE => {
                let code = match payload {
                    [] => 1005,
                    [_] => return Err(Stop::Violation(CLOSE_PROTOCOL)),
                    [high, low, reason @ ..] => {
                        let code = u16::from_be_bytes([*high, *low]);
                        if !close_code_allowed(code) {
                            return Err(Stop::Violation(CLOSE_PROTOCOL));
                        }
                        if std::str::from_utf8(reason).is_err() {
                            return Err(Stop::Violation(CLOSE_NOT_UTF8));
                        }
                        code
                    }
                };
                on(Inbound::Close { code, payload });
                Err(Stop::Closed)
            }
            OP_TEXT | OP_BINARY => {
                if self.in_message.is_some() {
                    return Err(Stop::Violation(CLOSE_PROTOCOL));
                }
                let text = head.opcode == OP_TEXT;
                if head.fin {
                    return deliver(text, payload, on);
                }
                self.in_message = Some(text);
                self.message.clear();
                self.message.extend_from_slice(payload);
                Ok(())
            }
            _ => {
                let Some(text) = self.in_message else {
                    return Err(Stop::Violation(CLOSE_PROTOCOL));
                };
                if self.message.len() + payload.len() > self.max_message {
                    return Err(Stop::TooLarge);
                }
                self.message.extend_from_slice(payload);
                if !head.fin {
                    return Ok(());
                }
                self.in_message = None;
                let message = std::mem::take(&mut self.message);
                deliver(text, &message, on)
            }
        }
    }
}

/// Hands a whole message to `on`, text only once it is known to be UTF-8.
fn deliver(text: bool, message: &[u8], on: &mut impl FnMut(Inbound<'_>)) -> Result<(), Stop> {
    if !text {
        on(Inbound::Binary);
    } else if std::str::from_utf8(message).is_ok() {
        on(Inbound::Text(message));
    } else {
        return Err(Stop::Violation(CLOSE_NOT_UTF8));
    }
    Ok(())
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
