use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: FIN and opcode in `first`, masked payload.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![first];
    match payload.len() {
        short @ 0..=125 => bytes.push(0x80 | u8::try_from(short).expect("short")),
        medium @ 126..=0xffff => {
            bytes.push(0x80 | 126);
            bytes.extend_from_slice(&u16::try_from(medium).expect("medium").to_be_bytes());
        }
        long => {
            bytes.push(0x80 | 127);
            bytes.extend_from_slice(&(long as u64).to_be_bytes());
        }
    }
    bytes.extend_from_slice(&MASK);
    bytes.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    bytes
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Text(String),
    Binary,
    Ping(Vec<u8>),
    Pong,
    Close(u16, Vec<u8>),
}

/// Feeds `bytes` in reads of `chunk` bytes; returns what was seen and why it stopped.
fn decode_in_chunks(bytes: &[u8], chunk: usize, max: usize) -> (Vec<Seen>, Option<Stop>) {
    let mut decoder = Decoder::new(max);
    let mut seen = Vec::new();
    let mut stop = None;
    for piece in bytes.chunks(chunk) {
        let mut piece = piece.to_vec();
        let mut on = |inbound: Inbound<'_>| {
            seen.push(match inbound {
                Inbound::Text(text) => Seen::Text(String::from_utf8_lossy(text).into_owned()),
                Inbound::Binary => Seen::Binary,
                Inbound::Ping(payload) => Seen::Ping(payload.to_vec()),
                Inbound::Pong => Seen::Pong,
                Inbound::Close { code, payload } => Seen::Close(code, payload.to_vec()),
            });
        };
        if let Some(stopped) = decoder.feed(&mut piece, &mut on) {
            stop = Some(stopped);
            break;
        }
    }
    (seen, stop)
}

fn decode(bytes: &[u8]) -> (Vec<Seen>, Option<Stop>) {
    decode_in_chunks(bytes, bytes.len().max(1), 1024)
}

