//! Pre-encoding one unmasked server text frame (FIN + opcode 1), built once per publish and
//! shared by every socket.

use bytes::{BufMut, Bytes, BytesMut};

/// The whole frame (header and payload) for `payload`.
pub fn text_frame(payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut out = BytesMut::with_capacity(len + 10);
    out.put_u8(0x81);
    if len < 126 {
        out.put_u8(u8::try_from(len).unwrap_or(125));
    } else if let Ok(short) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(short);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    out.put_slice(payload);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::text_frame;

    #[test]
    fn headers_by_length() {
        assert_eq!(&text_frame(b"hi")[..], &[0x81, 2, b'h', b'i']);
        let mid = text_frame(&[0u8; 300]);
        assert_eq!(&mid[..4], &[0x81, 126, 1, 44]);
        assert_eq!(mid.len(), 304);
        let big = text_frame(&vec![0u8; 70_000]);
        assert_eq!(big[1], 127);
        assert_eq!(big.len(), 70_010);
    }
}
