//! The read buffer of one subscriber socket: bytes read from the hub accumulate here and
//! [`Inbox::frames`] hands out every frame they complete, reassembling fragmented
//! messages. A frame split across reads stays in the buffer until its last byte arrives,
//! so it is handed out (and acked) exactly once. Unfragmented frames are borrowed straight
//! from the buffer: no copy and no allocation per frame.

use super::frames::{self, Parse};

/// Read buffer: starts small (thousands of idle sockets), grows while reads fill it.
const INITIAL_BUFFER: usize = 4096;
const MAX_BUFFER: usize = 256 * 1024;
/// Below this much free room past the data, the data is moved to the front first.
const MIN_ROOM: usize = 1024;

/// One complete frame or message from the hub.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A whole text or binary message.
    Message(&'a [u8]),
    Ping(&'a [u8]),
    /// The hub's close frame: its status code (1005 if none) and what to echo back.
    Close {
        code: u16,
        echo: &'a [u8],
    },
}

/// The buffered bytes of one socket.
#[derive(Debug)]
pub struct Inbox {
    buf: Vec<u8>,
    /// The unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Bytes the incomplete frame at `start` needs in all (0: unknown).
    need: usize,
    /// A fragmented message being put together.
    fragments: Vec<u8>,
}

impl Inbox {
    /// An inbox holding the bytes already read past the handshake.
    pub fn new(leftover: &[u8]) -> Self {
        let mut buf = vec![0u8; INITIAL_BUFFER.max(leftover.len() * 2)];
        buf[..leftover.len()].copy_from_slice(leftover);
        Self {
            buf,
            start: 0,
            end: leftover.len(),
            need: 0,
            fragments: Vec::new(),
        }
    }

    /// Free room for the next read (the buffer is compacted or grown as needed).
    pub fn room(&mut self) -> &mut [u8] {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > 0
            && (self.need > self.buf.len() - self.start || self.buf.len() - self.end < MIN_ROOM)
        {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.need > self.buf.len() || self.end == self.buf.len() {
            let grown = (self.buf.len() * 2)
                .max(self.need)
                .min(MAX_BUFFER.max(self.need));
            self.buf.resize(grown, 0);
        }
        &mut self.buf[self.end..]
    }

    /// Records that a read put `count` bytes at the start of [`Inbox::room`].
    pub fn filled(&mut self, count: usize) {
        self.end = (self.end + count).min(self.buf.len());
    }

    /// Hands every complete frame in the buffer to `each`, in order, until `each` returns
    /// false or only an incomplete frame is left. Pongs and unknown opcodes are skipped.
    /// Errs on a frame the hub must not send (masked, or larger than [`frames::MAX_FRAME`]).
    pub fn frames(
        &mut self,
        mut each: impl FnMut(Incoming<'_>) -> bool,
    ) -> Result<(), &'static str> {
        self.need = 0;
        loop {
            let (frame, used) = match frames::parse(&self.buf[self.start..self.end]) {
                Ok(parsed) => parsed,
                Err(Parse::Incomplete(total)) => {
                    self.need = total;
                    return Ok(());
                }
                Err(Parse::Invalid) => return Err("invalid frame from the hub"),
            };
            self.start += used;
            let go_on = match frame.opcode {
                frames::OP_TEXT | frames::OP_BINARY if frame.fin => {
                    self.fragments.clear();
                    each(Incoming::Message(frame.payload))
                }
                frames::OP_TEXT | frames::OP_BINARY | frames::OP_CONTINUATION => {
                    if frame.opcode != frames::OP_CONTINUATION {
                        self.fragments.clear();
                    }
                    self.fragments.extend_from_slice(frame.payload);
                    if self.fragments.len() > frames::MAX_FRAME {
                        return Err("oversized message");
                    }
                    if frame.fin {
                        let go_on = each(Incoming::Message(&self.fragments));
                        self.fragments.clear();
                        go_on
                    } else {
                        true
                    }
                }
                frames::OP_PING => each(Incoming::Ping(frame.payload)),
                frames::OP_CLOSE => {
                    let code = frame
                        .payload
                        .get(..2)
                        .map_or(1005, |code| u16::from_be_bytes([code[0], code[1]]));
                    let echo = frame.payload.get(..2).unwrap_or_default();
                    each(Incoming::Close { code, echo })
                }
                _ => true,
            };
            if !go_on {
                return Ok(());
            }
        }
    }
}

/// A server frame (unmasked), as the hub sends it. For tests.
#[cfg(test)]
pub fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    if payload.len() < 126 {
        out.push(payload.len() as u8);
    } else if let Ok(short) = u16::try_from(payload.len()) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` to the inbox as one read; returns what it handed out.
    fn read(inbox: &mut Inbox, bytes: &[u8]) -> Vec<String> {
        let room = inbox.room();
        assert!(room.len() >= bytes.len(), "room {}", room.len());
        room[..bytes.len()].copy_from_slice(bytes);
        inbox.filled(bytes.len());
        let mut seen = Vec::new();
        let result = inbox.frames(|incoming| {
            seen.push(match incoming {
                Incoming::Message(payload) => String::from_utf8_lossy(payload).into_owned(),
                Incoming::Ping(payload) => format!("ping {}", String::from_utf8_lossy(payload)),
                Incoming::Close { code, .. } => format!("close {code}"),
            });
            true
        });
        assert_eq!(result, Ok(()));
        seen
    }

    #[test]
    fn every_frame_of_one_read_is_handed_out_in_order() {
        let mut bytes = server_frame(true, frames::OP_TEXT, b"a");
        bytes.extend(server_frame(true, frames::OP_PING, b"p"));
        bytes.extend(server_frame(true, frames::OP_TEXT, b"b"));
        bytes.extend(server_frame(true, frames::OP_PONG, b"ignored"));
        bytes.extend(server_frame(true, frames::OP_BINARY, b"c"));
        let mut inbox = Inbox::new(&[]);
        assert_eq!(read(&mut inbox, &bytes), ["a", "ping p", "b", "c"]);
    }

    #[test]
    fn a_frame_split_across_reads_is_handed_out_once_when_complete() {
        let big = vec![b'x'; 5000];
        let mut bytes = server_frame(true, frames::OP_TEXT, b"first");
        bytes.extend(server_frame(true, frames::OP_TEXT, &big));
        let mut inbox = Inbox::new(&[]);
        // The header of the big frame is itself split.
        let cuts = [0, 8, 2000, 4000, bytes.len()];
        let mut seen = Vec::new();
        for pair in cuts.windows(2) {
            seen.extend(read(&mut inbox, &bytes[pair[0]..pair[1]]));
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], "first");
        assert_eq!(seen[1].len(), 5000);
    }

    #[test]
    fn fragments_are_reassembled_around_control_frames() {
        let mut bytes = server_frame(false, frames::OP_TEXT, b"he");
        bytes.extend(server_frame(true, frames::OP_PING, b""));
        bytes.extend(server_frame(false, frames::OP_CONTINUATION, b"ll"));
        bytes.extend(server_frame(true, frames::OP_CONTINUATION, b"o"));
        let mut inbox = Inbox::new(&bytes[..3]);
        let mut seen = read(&mut inbox, &[]);
        seen.extend(read(&mut inbox, &bytes[3..]));
        assert_eq!(seen, ["ping ", "hello"]);
    }

    #[test]
    fn stopping_keeps_the_rest_and_invalid_frames_are_refused() {
        let mut bytes = server_frame(true, frames::OP_CLOSE, &1000u16.to_be_bytes());
        bytes.extend(server_frame(true, frames::OP_TEXT, b"after"));
        let mut inbox = Inbox::new(&bytes);
        let mut seen = Vec::new();
        let result = inbox.frames(|incoming| {
            seen.push(format!("{incoming:?}"));
            false
        });
        assert_eq!(result, Ok(()));
        assert_eq!(seen.len(), 1);
        assert!(seen[0].contains("code: 1000"), "{seen:?}");
        let mut masked = Inbox::new(&[0x81, 0x81, 1, 2, 3, 4, b'a']);
        assert_eq!(masked.frames(|_| true), Err("invalid frame from the hub"));
    }
}
