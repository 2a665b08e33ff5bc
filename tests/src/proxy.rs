//! A TCP fault proxy on `127.0.0.1:0`, put between two components under test (a client and
//! a gateway, a gateway and Redis or a hub node, a node and Redis) to break the path
//! between them the ways a network does.
//!
//! [`TcpProxy::set_mode`] switches the [`FaultMode`]; it applies at once to the open
//! connections and to the new ones:
//!
//! - [`FaultMode::Pass`]: bytes go through as they come.
//! - [`FaultMode::Delay`]: every chunk read from one side is written to the other side the
//!   delay after it was read, in order, in each direction (a round trip takes at least twice
//!   the delay).
//! - [`FaultMode::Blackhole`]: a partition. Nothing is forwarded and nothing more is read;
//!   new connections are accepted but not connected upstream. As with a real partition, whose
//!   packets TCP keeps retransmitting, a connection that is still open when the mode changes
//!   back goes on: its held bytes are delivered and a held new connection is connected.
//! - [`FaultMode::Reset`]: every open connection is reset (RST to both sides, no FIN, no
//!   close frame), and so is every new one as soon as it is accepted.
//!
//! [`TcpProxy::cut_all`] resets the connections open now whatever the mode; later ones go
//! through as the mode says.
//!
//! A proxy may also stand for a load balancer ([`TcpProxy::balancer`]): each new connection
//! goes to the next of its targets in turn, the way a Kubernetes Service spreads clients over
//! the gateways behind one public URL. The targets can be set after the proxy is bound, so
//! its address can be handed to the components before they start.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The largest chunk read from one side before it is forwarded to the other.
const CHUNK: usize = 16 * 1024;
/// How many chunks a direction holds (delayed or blackholed) before it stops reading.
const QUEUED_CHUNKS: usize = 64;

/// What the proxy does to the traffic it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultMode {
    /// Forward everything as it comes.
    #[default]
    Pass,
    /// Forward every chunk this long after it was read, in order, in each direction.
    Delay(Duration),
    /// Forward nothing, read nothing more, do not connect new connections upstream.
    Blackhole,
    /// Reset every open connection and every new one.
    Reset,
}

impl FaultMode {
    fn delay(self) -> Duration {
        match self {
            Self::Delay(delay) => delay,
            Self::Pass | Self::Blackhole | Self::Reset => Duration::ZERO,
        }
    }
}

/// Returns `url` (http, ws, redis, …) with its host and port replaced by `address`;
/// the scheme, credentials (`user:pass@`), path and query are kept. Points a URL one
/// component handed out (an endpoint, a Redis URL) at a proxy or at another gateway.
pub fn with_address(url: &str, address: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let credentials = authority
        .rsplit_once('@')
        .map_or(String::new(), |(credentials, _)| format!("{credentials}@"));
    format!("{scheme}://{credentials}{address}{path}")
}

