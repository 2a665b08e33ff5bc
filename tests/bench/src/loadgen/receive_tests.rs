//! Tests of the frame loop against a scripted socket: which reads it is given, and which
//! writes it makes.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Acks, Receiver};
use crate::loadgen::event::{EventId, EventTemplate};
use crate::loadgen::frames::{self, OP_TEXT};
use crate::loadgen::inbox::server_frame;
use crate::loadgen::ledger::{Ledger, SocketIo, lock};
use crate::loadgen::subscriber::Control;

/// A socket that returns the scripted reads one by one, then the end of the stream, and
/// keeps every write apart.
#[derive(Default)]
struct Script {
    reads: VecDeque<Vec<u8>>,
    writes: Vec<Vec<u8>>,
}

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut chunk) = self.reads.pop_front() {
            let fits = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..fits]);
            if fits < chunk.len() {
                self.reads.push_front(chunk.split_off(fits));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Script {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writes.push(buf.to_vec());
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn id(seq: u64) -> EventId {
    EventId {
        phase: 1,
        topic: 0,
        seq,
        sched_us: 0,
        floor: seq,
    }
}

/// The server frame of notification `seq`, about 600 bytes.
fn notification(seq: u64) -> Vec<u8> {
    let body = EventTemplate::new("topic-0", 0, 600).body(&id(seq));
    server_frame(true, OP_TEXT, body.as_bytes())
}

/// The ack payload the hub must see for `seq`.
fn ack(seq: u64) -> (u8, Vec<u8>) {
    (
        OP_TEXT,
        format!(r#"{{"id":"{}","status":200}}"#, id(seq).render()).into_bytes(),
    )
}

/// Runs one subscriber's loop over `reads` to the end of the stream; returns its writes
/// and the ledger.
async fn run(reads: Vec<Vec<u8>>, acks: Acks) -> (Vec<Vec<u8>>, Ledger) {
    let ledger = Ledger::new(Instant::now(), 1, &[0]);
    let control = Control::default();
    let mut script = Script {
        reads: reads.into(),
        writes: Vec::new(),
    };
    let end = Receiver::new(0, &ledger, acks, &control, None)
        .run(&mut script, &[])
        .await;
    assert_eq!(end, "the hub closed the connection");
    (script.writes, ledger)
}

#[tokio::test]
async fn k_notifications_in_one_read_are_acked_in_one_write() {
    let read: Vec<u8> = (0..3).flat_map(notification).collect();
    let (writes, ledger) = run(vec![read], Acks::IMMEDIATE).await;
    assert_eq!(writes.len(), 1, "one write for the read");
    assert_eq!(
        frames::unmask_all(&writes[0]),
        Some(vec![ack(0), ack(1), ack(2)])
    );
    assert_eq!(
        ledger.io(),
        SocketIo {
            reads: 1,
            notifications: 3,
            writes: 1,
            acks: 3
        }
    );
    assert_eq!(ledger.received(1), 3);
    assert_eq!(ledger.latency.merged(1).len(), 3);
}

#[tokio::test]
async fn a_notification_split_across_reads_is_acked_once() {
    let (first, second) = (notification(0), notification(1));
    let cut = first.len() / 2;
    let mut tail = first[cut..].to_vec();
    tail.extend_from_slice(&second);
    let (writes, ledger) = run(vec![first[..cut].to_vec(), tail], Acks::IMMEDIATE).await;
    // Nothing to ack after the first half; one write after the read that completed it.
    assert_eq!(writes.len(), 1);
    assert_eq!(frames::unmask_all(&writes[0]), Some(vec![ack(0), ack(1)]));
    assert_eq!(ledger.received(1), 2);
    let sub = lock(&ledger.subscribers[0]);
    assert_eq!((sub.counts(1).duplicated, sub.counts(1).reordered), (0, 0));
    assert_eq!(sub.io.reads, 2);
}

#[tokio::test]
async fn pongs_share_the_write_and_no_acks_means_no_ack_frames() {
    let mut read = notification(0);
    read.extend(server_frame(true, frames::OP_PING, b"hi"));
    read.extend(notification(1));
    let (writes, _) = run(vec![read.clone()], Acks::IMMEDIATE).await;
    assert_eq!(writes.len(), 1);
    assert_eq!(
        frames::unmask_all(&writes[0]),
        Some(vec![ack(0), (frames::OP_PONG, b"hi".to_vec()), ack(1)])
    );
    let off = Acks {
        enabled: false,
        ..Acks::IMMEDIATE
    };
    let (writes, ledger) = run(vec![notification(0), notification(1)], off).await;
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(ledger.received(1), 2);
}

#[tokio::test]
async fn a_repeated_notification_is_counted_once_and_still_acked() {
    let read: Vec<u8> = [0, 0, 1].into_iter().flat_map(notification).collect();
    let (writes, ledger) = run(vec![read], Acks::IMMEDIATE).await;
    assert_eq!(
        frames::unmask_all(&writes[0]),
        Some(vec![ack(0), ack(0), ack(1)])
    );
    let duplicated = lock(&ledger.subscribers[0]).counts(1).duplicated;
    assert_eq!((ledger.received(1), duplicated), (2, 1));
}

#[tokio::test]
async fn held_acks_of_several_reads_share_one_write() {
    let hold = Acks {
        enabled: true,
        hold: std::time::Duration::from_secs(3600),
    };
    let ping = server_frame(true, frames::OP_PING, b"");
    let reads = vec![notification(0), notification(1), ping];
    let (writes, ledger) = run(reads, hold).await;
    // The pong cannot wait: it takes the held acks of both earlier reads with it.
    assert_eq!(writes.len(), 1);
    assert_eq!(
        frames::unmask_all(&writes[0]),
        Some(vec![ack(0), ack(1), (frames::OP_PONG, Vec::new())])
    );
    assert_eq!(
        ledger.io(),
        SocketIo {
            reads: 3,
            notifications: 2,
            writes: 1,
            acks: 2
        }
    );
}
