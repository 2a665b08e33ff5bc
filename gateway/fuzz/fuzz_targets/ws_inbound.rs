//! FUZ-5 `ws_inbound`: the bytes a subscriber sends on its WebSocket after the handshake
//! (frames of any opcode, fragmentation, masking and length, acknowledgements, SyncError
//! answers, garbage), through the socket's real read side: the frame decoder with the
//! message cap, the reader task, and the resolution of pending acknowledgements.
//!
//! Oracles: no panic; the work is bounded by the input (at most three reader events per
//! two bytes, then one end); the read ends with a close, an oversized message, a protocol
//! violation or a lost connection, and nothing follows that; acknowledgements carry a status from 100 to 599 and
//! an id within the message cap, and resolve only pending ids, each once; another socket
//! read at the same time on the same runtime sees exactly its own frames.

#![no_main]

use std::collections::HashSet;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tokio::runtime::Runtime;

use gateway::ws::{InboundTrace, read_inbound};

/// The message cap, small so that inputs reach it (the gateway's default is 64 KiB).
const MAX_MESSAGE_BYTES: usize = 1024;
const PENDING: &[&str] = &["e1", "e2", "SyncError-7"];

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
});

/// A well-behaved subscriber's bytes: a masked ack of `e2`, then a normal close.
fn neighbour_frames() -> Vec<u8> {
    fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x11, 0x22, 0x33, 0x44];
        let mut frame = vec![
            0x80 | opcode,
            0x80 | u8::try_from(payload.len()).expect("short"),
        ];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        frame
    }
    let mut bytes = masked(0x1, br#"{"id":"e2","status":200}"#);
    bytes.extend(masked(0x8, &1000_u16.to_be_bytes()));
    bytes
}

fn is_end(event: &str) -> bool {
    ["Closed", "TooLarge", "Violation", "Lost"]
        .iter()
        .any(|end| event.starts_with(end))
}

fn check(bytes: &[u8], trace: &InboundTrace) {
    let frames_at_most = bytes.len() / 2;
    assert!(
        trace.events.len() <= 3 * frames_at_most + 1,
        "{} events from {} bytes",
        trace.events.len(),
        bytes.len()
    );
    let last = trace
        .events
        .last()
        .expect("the read always ends with an event");
    assert!(is_end(last), "the read ended with {last}");
    let ends = trace.events.iter().filter(|event| is_end(event)).count();
    assert_eq!(ends, 1, "events after the end: {:?}", trace.events);
    for ack in &trace.acks {
        assert!((100..600).contains(&ack.status), "{ack:?}");
        assert!(ack.id.len() <= MAX_MESSAGE_BYTES);
    }
    let mut resolved = HashSet::new();
    for id in &trace.resolved {
        assert!(
            PENDING.contains(&id.as_str()),
            "resolved {id}, never pending"
        );
        assert!(resolved.insert(id), "resolved {id} twice");
    }
}

fuzz_target!(|bytes: &[u8]| {
    let neighbour = neighbour_frames();
    let (trace, neighbour_trace) = RUNTIME.block_on(async {
        tokio::join!(
            read_inbound(bytes, MAX_MESSAGE_BYTES, PENDING),
            read_inbound(&neighbour, MAX_MESSAGE_BYTES, PENDING),
        )
    });
    check(bytes, &trace);
    assert_eq!(neighbour_trace.resolved, ["e2"]);
    assert_eq!(
        neighbour_trace.events.last().map(String::as_str),
        Some("Closed(1000)")
    );
});
