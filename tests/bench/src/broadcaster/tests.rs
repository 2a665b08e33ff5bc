//! The broadcaster over real sockets: two raw WebSocket clients on a topic, one on another,
//! a publish reaching exactly the first two as the same text frame.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::server::{Topics, serve};

async fn ws_connect(addr: std::net::SocketAddr, topic: &str) -> Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    let req = format!(
        "GET /ws/{topic} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
        s.read_exact(&mut byte).await?;
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    ensure!(text.starts_with("HTTP/1.1 101"), "{text}");
    Ok(s)
}

async fn publish(addr: std::net::SocketAddr, topic: &str, body: &str) -> Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    let req = format!(
        "POST /publish/{topic} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn publish_reaches_the_topic_only() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener, Arc::new(Topics::default())));
    let mut a = ws_connect(addr, "t1").await?;
    let mut b = ws_connect(addr, "t1").await?;
    let mut other = ws_connect(addr, "t2").await?;
    // Joined before the 101: a publish right after it reaches every socket.
    let answer = publish(addr, "t1", "hello").await?;
    ensure!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    for s in [&mut a, &mut b] {
        let mut frame = [0u8; 7];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut frame)).await??;
        assert_eq!(&frame, b"\x81\x05hello");
    }
    let mut one = [0u8; 1];
    let nothing = tokio::time::timeout(Duration::from_millis(200), other.read(&mut one)).await;
    assert!(nothing.is_err(), "t2 got a frame");
    server.abort();
    Ok(())
}
