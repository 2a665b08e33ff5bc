//! The WebSocket frame layer of a subscriber socket after the handshake: server frames are
//! parsed straight out of the read buffer (no copy for unfragmented frames), and the
//! client's frames (acks, pongs, the close) are masked into an output buffer that is
//! written once per read batch, so a burst of notifications costs one read and one write.

/// Opcodes (RFC 6455 §5.2).
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Largest frame accepted from the server.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// One frame parsed from the buffer.
#[derive(Debug)]
pub struct Frame<'a> {
    pub fin: bool,
    pub opcode: u8,
    pub payload: &'a [u8],
}

/// Why the buffer does not hold a usable frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// More bytes are needed; at least this many in total from the frame's start.
    Incomplete(usize),
    /// The frame is larger than [`MAX_FRAME`] or otherwise unusable.
    Invalid,
}

/// Parses one frame at the start of `buf`; returns it and its length in bytes. Masked
/// server frames (not allowed, but harmless) are refused.
pub fn parse(buf: &[u8]) -> Result<(Frame<'_>, usize), Parse> {
    if buf.len() < 2 {
        return Err(Parse::Incomplete(2));
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0F;
    if buf[1] & 0x80 != 0 {
        return Err(Parse::Invalid);
    }
    let (len, header) = match buf[1] & 0x7F {
        126 => {
            let Some(bytes) = buf.get(2..4) else {
                return Err(Parse::Incomplete(4));
            };
            (usize::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Err(Parse::Incomplete(10));
            };
            let mut raw = [0u8; 8];
            raw.copy_from_slice(bytes);
            let len = usize::try_from(u64::from_be_bytes(raw)).map_err(|_| Parse::Invalid)?;
            (len, 10)
        }
        short => (usize::from(short), 2),
    };
    if len > MAX_FRAME {
        return Err(Parse::Invalid);
    }
    let total = header + len;
    match buf.get(header..total) {
        Some(payload) => Ok((
            Frame {
                fin,
                opcode,
                payload,
            },
            total,
        )),
        None => Err(Parse::Incomplete(total)),
    }
}

/// A cheap mask source (xorshift): masks only need to differ, not to be secret, for a
/// load generator on loopback.
#[derive(Debug)]
pub struct Masker(u32);

impl Masker {
    pub fn new(seed: u32) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x.to_ne_bytes()
    }

    /// Appends a masked client frame to `out`.
    pub fn write(&mut self, out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
        out.push(0x80 | opcode);
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if let Ok(short) = u16::try_from(len) {
            out.push(0x80 | 126);
            out.extend_from_slice(&short.to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = self.next();
        out.extend_from_slice(&mask);
        out.extend(
            payload
                .iter()
                .enumerate()
                .map(|(index, byte)| byte ^ mask[index % 4]),
        );
    }

    /// Appends the ack `{"id":"<id>","status":200}`.
    pub fn ack(&mut self, out: &mut Vec<u8>, id: &[u8]) {
        let mut payload = Vec::with_capacity(id.len() + 24);
        payload.extend_from_slice(b"{\"id\":\"");
        payload.extend_from_slice(id);
        payload.extend_from_slice(b"\",\"status\":200}");
        self.write(out, OP_TEXT, &payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        if payload.len() < 126 {
            out.push(payload.len() as u8);
        } else {
            out.push(126);
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn parses_short_and_medium_frames_and_waits_for_the_rest() {
        let big = vec![b'a'; 300];
        let mut buf = server_frame(OP_TEXT, b"hello");
        buf.extend(server_frame(OP_TEXT, &big));
        let Ok((frame, used)) = parse(&buf) else {
            panic!("first frame")
        };
        assert_eq!(
            (frame.opcode, frame.payload, used),
            (OP_TEXT, &b"hello"[..], 7)
        );
        let Ok((frame, used2)) = parse(&buf[used..]) else {
            panic!("second frame")
        };
        assert_eq!((frame.payload.len(), used2), (300, 304));
        assert_eq!(
            parse(&buf[used..used + 100]).err(),
            Some(Parse::Incomplete(304))
        );
    }

    #[test]
    fn masked_client_frames_unmask_to_the_payload() {
        let mut out = Vec::new();
        Masker::new(7).ack(&mut out, b"lg-1");
        assert_eq!(out[0], 0x81);
        let len = usize::from(out[1] & 0x7F);
        let mask = [out[2], out[3], out[4], out[5]];
        let payload: Vec<u8> = out[6..6 + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(payload, br#"{"id":"lg-1","status":200}"#);
    }
}
