//! Topic actors: one tokio task per live topic owning its [`TopicState`], reached only
//! through a [`TopicHandle`].

mod actor;
mod command;
mod context;
mod handle;
mod settings;
mod state;
mod tracked;

pub(crate) use actor::TopicActor;
pub use actor::TopicExit;
pub use context::{ContentEntry, ContextPointer, OpenContext};
pub use handle::TopicHandle;
pub use settings::TopicSettings;
pub use state::{Effects, Ended, Link, LostConnection, Note, Subscription, TopicState};
