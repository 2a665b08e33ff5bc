//! The write side of a socket below the WebSocket framing: frames written during one batch
//! are gathered in memory and go out together on flush (coalesced writes, one syscall for
//! many frames under load). Unlike a `BufWriter`, the buffer exists only while a batch is
//! being written: after the flush it is released, so an idle socket holds none.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;

/// Past this many gathered bytes, a write first pushes the batch out.
const MAX_GATHERED: usize = 64 * 1024;

/// Gathers writes until flushed; see the module docs.
#[derive(Debug)]
pub(crate) struct Coalescing<W> {
    inner: W,
    gathered: Vec<u8>,
    /// How much of `gathered` is already written.
    sent: usize,
}

impl<W: AsyncWrite + Unpin> Coalescing<W> {
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            gathered: Vec::new(),
            sent: 0,
        }
    }

    /// Writes out what is gathered; then releases the buffer.
    fn poll_push(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.gathered.len() {
            let written =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.gathered[self.sent..]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += written;
        }
        self.gathered = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Coalescing<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.gathered.len() >= MAX_GATHERED {
            ready!(this.poll_push(cx))?;
        }
        let total: usize = bufs.iter().map(|buf| buf.len()).sum();
        this.gathered.reserve(total);
        for buf in bufs {
            this.gathered.extend_from_slice(buf);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_push(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_push(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn a_batch_goes_out_in_one_write_and_the_buffer_is_released() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let mut writer = Coalescing::new(client);
        writer.write_all(b"one ").await.expect("write");
        let written = writer
            .write_vectored(&[IoSlice::new(b"two "), IoSlice::new(b"three")])
            .await
            .expect("write");
        assert_eq!(written, 9, "a vectored write is gathered whole");
        assert!(writer.gathered.capacity() > 0);
        writer.flush().await.expect("flush");
        assert_eq!(writer.gathered.capacity(), 0, "released after the flush");
        drop(writer);
        let mut received = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut server, &mut received)
            .await
            .expect("read");
        assert_eq!(received, "one two three");
    }

    #[tokio::test]
    async fn a_slow_reader_gets_everything_through_a_small_pipe() {
        let (client, mut server) = tokio::io::duplex(64);
        let payload: Vec<u8> = (0..200_000_u32).map(|i| (i % 251) as u8).collect();
        let expected = payload.clone();
        let writing = tokio::spawn(async move {
            let mut writer = Coalescing::new(client);
            for piece in payload.chunks(1000) {
                writer.write_all(piece).await.expect("write");
            }
            writer.flush().await.expect("flush");
        });
        let mut received = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut server, &mut received)
            .await
            .expect("read");
        writing.await.expect("writer");
        assert_eq!(received, expected);
    }
}
