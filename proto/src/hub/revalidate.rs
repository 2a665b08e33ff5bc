//! Revalidation: a gateway asks a topic's owner which of the endpoints it holds sockets
//! for no longer have a subscription. It is how an unsubscribe still closes a socket when
//! the gateway's bus (the usual carrier of the denial) is stalled.

use bytes::Bytes;

use crate::ids::EndpointId;

/// Most endpoints one revalidation may name; a gateway with more sends several.
pub const REVALIDATE_MAX_ENDPOINTS: usize = 1024;

/// An endpoint whose subscription ended, and the denial its socket sends before closing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndedEndpoint {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// The encoded denial (a WebSocket text frame payload).
    pub denial: Bytes,
}
