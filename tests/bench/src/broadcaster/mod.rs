//! The bare WebSocket broadcaster: the fastest fan-out this machine allows, with no protocol
//! and no auth. `GET /ws/{topic}` joins a topic at once; `POST /publish/{topic}` writes the
//! body, encoded once as a server text frame, to every socket of the topic.

pub mod frame;
pub mod server;

#[cfg(test)]
mod tests;