#[test]
fn several_frames_in_one_read_and_a_frame_cut_anywhere_decode_the_same() {
    let mut bytes = frame(0x81, br#"{"id":"e1","status":200}"#);
    bytes.extend(frame(0x89, b"hi"));
    bytes.extend(frame(0x8A, b""));
    bytes.extend(frame(0x82, &[1, 2, 3]));
    bytes.extend(frame(0x81, &[b'x'; 300]));
    bytes.extend(frame(0x88, &[0x03, 0xe8, b'b', b'y', b'e']));
    let expected = vec![
        Seen::Text(r#"{"id":"e1","status":200}"#.to_owned()),
        Seen::Ping(b"hi".to_vec()),
        Seen::Pong,
        Seen::Binary,
        Seen::Text("x".repeat(300)),
        Seen::Close(1000, vec![0x03, 0xe8, b'b', b'y', b'e']),
    ];
    for chunk in [bytes.len(), 1, 2, 3, 7, 64, 333] {
        let (seen, stop) = decode_in_chunks(&bytes, chunk, 1024);
        assert_eq!(seen, expected, "reads of {chunk} bytes");
        assert_eq!(stop, Some(Stop::Closed), "reads of {chunk} bytes");
    }
}

#[test]
fn fragments_join_into_one_message_with_control_frames_between() {
    let mut bytes = frame(0x01, br#"{"id":"#);
    bytes.extend(frame(0x89, b"p"));
    bytes.extend(frame(0x00, br#""e1","#));
    bytes.extend(frame(0x80, br#""status":200}"#));
    let (seen, stop) = decode(&bytes);
    assert_eq!(
        seen,
        [
            Seen::Ping(b"p".to_vec()),
            Seen::Text(r#"{"id":"e1","status":200}"#.to_owned())
        ]
    );
    assert_eq!(stop, None);
}

#[test]
fn a_close_without_a_code_is_1005_and_nothing_after_it_is_read() {
    let mut bytes = frame(0x88, b"");
    bytes.extend(frame(0x81, b"late"));
    let (seen, stop) = decode(&bytes);
    assert_eq!(seen, [Seen::Close(1005, Vec::new())]);
    assert_eq!(stop, Some(Stop::Closed));
}

#[test]
fn oversized_messages_stop_at_the_header_or_when_fragments_add_up() {
    let (seen, stop) = decode_in_chunks(&frame(0x81, &[b'a'; 2000]), 16, 1024);
    assert!(seen.is_empty());
    assert_eq!(stop, Some(Stop::TooLarge));
    let mut bytes = frame(0x01, &[b'a'; 600]);
    bytes.extend(frame(0x80, &[b'a'; 600]));
    assert_eq!(decode(&bytes), (Vec::new(), Some(Stop::TooLarge)));
    // A 64-bit length beyond any cap.
    let mut huge = vec![0x81, 0x80 | 127];
    huge.extend_from_slice(&(1_u64 << 40).to_be_bytes());
    assert_eq!(decode(&huge), (Vec::new(), Some(Stop::TooLarge)));
}

#[test]
fn protocol_violations_stop_with_1002() {
    let unmasked = vec![0x81, 0x02, b'h', b'i'];
    let reserved_bit = {
        let mut bytes = frame(0x81, b"hi");
        bytes[0] |= 0x40;
        bytes
    };
    let reserved_opcode = frame(0x83, b"hi");
    let long_ping = frame(0x89, &[0; 126]);
    let fragmented_ping = frame(0x09, b"p");
    let stray_continuation = frame(0x80, b"x");
    let text_inside_a_message = [frame(0x01, b"a"), frame(0x81, b"b")].concat();
    let one_byte_close = frame(0x88, &[0x03]);
    let bad_close_code = frame(0x88, &1004_u16.to_be_bytes());
    let top_bit_length = {
        let mut bytes = vec![0x81, 0x80 | 127];
        bytes.extend_from_slice(&(1_u64 << 63).to_be_bytes());
        bytes
    };
    for (name, bytes) in [
        ("unmasked", unmasked),
        ("reserved bit", reserved_bit),
        ("reserved opcode", reserved_opcode),
        ("ping over 125 bytes", long_ping),
        ("fragmented ping", fragmented_ping),
        ("continuation of nothing", stray_continuation),
        ("text inside a fragmented message", text_inside_a_message),
        ("one-byte close", one_byte_close),
        ("reserved close code", bad_close_code),
        ("length with the top bit set", top_bit_length),
    ] {
        let (seen, stop) = decode(&bytes);
        assert!(seen.is_empty(), "{name}: {seen:?}");
        assert_eq!(stop, Some(Stop::Violation(CLOSE_PROTOCOL)), "{name}");
    }
}

#[test]
fn text_that_is_not_utf8_stops_with_1007_whole_or_in_fragments() {
    assert_eq!(
        decode(&frame(0x81, &[0xff, 0xfe])),
        (Vec::new(), Some(Stop::Violation(CLOSE_NOT_UTF8)))
    );
    // A character split between fragments is fine; the joined message is checked.
    let euro = "€".as_bytes();
    let split = [frame(0x01, &euro[..1]), frame(0x80, &euro[1..])].concat();
    assert_eq!(decode(&split), (vec![Seen::Text("€".to_owned())], None));
    let bad_reason = frame(0x88, &[0x03, 0xe8, 0xff]);
    assert_eq!(
        decode(&bad_reason),
        (Vec::new(), Some(Stop::Violation(CLOSE_NOT_UTF8)))
    );
}

#[test]
fn an_idle_decoder_holds_no_buffer() {
    let mut decoder = Decoder::new(1024);
    let bytes = frame(0x81, b"hello");
    let (head, tail) = bytes.split_at(4);
    decoder.feed(&mut head.to_vec(), &mut |_| {});
    assert_eq!(decoder.partial.len(), 4);
    let mut texts = 0;
    decoder.feed(&mut tail.to_vec(), &mut |_| texts += 1);
    assert_eq!(texts, 1);
    assert_eq!(decoder.partial.capacity(), 0);
    assert_eq!(decoder.message.capacity(), 0);
}

#[test]
fn lengths_not_in_the_fewest_bytes_are_accepted() {
    // A 5-byte payload announced with the 16-bit form (leniency: costs nothing).
    let mut bytes = vec![0x81, 0x80 | 126, 0, 5];
    bytes.extend_from_slice(&MASK);
    bytes.extend(b"hello".iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    assert_eq!(decode(&bytes), (vec![Seen::Text("hello".to_owned())], None));
}
