//! WebSocket side of a FHIRcast client: attach to an endpoint, read messages, answer events.
//!
//! A background task owns the socket. It reads continuously, answers every event
//! notification according to the current [`Ack`] mode (by default `{"id":…,"status":200}`)
//! so the hub never sees a slow subscriber just because a test is busy elsewhere, and queues
//! what it read for the test to take with [`Subscriber::next_message`]. Close frames and the
//! end of the stream are queued too, in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

/// The longest a test may wait to show that nothing arrives.
pub const MAX_SILENCE: Duration = Duration::from_millis(500);
/// How long the task waits for the hub's answer to a client close before dropping TCP.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// How the subscriber answers event notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// `{"id":…,"status":N}` with a numeric status.
    Status(u16),
    /// `{"id":…,"status":"…"}` with a string status.
    StatusString(String),
    /// No answer at all.
    Silent,
}

/// One thing read from the socket, in arrival order.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// A text frame holding JSON.
    Message(Value),
    /// A close frame from the hub (its code, if any).
    Closed(Option<u16>),
    /// The stream ended (after a close, or abruptly), with a description.
    Ended(String),
}

#[derive(Debug)]
enum Command {
    Send(Message),
    Close(u16),
    Drop,
}

/// Why a WebSocket handshake failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The hub answered the upgrade with this HTTP status.
    Refused(u16),
    /// Anything else (I/O, protocol).
    Other(anyhow::Error),
}

/// A connected subscriber socket.
#[derive(Debug)]
pub struct Subscriber {
    endpoint: String,
    incoming: mpsc::UnboundedReceiver<Incoming>,
    commands: mpsc::UnboundedSender<Command>,
    ack: Arc<Mutex<Ack>>,
    confirmation: Value,
}

impl Subscriber {
    /// Opens the WebSocket at `endpoint`.
    pub async fn try_connect(endpoint: &str) -> Result<Self, ConnectError> {
        let connector = crate::certs::websocket_connector();
        let connected =
            tokio_tungstenite::connect_async_tls_with_config(endpoint, None, false, connector)
                .await;
        let (stream, _response) = match connected {
            Ok(connected) => connected,
            Err(tungstenite::Error::Http(response)) => {
                return Err(ConnectError::Refused(response.status().as_u16()));
            }
            Err(error) => {
                return Err(ConnectError::Other(anyhow!(
                    "connecting to {endpoint}: {error}"
                )));
            }
        };
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let ack = Arc::new(Mutex::new(Ack::Status(200)));
        tokio::spawn(pump(stream, incoming_tx, commands_rx, Arc::clone(&ack)));
        Ok(Self {
            endpoint: endpoint.to_owned(),
            incoming,
            commands,
            ack,
            confirmation: Value::Null,
        })
    }

    /// Opens the WebSocket at `endpoint`, failing on any handshake error.
    pub async fn connect(endpoint: &str) -> Result<Self> {
        Self::try_connect(endpoint)
            .await
            .map_err(|error| match error {
                ConnectError::Refused(status) => {
                    anyhow!("handshake to {endpoint} refused with {status}")
                }
                ConnectError::Other(error) => error,
            })
    }

    /// Connects and reads the confirmation, which must be the first message.
    pub async fn connect_confirmed(endpoint: &str, timeout: Duration) -> Result<Self> {
        let mut subscriber = Self::connect(endpoint).await?;
        let first = subscriber
            .next_message(timeout)
            .await
            .context("waiting for the confirmation")?;
        if first.get("hub.mode").and_then(Value::as_str) != Some("subscribe") {
            bail!("first message is not a confirmation: {first}");
        }
        subscriber.confirmation = first;
        Ok(subscriber)
    }

    /// Returns the endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Returns the confirmation read by [`Subscriber::connect_confirmed`] (null otherwise).
    pub fn confirmation(&self) -> &Value {
        &self.confirmation
    }

    /// Changes how event notifications are answered from now on.
    pub fn set_ack(&self, ack: Ack) {
        if let Ok(mut current) = self.ack.lock() {
            *current = ack;
        }
    }

    /// Sends a raw text frame.
    pub fn send_text(&self, text: &str) -> Result<()> {
        self.commands
            .send(Command::Send(Message::text(text.to_owned())))
            .map_err(|_| anyhow!("socket task has ended"))
    }

    /// Sends a close frame with `code`; the hub's answer is queued as [`Incoming::Closed`].
    pub fn close(&self, code: u16) -> Result<()> {
        self.commands
            .send(Command::Close(code))
            .map_err(|_| anyhow!("socket task has ended"))
    }

