//! `fhircast-listen <hub.channel.endpoint> [status]`: connect to a FHIRcast WebSocket
//! endpoint, print every message the hub sends, and acknowledge each notification with
//! `{"id","status"}` (200 unless another status is given). A developer's stethoscope for
//! the walkthrough in the README.

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(endpoint) = args.next() else {
        bail!("usage: fhircast-listen <hub.channel.endpoint> [ack status, default 200]");
    };
    let status: u16 = match args.next() {
        Some(text) => text.parse().context("the ack status must be a number")?,
        None => 200,
    };
    let (mut socket, _) = tokio_tungstenite::connect_async(endpoint.trim())
        .await
        .context("could not connect (unknown, expired or already used endpoint?)")?;
    eprintln!("connected; waiting for messages (Ctrl-C to stop)");
    while let Some(message) = socket.next().await {
        match message.context("the connection failed")? {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_else(|_| text.to_string())
                );
                if let Some(id) = value.get("id").and_then(Value::as_str) {
                    let ack = json!({"id": id, "status": status}).to_string();
                    socket
                        .send(Message::text(ack))
                        .await
                        .context("could not acknowledge")?;
                }
            }
            Message::Close(frame) => {
                match frame {
                    Some(frame) => eprintln!(
                        "closed by the hub: {} {}",
                        u16::from(frame.code),
                        frame.reason
                    ),
                    None => eprintln!("closed by the hub"),
                }
                break;
            }
            _ => {}
        }
    }
    Ok(())
}
