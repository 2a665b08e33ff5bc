//! The two halves of an upgraded connection, for the socket's read side and its session's
//! writes. A plain TCP connection (the usual case behind a TLS-terminating ingress) is
//! taken back from hyper and split into owned halves: no lock between the halves, no boxed
//! I/O on the path, and the read side waits for readiness without holding a buffer
//! ([`SocketRead::read_with`]). Anything else (WSS terminated here) is split generically.

use std::io::{self, Cursor, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::either::Either;

use crate::listener::ClientIo;

/// Bytes read from a socket at once (on the stack, only while a read is handled).
const SCRATCH_BYTES: usize = 4096;

/// Bytes read at once on a generically split socket (WSS), held between reads.
const GENERIC_READ_BYTES: usize = 2048;

type GenericRead = Box<dyn AsyncRead + Send + Unpin>;
type GenericWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// The read half of an attached socket.
pub(crate) enum SocketRead {
    Tcp {
        half: OwnedReadHalf,
        /// What hyper had read past the handshake, handed on first.
        preread: Bytes,
    },
    Generic {
        half: GenericRead,
        buffer: Vec<u8>,
    },
}

/// The write half of an attached socket.
pub(crate) enum SocketWrite {
    Tcp(OwnedWriteHalf),
    Generic(GenericWrite),
}

/// Splits a connection the WebSocket handshake has upgraded.
pub(crate) fn split(upgraded: Upgraded) -> (SocketRead, SocketWrite) {
    match upgraded.downcast::<ClientIo>() {
        Ok(parts) => match parts.io.into_inner() {
            Either::Left(tcp) => {
                forget_wakers(&tcp);
                let (read, write) = tcp.into_split();
                // Copied: hyper's bytes keep its whole read buffer alive, even when empty.
                let read = SocketRead::Tcp {
                    half: read,
                    preread: Bytes::copy_from_slice(&parts.read_buf),
                };
                (read, SocketWrite::Tcp(write))
            }
            Either::Right(tls) => {
                let (read, write) = tokio::io::split(tls);
                let read = Cursor::new(parts.read_buf).chain(read);
                (
                    SocketRead::generic(Box::new(read)),
                    SocketWrite::Generic(Box::new(write)),
                )
            }
        },
        Err(upgraded) => {
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            (
                SocketRead::generic(Box::new(read)),
                SocketWrite::Generic(Box::new(write)),
            )
        }
    }
}

/// Drops the wakers hyper's connection task left in the stream's registration: the
/// socket's task waits for readiness without replacing them, and a waker keeps its
/// (finished) task's memory, several KiB, alive as long as the socket lives.
fn forget_wakers(tcp: &TcpStream) {
    let mut noop = Context::from_waker(Waker::noop());
    // Pending when not ready: the no-op waker takes the old one's place. When ready, no
    // waker was stored since readiness last cleared.
    let _ = tcp.poll_read_ready(&mut noop);
    let _ = tcp.poll_write_ready(&mut noop);
}

impl SocketRead {
    /// A read half over any byte source (WSS, and the fuzz harness).
    pub(crate) fn generic(half: GenericRead) -> Self {
        Self::Generic {
            half,
            buffer: Vec::new(),
        }
    }

    /// Over the bytes of `source`, read as a socket would be (for tests and fuzzing).
    pub(crate) fn over(source: Vec<u8>) -> Self {
        Self::generic(Box::new(Cursor::new(source)))
    }

    /// Waits for bytes and hands them to `handle` (mutable: the decoder unmasks in place);
    /// `Ok(0)` at the end of the stream. Cancel-safe: nothing is lost if the wait is dropped.
    pub(crate) async fn read_with(&mut self, handle: impl FnOnce(&mut [u8])) -> io::Result<usize> {
        match self {
            Self::Tcp { half, preread } => {
                if !preread.is_empty() {
                    let mut bytes = std::mem::take(preread).to_vec();
                    handle(&mut bytes);
                    return Ok(bytes.len());
                }
                loop {
                    half.readable().await?;
                    // Declared after the wait, so an idle socket's task does not hold it.
                    let mut scratch = [0_u8; SCRATCH_BYTES];
                    match half.try_read(&mut scratch) {
                        Ok(0) => return Ok(0),
                        Ok(read) => {
                            handle(&mut scratch[..read]);
                            return Ok(read);
                        }
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                        Err(err) => return Err(err),
                    }
                }
            }
            Self::Generic { half, buffer } => {
                buffer.resize(GENERIC_READ_BYTES, 0);
                let read = half.read(buffer).await?;
                if read > 0 {
                    handle(&mut buffer[..read]);
                }
                Ok(read)
            }
        }
    }
}

impl AsyncWrite for SocketWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(half) => Pin::new(half).poll_write(cx, buf),
            Self::Generic(half) => Pin::new(half).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(half) => Pin::new(half).poll_write_vectored(cx, bufs),
            Self::Generic(half) => Pin::new(half).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(half) => half.is_write_vectored(),
            Self::Generic(half) => half.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(half) => Pin::new(half).poll_flush(cx),
            Self::Generic(half) => Pin::new(half).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(half) => Pin::new(half).poll_shutdown(cx),
            Self::Generic(half) => Pin::new(half).poll_shutdown(cx),
        }
    }
}
