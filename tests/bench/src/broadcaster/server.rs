//! The hyper http1 server: upgrades, per-socket writer tasks with bounded queues and
//! coalesced writes, and the publish endpoint.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::frame::text_frame;

/// Frames a socket may have queued before it is dropped as too slow.
pub const QUEUE_FRAMES: usize = 1024;
/// Frames written in one coalesced write at most.
const BATCH_FRAMES: usize = 256;

/// Topic name to the senders of its sockets (keyed by socket id).
#[derive(Debug, Default)]
pub struct Topics {
    next_id: AtomicU64,
    map: Mutex<HashMap<String, HashMap<u64, mpsc::Sender<Bytes>>>>,
}

impl Topics {
    fn join(&self, topic: &str, tx: mpsc::Sender<Bytes>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut map) = self.map.lock() {
            map.entry(topic.to_owned()).or_default().insert(id, tx);
        }
        id
    }

    fn leave(&self, topic: &str, id: u64) {
        if let Ok(mut map) = self.map.lock()
            && let Some(set) = map.get_mut(topic)
        {
            set.remove(&id);
            if set.is_empty() {
                map.remove(topic);
            }
        }
    }

    /// Queues `frame` on every socket of `topic`; drops sockets whose queue is full.
    fn publish(&self, topic: &str, frame: &Bytes) {
        if let Ok(mut map) = self.map.lock()
            && let Some(set) = map.get_mut(topic)
        {
            set.retain(|_, tx| tx.try_send(frame.clone()).is_ok());
        }
    }
}

/// Accepts connections until the process is stopped.
pub async fn serve(listener: TcpListener, topics: Arc<Topics>) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let topics = Arc::clone(&topics);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(req, Arc::clone(&topics)));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

fn status(code: StatusCode) -> Response<Empty<Bytes>> {
    let mut resp = Response::new(Empty::new());
    *resp.status_mut() = code;
    resp
}

async fn handle(
    mut req: Request<Incoming>,
    topics: Arc<Topics>,
) -> anyhow::Result<Response<Empty<Bytes>>> {
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET
        && let Some(topic) = path.strip_prefix("/ws/")
    {
        let (resp, fut) = fastwebsockets::upgrade::upgrade(&mut req)?;
        let topic = topic.to_owned();
        // Joined before the 101 is sent, so a publish right after it is not missed: frames
        // wait in the queue until the socket is ready.
        let (tx, rx) = mpsc::channel::<Bytes>(QUEUE_FRAMES);
        let id = topics.join(&topic, tx);
        tokio::spawn(async move {
            if let Ok(ws) = fut.await {
                // The upgraded connection is the TCP stream hyper was given: take it back
                // and split it into owned halves (no lock between reads and writes).
                match ws
                    .into_inner()
                    .into_inner()
                    .downcast::<TokioIo<TcpStream>>()
                {
                    Ok(parts) => {
                        let (reader, writer) = parts.io.into_inner().into_split();
                        run_socket(reader, writer, rx).await;
                    }
                    Err(upgraded) => {
                        let (reader, writer) = tokio::io::split(TokioIo::new(upgraded));
                        run_socket(reader, writer, rx).await;
                    }
                }
            }
            topics.leave(&topic, id);
        });
        return Ok(resp);
    }
    if req.method() == Method::POST
        && let Some(topic) = path.strip_prefix("/publish/")
    {
        let body = req.into_body().collect().await?.to_bytes();
        topics.publish(topic, &text_frame(&body));
        return Ok(status(StatusCode::ACCEPTED));
    }
    Ok(status(StatusCode::NOT_FOUND))
}

/// Writes queued frames (coalesced) and discards whatever the client sends, until either
/// side closes or the socket is dropped from its topic (queue full).
async fn run_socket<R, W>(mut reader: R, mut writer: W, mut rx: mpsc::Receiver<Bytes>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let write = async {
        let mut batch = Vec::with_capacity(BATCH_FRAMES);
        let mut buf = Vec::new();
        loop {
            if rx.recv_many(&mut batch, BATCH_FRAMES).await == 0 {
                return;
            }
            // One frame is written as it is (the shared bytes, no copy); several are
            // coalesced into one buffer, reused, and one write.
            let written = if let [frame] = batch.as_slice() {
                writer.write_all(frame).await
            } else {
                buf.clear();
                for frame in &batch {
                    buf.extend_from_slice(frame);
                }
                writer.write_all(&buf).await
            };
            batch.clear();
            if written.is_err() {
                return;
            }
        }
    };
    let read = async {
        let mut sink = vec![0u8; 4096];
        while let Ok(n) = reader.read(&mut sink).await {
            if n == 0 {
                return;
            }
        }
    };
    tokio::select! {
        () = write => {}
        () = read => {}
    }
}