/// A running proxy.
#[derive(Debug)]
pub struct TcpProxy {
    address: SocketAddr,
    targets: Arc<Mutex<Vec<SocketAddr>>>,
    mode: watch::Sender<FaultMode>,
    cut: Arc<Mutex<CancellationToken>>,
    accept_loop: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts a proxy in [`FaultMode::Pass`] forwarding every connection to `target`.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let proxy = Self::balancer().await?;
        proxy.set_targets(&[target]);
        Ok(proxy)
    }

    /// Starts a proxy in [`FaultMode::Pass`] without targets: it resets every connection
    /// until [`TcpProxy::set_targets`] names some, then spreads new connections over them
    /// round-robin.
    pub async fn balancer() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy")?;
        let address = listener.local_addr()?;
        let targets = Arc::new(Mutex::new(Vec::<SocketAddr>::new()));
        let (mode, modes) = watch::channel(FaultMode::Pass);
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let current = Arc::clone(&cut);
        let choices = Arc::clone(&targets);
        let accept_loop = tokio::spawn(async move {
            let turn = AtomicUsize::new(0);
            while let Ok((client, _)) = listener.accept().await {
                // Take the token before reading the mode: `set_mode(Reset)` sets the mode
                // before it cuts, so a connection either sees Reset or gets cut.
                let token = current
                    .lock()
                    .map(|token| token.clone())
                    .unwrap_or_default();
                let target = choices.lock().ok().and_then(|targets| {
                    let next = turn.fetch_add(1, Ordering::Relaxed);
                    targets.get(next % targets.len().max(1)).copied()
                });
                match target {
                    Some(target) if *modes.borrow() != FaultMode::Reset => {
                        tokio::spawn(forward(client, target, modes.clone(), token));
                    }
                    _ => reset(&client),
                }
            }
        });
        Ok(Self {
            address,
            targets,
            mode,
            cut,
            accept_loop,
        })
    }

    /// Returns the proxy's address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Returns `url` (http, ws, redis, …) with its host and port replaced by the proxy's;
    /// credentials (`user:pass@`) and the path are kept.
    pub fn url_for(&self, url: &str) -> String {
        with_address(url, self.address)
    }

    /// Sets where new connections go: the next of `targets` in turn (open connections stay
    /// where they are).
    pub fn set_targets(&self, targets: &[SocketAddr]) {
        if let Ok(mut current) = self.targets.lock() {
            *current = targets.to_vec();
        }
    }

    /// Switches the mode for the open connections and the new ones.
    pub fn set_mode(&self, mode: FaultMode) {
        self.mode.send_replace(mode);
        if mode == FaultMode::Reset {
            self.cut_all();
        }
    }

    /// Returns the current mode.
    pub fn mode(&self) -> FaultMode {
        *self.mode.borrow()
    }

    /// Resets both sides of every connection open now; later connections go through as the
    /// mode says.
    pub fn cut_all(&self) {
        if let Ok(mut token) = self.cut.lock() {
            token.cancel();
            *token = CancellationToken::new();
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept_loop.abort();
        self.cut_all();
    }
}

/// Closes `stream` with an RST: zero linger makes the close abortive, as a dropped network
/// path looks to the peer.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Carries one connection until both directions are done, an error occurs (both sides are
/// then reset) or the connection is cut (reset).
async fn forward(
    mut client: TcpStream,
    target: SocketAddr,
    mut mode: watch::Receiver<FaultMode>,
    cut: CancellationToken,
) {
    let connect = async {
        wait_unless_blackholed(&mut mode).await;
        TcpStream::connect(target).await
    };
    let mut upstream = tokio::select! {
        connected = connect => match connected {
            Ok(upstream) => upstream,
            Err(_) => return reset(&client),
        },
        () = cut.cancelled() => return reset(&client),
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let clean = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let both = async {
            tokio::try_join!(
                relay(client_read, upstream_write, mode.clone()),
                relay(upstream_read, client_write, mode),
            )
        };
        tokio::select! {
            done = both => done.is_ok(),
            () = cut.cancelled() => false,
        }
    };
    if !clean {
        reset(&client);
        reset(&upstream);
    }
}

/// Forwards one direction: a reader queues each chunk with the time it is due (read time
/// plus the delay of the mode then), a writer writes it once due and not blackholed. End of
/// stream is forwarded as a shutdown of the write side, after the chunks before it.
async fn relay(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    mode: watch::Receiver<FaultMode>,
) -> io::Result<()> {
    let (queue, mut queued) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(QUEUED_CHUNKS);
    let mut read_mode = mode.clone();
    let read = async move {
        loop {
            wait_unless_blackholed(&mut read_mode).await;
            let mut chunk = vec![0; CHUNK];
            let read = from.read(&mut chunk).await?;
            let due = Instant::now() + read_mode.borrow().delay();
            let item = (read > 0).then(|| {
                chunk.truncate(read);
                chunk
            });
            let end = item.is_none();
            if queue.send((due, item)).await.is_err() || end {
                return Ok::<_, io::Error>(());
            }
        }
    };
    let mut write_mode = mode;
    let write = async move {
        while let Some((due, item)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            wait_unless_blackholed(&mut write_mode).await;
            match item {
                Some(chunk) => to.write_all(&chunk).await?,
                None => return to.shutdown().await,
            }
        }
        Ok(())
    };
    tokio::try_join!(read, write).map(|_| ())
}

