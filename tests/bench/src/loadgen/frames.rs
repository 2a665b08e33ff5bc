//! The WebSocket frame layer of a subscriber socket after the handshake: server frames are
//! parsed straight out of the read buffer (no copy for unfragmented frames), and the
//! client's frames (acks, pongs, the close) are masked straight into an output buffer that
//! [`super::receive`] writes once per read, so a burst of notifications costs one read and
//! one write.

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
        self.write_parts(out, opcode, &[payload]);
    }

    /// Appends one masked client frame whose payload is `parts` joined, copied and masked
    /// straight into `out` (no payload buffer).
    pub fn write_parts(&mut self, out: &mut Vec<u8>, opcode: u8, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        out.reserve(len + 14);
        out.push(0x80 | opcode);
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
        let start = out.len();
        for part in parts {
            out.extend_from_slice(part);
        }
        // In place, over one contiguous slice: the compiler vectorises this loop.
        for (index, byte) in out[start..].iter_mut().enumerate() {
            *byte ^= mask[index & 3];
        }
    }

    /// Appends the ack `{"id":"<id>","status":200}`.
    pub fn ack(&mut self, out: &mut Vec<u8>, id: &[u8]) {
        self.write_parts(out, OP_TEXT, &[b"{\"id\":\"", id, b"\",\"status\":200}"]);
    }
}

/// Unmasks every client frame in `bytes` (what a server would read); `None` if they do
/// not parse as a whole number of masked frames. For tests.
#[cfg(test)]
pub fn unmask_all(mut bytes: &[u8]) -> Option<Vec<(u8, Vec<u8>)>> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let opcode = bytes.first()? & 0x0F;
        let (len, header) = match bytes.get(1)? & 0x7F {
            126 => (
                usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?])),
                4,
            ),
            127 => return None,
            short => (usize::from(short), 2),
        };
        let mask = bytes.get(header..header + 4)?;
        let payload = bytes.get(header + 4..header + 4 + len)?;
        frames.push((
            opcode,
            payload
                .iter()
                .enumerate()
                .map(|(index, byte)| byte ^ mask[index % 4])
                .collect(),
        ));
        bytes = &bytes[header + 4 + len..];
    }
    Some(frames)
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
        let mut masker = Masker::new(7);
        masker.ack(&mut out, b"lg-1");
        let long = vec![b'p'; 300];
        masker.write(&mut out, OP_PONG, &long);
        assert_eq!(out[0], 0x81);
        assert_eq!(
            unmask_all(&out),
            Some(vec![
                (OP_TEXT, br#"{"id":"lg-1","status":200}"#.to_vec()),
                (OP_PONG, long)
            ])
        );
    }
}
