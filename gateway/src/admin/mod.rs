//! The admin API: how an EHR mints a topic for a user, lists topics, and revokes one (which
//! ends every subscription of the topic at once). It is served on its own listener
//! (`--admin-listen`), never on the public one, and takes its own credential
//! (`--admin-token-file`), not an app's token.
//!
//! - `POST /admin/topics` with `{"user": "<sub>"}`: mints a topic of 256 random bits for
//!   the user (201).
//! - `GET /admin/topics[?user=<sub>][&limit=<n>]`: the minted and revoked topics, newest
//!   first.
//! - `DELETE /admin/topics/{topic}`: revokes the topic (minted here or not): its sockets get
//!   a denial and close, and every later request for it is refused as if it never existed.
//!
//! Answers carry raw topics: they are bearer secrets, so the admin API stays on a
//! private network (plaintext only on loopback) and its log lines carry topic refs only.

mod routes;
mod secret;

pub use routes::router;
pub use secret::{AdminSecret, MIN_ADMIN_SECRET_LEN};
