//! The WebSocket channel (2-4, 2-5): the handshake (`upgrade.rs`), the per-topic fan-out
//! of bus envelopes to local sockets (`fanout.rs`), and each socket's one task: its
//! session (`connection.rs`, writing through `outbound.rs`) with its pending acks
//! (`acks.rs`), polling its read side (`reader.rs`, decoding with `inbound.rs`), over the
//! connection's two halves (`halves.rs`).

mod acks;
mod connection;
mod fanout;
mod halves;
mod inbound;
mod outbound;
mod reader;
mod upgrade;

pub use fanout::{CLOSE_RECONNECT, Fanout, FanoutError};
#[doc(hidden)]
pub use reader::{InboundTrace, read_inbound};
pub use upgrade::upgrade;
