//! The vocabulary of the `HubClient` seam (DESIGN §3): what a gateway asks of a topic's
//! owner and what it gets back, whether the owner runs in the same process (embedded) or
//! on a hub node reached over gRPC (cluster). The wire forms live in `crate::wire`.
//!
//! - [`subscribe`]: subscribe commands, owners, publish outcomes.
//! - [`access`]: the caller of a request, and what the admin API recorded of a topic.
//! - [`attach`]: attaching a socket, delivery failures, detaches.
//! - [`end_reason`]: why a subscription ended.
//! - [`current_context`]: Get Current Context.
//! - [`revalidate`]: which of a gateway's endpoints ended.
//! - [`error`]: what any call can fail with.
//! - [`time`]: wall-clock milliseconds shared by every process.

pub mod access;
pub mod attach;
pub mod current_context;
pub mod end_reason;
pub mod error;
pub mod revalidate;
pub mod subscribe;
pub mod time;

pub use access::{Caller, TOPIC_NOT_PERMITTED, TopicRecord};
pub use attach::{AttachOutcome, Attachment, DeliveryFailure, Detach, DetachReason, Position};
pub use current_context::CurrentContext;
pub use end_reason::EndReason;
pub use error::TopicError;
pub use revalidate::{EndedEndpoint, REVALIDATE_MAX_ENDPOINTS};
pub use subscribe::{Owner, Published, SubscribeCommand};
pub use time::{UnixMs, instant_at, unix_ms, unix_now_ms};
