//! The HTTP listener: our own accept loop around hyper, because the hub must bound what a
//! client can hold open (axum's `serve` has neither a header timeout nor a connection
//! cap): request headers must arrive within the header-read timeout, at most
//! `max_connections` connections are open at once (beyond that a client gets a plain 503
//! and the connection is closed), and on shutdown the loop stops accepting and asks every
//! connection to finish gracefully. HTTP/1.1 only, served by hyper's HTTP/1 server itself:
//! the WebSocket upgrade needs HTTP/1.1, the header timeout stays in force on every
//! connection, and an upgraded connection hands back the very stream accepted here
//! ([`ClientIo`]) for the socket to split without a lock.
//!
//! With TLS ([`crate::tls`]), each accepted connection completes its handshake within the
//! header-read timeout in its own task (a slow handshake never holds the accept loop), then
//! is served like a plain one.
//!
//! A connection's slot ([`ConnectionPermit`]) travels in each request's extensions; a
//! WebSocket takes it along, so a socket keeps its slot for as long as it lives.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hub_node::telemetry::LogThrottle;
use hyper::body::Incoming;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tracing::{info, warn};

use crate::http::PeerAddr;

/// What a refused connection is told before it is closed.
const AT_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\nretry-after: 1\r\nconnection: close\r\n\
content-length: 53\r\n\r\nthe hub is at its connection limit, retry in a moment\n";
/// How long writing that answer may take.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a failed accept (e.g. out of file descriptors), so the loop never spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A client connection as hyper serves it: plain TCP, or TLS terminated here. The
/// WebSocket upgrade takes it back ([`crate::ws`]) to split it without a lock.
pub(crate) type ClientIo = TokioIo<Either<TcpStream, tokio_rustls::server::TlsStream<TcpStream>>>;

/// Limits of the listener.
#[derive(Clone, Copy, Debug)]
pub struct ListenerSettings {
    /// Longest time a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Most connections open at once (HTTP and WebSocket together).
    pub max_connections: usize,
}

/// A connection's slot under the connection cap; released when the last holder drops it.
#[derive(Clone, Debug)]
pub struct ConnectionPermit {
    _slot: Arc<OwnedSemaphorePermit>,
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` is cancelled; then
/// stops accepting and asks open connections to finish, waiting at most `grace` for them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ListenerSettings,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    // Connections until they end or are upgraded (then the socket is the gateway's).
    let connections = TaskTracker::new();
    let refusals = RefusalLog::default();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let (stream, peer) = stream;
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            refusals.note(settings.max_connections);
            tokio::spawn(refuse(stream));
            continue;
        };
        let permit = ConnectionPermit {
            _slot: Arc::new(permit),
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(permit.clone());
            request.extensions_mut().insert(PeerAddr(peer));
            router.clone().oneshot(request)
        });
        let (builder, stop, tls) = (builder.clone(), shutdown.clone(), tls.clone());
        let handshake_timeout = settings.header_read_timeout;
        // Errors here are the client's (reset, failed handshake, header timeout): nothing
        // to do but drop the connection.
        connections.spawn(async move {
            let stream = match tls {
                None => Either::Left(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => Either::Right(stream),
                        _ => return,
                    }
                }
            };
            let io: ClientIo = TokioIo::new(stream);
            let connection = builder.serve_connection(io, service).with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop.cancelled() => {
                    // Finish the request in flight, then close.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        warn!("HTTP connections were still open when the grace period ended");
    }
}

/// Answers a connection beyond the cap with a 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(AT_CAPACITY).await?;
        stream.shutdown().await
    })
    .await;
}

/// Logs refusals at the connection cap at most once a second, with a count, so a flood
/// cannot flood the log.
#[derive(Debug, Default)]
struct RefusalLog(LogThrottle);

impl RefusalLog {
    fn note(&self, cap: usize) {
        if let Some(also) = self.0.admit() {
            info!(
                status = 503,
                max_connections = cap,
                also_refused = also,
                "refused a connection: at the connection limit"
            );
        }
    }
}
