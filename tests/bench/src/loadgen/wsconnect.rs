//! Opening a subscriber socket: TCP from one of the `--source-addrs`, TLS for `wss://`
//! (tokio-rustls, with `--ca-file` or the system roots), then the WebSocket handshake with
//! fastwebsockets' client. The upgraded connection is taken back as the raw stream plus
//! whatever bytes hyper read past the 101 (the confirmation often comes in the same read),
//! so the subscriber's frame loop ([`super::frames`]) owns the socket without extra layers.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::target::Url;

/// A client socket, plain or TLS.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The rustls client configuration for `https://` and `wss://`.
pub fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                let cert: rustls::pki_types::CertificateDer<'static> =
                    cert.with_context(|| format!("parsing {}", path.display()))?;
                roots.add(cert)?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system root rustls cannot use is skipped, as every TLS client does.
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TCP connection to `addr` from `source` (port chosen by the kernel), no Nagle.
///
/// No bind when `source` is the loopback address dialled, which the kernel picks anyway:
/// a bind chooses the port before the destination is known, so it cannot reuse ports
/// held in TIME_WAIT, and after a few runs (tens of thousands of closed connections) each
/// bind scans a crowded range: connects fell from ~5k/s to ~600/s here.
pub async fn tcp(addr: SocketAddr, source: IpAddr) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    let implied = source == addr.ip() && source.is_loopback();
    if source.is_ipv4() == addr.is_ipv4() && !implied {
        socket.bind(SocketAddr::new(source, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Runs hyper's connection futures on the tokio runtime.
#[derive(Clone, Copy, Debug)]
struct SpawnExecutor;

impl<Fut> hyper::rt::Executor<Fut> for SpawnExecutor
where
    Fut: Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    fn execute(&self, fut: Fut) {
        tokio::spawn(fut);
    }
}

/// Connects to a WebSocket URL; returns the stream and the bytes already read past the
/// handshake.
pub async fn connect(
    url: &Url,
    source: IpAddr,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<(Stream, Bytes)> {
    let addr = url.socket_addr()?;
    let tcp = tcp(addr, source)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let stream = if url.tls {
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .with_context(|| format!("{} is not a TLS server name", url.host))?;
        let tls = TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        Stream::Tls(Box::new(tls))
    } else {
        Stream::Plain(tcp)
    };
    let path = if url.path.is_empty() { "/" } else { &url.path };
    let request = hyper::Request::builder()
        .method("GET")
        .uri(path)
        .header(HOST, url.authority())
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header(
            "Sec-WebSocket-Key",
            fastwebsockets::handshake::generate_key(),
        )
        .header("Sec-WebSocket-Version", "13")
        .body(http_body_util::Empty::<Bytes>::new())?;
    let (ws, _response) = fastwebsockets::handshake::client(&SpawnExecutor, request, stream)
        .await
        .map_err(|err| anyhow::anyhow!("WebSocket handshake: {err}"))?;
    let upgraded = ws.into_inner().into_inner();
    match upgraded.downcast::<TokioIo<Stream>>() {
        Ok(parts) => Ok((parts.io.into_inner(), parts.read_buf)),
        Err(_) => bail!("the upgraded connection is not the socket it was opened on"),
    }
}