    /// Drops the TCP connection without a close frame.
    pub fn drop_connection(&self) {
        let _ = self.commands.send(Command::Drop);
    }

    /// Returns the next queued item, waiting at most `timeout`.
    pub async fn next_incoming(&mut self, timeout: Duration) -> Result<Incoming> {
        match tokio::time::timeout(timeout, self.incoming.recv()).await {
            Ok(Some(item)) => Ok(item),
            Ok(None) => bail!("socket task has ended"),
            Err(_) => bail!("nothing arrived on {} within {timeout:?}", self.endpoint),
        }
    }

    /// Waits for the next queued item, however long it takes; `None` once the socket task
    /// has ended and everything it queued was taken. For a reader that records everything
    /// (see [`crate::faults::Follower`]), not for a test waiting for one message.
    pub async fn recv(&mut self) -> Option<Incoming> {
        self.incoming.recv().await
    }

    /// Returns the next JSON message; a close or the end of the stream is an error.
    pub async fn next_message(&mut self, timeout: Duration) -> Result<Value> {
        match self.next_incoming(timeout).await? {
            Incoming::Message(value) => Ok(value),
            Incoming::Closed(code) => {
                bail!("socket closed by the hub with {code:?} instead of a message")
            }
            Incoming::Ended(why) => bail!("socket ended ({why}) instead of a message"),
        }
    }

    /// Returns the next message and fails unless it is an event notification.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Value> {
        let message = self.next_message(timeout).await?;
        if message.get("event").is_none() {
            bail!("expected an event notification, got {message}");
        }
        Ok(message)
    }

    /// Expects the hub to close the socket next and returns the close code.
    pub async fn expect_close(&mut self, timeout: Duration) -> Result<Option<u16>> {
        match self.next_incoming(timeout).await? {
            Incoming::Closed(code) => Ok(code),
            Incoming::Message(value) => bail!("expected a close, got message {value}"),
            Incoming::Ended(why) => bail!("expected a close frame, the stream ended ({why})"),
        }
    }

    /// Asserts that nothing arrives within `window` (at most [`MAX_SILENCE`]).
    pub async fn expect_silence(&mut self, window: Duration) -> Result<()> {
        let window = window.min(MAX_SILENCE);
        match tokio::time::timeout(window, self.incoming.recv()).await {
            Err(_) => Ok(()),
            Ok(Some(item)) => bail!("expected nothing within {window:?}, got {item:?}"),
            Ok(None) => bail!("socket task ended while expecting silence"),
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        // A polite close, so dropping a subscriber never looks like a crashed client.
        let _ = self.commands.send(Command::Close(1000));
    }
}

/// Answers `message` if it is an event notification and the mode says so.
fn ack_for(message: &Value, ack: &Ack) -> Option<Message> {
    let id = message.get("id")?;
    message.get("event")?;
    let status = match ack {
        Ack::Status(code) => json!(code),
        Ack::StatusString(code) => json!(code),
        Ack::Silent => return None,
    };
    Some(Message::text(
        json!({ "id": id, "status": status }).to_string(),
    ))
}

async fn pump<S>(
    stream: tokio_tungstenite::WebSocketStream<S>,
    incoming: mpsc::UnboundedSender<Incoming>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    ack: Arc<Mutex<Ack>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut frames) = stream.split();
    let mut linger: Option<tokio::time::Instant> = None;
    let mut commands_open = true;
    loop {
        tokio::select! {
            command = commands.recv(), if commands_open => match command {
                Some(Command::Send(message)) => { let _ = sink.send(message).await; }
                Some(Command::Close(code)) => {
                    if linger.is_none() {
                        let frame = CloseFrame { code: code.into(), reason: "".into() };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        linger = Some(tokio::time::Instant::now() + CLOSE_LINGER);
                    }
                }
                Some(Command::Drop) => return,
                None => commands_open = false,
            },
            () = sleep_until(linger) => return,
            frame = frames.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                        let _ = incoming.send(Incoming::Ended(format!("non-JSON text frame `{text}`")));
                        continue;
                    };
                    let answer = ack.lock().ok().and_then(|mode| ack_for(&value, &mode));
                    if let Some(answer) = answer {
                        let _ = sink.send(answer).await;
                    }
                    let _ = incoming.send(Incoming::Message(value));
                }
                Some(Ok(Message::Close(frame))) => {
                    let _ = incoming.send(Incoming::Closed(frame.map(|frame| u16::from(frame.code))));
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    let _ = incoming.send(Incoming::Ended(error.to_string()));
                    return;
                }
                None => {
                    let _ = incoming.send(Incoming::Ended("stream ended".to_owned()));
                    return;
                }
            },
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