/// Returns once the mode is not [`FaultMode::Blackhole`] (or the proxy is gone).
async fn wait_unless_blackholed(mode: &mut watch::Receiver<FaultMode>) {
    let _ = mode.wait_for(|mode| *mode != FaultMode::Blackhole).await;
}

#[cfg(test)]
mod tests {
    use anyhow::{bail, ensure};

    use super::*;

    /// How long a test waits for bytes it expects.
    const ARRIVAL: Duration = Duration::from_secs(5);
    /// How long a test waits to show nothing arrives.
    const SILENCE: Duration = Duration::from_millis(300);

    /// An in-process echo server on `127.0.0.1:0`.
    async fn echo_server() -> Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        Ok(address)
    }

    async fn proxied_echo() -> Result<TcpProxy> {
        TcpProxy::start(echo_server().await?).await
    }

    /// Sends `message` and waits up to `deadline` for its echo; returns the round trip.
    async fn round_trip(
        stream: &mut TcpStream,
        message: &[u8],
        deadline: Duration,
    ) -> Result<Duration> {
        let start = Instant::now();
        stream.write_all(message).await?;
        let mut echo = vec![0; message.len()];
        tokio::time::timeout(deadline, stream.read_exact(&mut echo))
            .await
            .context("no echo in time")??;
        ensure!(echo == message, "echoed {echo:?}");
        Ok(start.elapsed())
    }

    /// Asserts the connection is reset (not closed with a FIN) within [`ARRIVAL`].
    async fn expect_reset(stream: &mut TcpStream) -> Result<()> {
        let outcome = tokio::time::timeout(ARRIVAL, async {
            stream.write_all(b"x").await?;
            let mut byte = [0; 1];
            stream.read(&mut byte).await
        })
        .await
        .context("no reset in time")?;
        match outcome {
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ) =>
            {
                Ok(())
            }
            Err(error) => bail!("expected a reset, got {error}"),
            Ok(read) => bail!("expected a reset, read returned {read}"),
        }
    }

    #[tokio::test]
    async fn delay_holds_each_direction_for_the_delay() -> Result<()> {
        let proxy = proxied_echo().await?;
        let mut open = TcpStream::connect(proxy.address()).await?;
        round_trip(&mut open, b"before", ARRIVAL).await?;

        let delay = Duration::from_millis(150);
        proxy.set_mode(FaultMode::Delay(delay));
        ensure!(proxy.mode() == FaultMode::Delay(delay), "mode not set");
        let took = round_trip(&mut open, b"open", ARRIVAL).await?;
        ensure!(
            took >= 2 * delay,
            "an open connection's round trip took {took:?}"
        );
        let mut new = TcpStream::connect(proxy.address()).await?;
        let took = round_trip(&mut new, b"new", ARRIVAL).await?;
        ensure!(
            took >= 2 * delay,
            "a new connection's round trip took {took:?}"
        );

        proxy.set_mode(FaultMode::Pass);
        round_trip(&mut open, b"after", ARRIVAL).await?;
        Ok(())
    }

    #[tokio::test]
    async fn blackhole_stalls_connections_until_the_mode_changes() -> Result<()> {
        let proxy = proxied_echo().await?;
        let mut open = TcpStream::connect(proxy.address()).await?;
        round_trip(&mut open, b"before", ARRIVAL).await?;

        proxy.set_mode(FaultMode::Blackhole);
        ensure!(
            round_trip(&mut open, b"held", SILENCE).await.is_err(),
            "an open connection got through the blackhole"
        );
        let mut new = TcpStream::connect(proxy.address()).await?;
        ensure!(
            round_trip(&mut new, b"held", SILENCE).await.is_err(),
            "a new connection got through the blackhole"
        );

        proxy.set_mode(FaultMode::Pass);
        let mut fresh = TcpStream::connect(proxy.address()).await?;
        round_trip(&mut fresh, b"fresh", ARRIVAL).await?;
        // The partition healed: what was held is delivered.
        for stream in [&mut open, &mut new] {
            let mut echo = [0; 4];
            tokio::time::timeout(ARRIVAL, stream.read_exact(&mut echo))
                .await
                .context("held bytes not delivered after the blackhole")??;
            ensure!(&echo == b"held", "delivered {echo:?}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn reset_resets_open_and_new_connections() -> Result<()> {
        let proxy = proxied_echo().await?;
        let mut open = TcpStream::connect(proxy.address()).await?;
        round_trip(&mut open, b"before", ARRIVAL).await?;

        proxy.set_mode(FaultMode::Reset);
        expect_reset(&mut open)
            .await
            .context("the open connection")?;
        let mut new = TcpStream::connect(proxy.address()).await?;
        expect_reset(&mut new).await.context("a new connection")?;

        proxy.set_mode(FaultMode::Pass);
        let mut fresh = TcpStream::connect(proxy.address()).await?;
        round_trip(&mut fresh, b"fresh", ARRIVAL).await?;
        Ok(())
    }

    #[tokio::test]
    async fn cut_all_resets_open_connections_only() -> Result<()> {
        let proxy = proxied_echo().await?;
        let mut open = TcpStream::connect(proxy.address()).await?;
        round_trip(&mut open, b"before", ARRIVAL).await?;

        proxy.cut_all();
        expect_reset(&mut open).await?;
        let mut new = TcpStream::connect(proxy.address()).await?;
        round_trip(&mut new, b"after", ARRIVAL).await?;
        Ok(())
    }

    /// A server on `127.0.0.1:0` that writes `tag` to every connection it accepts.
    async fn tagging_server(tag: u8) -> Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = stream.write_all(&[tag]).await;
                    let mut rest = Vec::new();
                    let _ = stream.read_to_end(&mut rest).await;
                });
            }
        });
        Ok(address)
    }

    #[tokio::test]
    async fn a_balancer_spreads_new_connections_round_robin() -> Result<()> {
        let balancer = TcpProxy::balancer().await?;
        let mut refused = TcpStream::connect(balancer.address()).await?;
        expect_reset(&mut refused)
            .await
            .context("a connection before any target is set")?;
        balancer.set_targets(&[tagging_server(1).await?, tagging_server(2).await?]);
        let mut tags = Vec::new();
        for _ in 0..4 {
            let mut stream = TcpStream::connect(balancer.address()).await?;
            let mut tag = [0; 1];
            tokio::time::timeout(ARRIVAL, stream.read_exact(&mut tag))
                .await
                .context("no tag in time")??;
            tags.push(tag[0]);
        }
        ensure!(
            tags == [1, 2, 1, 2] || tags == [2, 1, 2, 1],
            "connections went to {tags:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn url_for_keeps_scheme_credentials_and_path() -> Result<()> {
        let proxy = proxied_echo().await?;
        let at = proxy.address();
        ensure!(proxy.url_for("ws://127.0.0.1:1/ws/abc?x=1") == format!("ws://{at}/ws/abc?x=1"));
        ensure!(
            proxy.url_for("redis://hub:secret@127.0.0.1:1/") == format!("redis://hub:secret@{at}/")
        );
        ensure!(proxy.url_for("http://127.0.0.1:1") == format!("http://{at}"));
        Ok(())
    }
}
