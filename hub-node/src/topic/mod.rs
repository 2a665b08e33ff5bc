//! Topic actors: one tokio task per live topic owning its [`TopicState`], reached only
//! through a [`TopicHandle`].

mod actor;
mod command;
mod context;
mod handle;
mod settings;
mod state;

pub(crate) use actor::TopicActor;
pub use actor::{TopicExit, instant_at, unix_ms, unix_now_ms};
pub use context::CurrentContext;
pub use handle::TopicHandle;
pub use settings::TopicSettings;
pub use state::{
    AttachOutcome, Attachment, DeliveryFailure, Detach, DetachReason, Effects, EndReason, Link,
    LostConnection, Note, Owner, Position, Published, SubscribeCommand, Subscription, TopicState,
    UnixMs,
};
