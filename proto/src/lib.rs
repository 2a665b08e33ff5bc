//! The FHIRcast contract shared by every fhircast-hub process.
//!
//! No I/O and no tasks live here: only the shapes that cross a process boundary and the
//! rules every process must apply identically. The gRPC client and server generated in
//! [`wire`] are driven by the processes, which own the connections.
//!
//! # Layout
//!
//! - [`event_name`]: event-name grammar and canonical case; [`fhir`]: R4 resource types.
//! - [`event`]: the event request envelope and the notification encoding.
//! - [`validate`]: context keys and anchors; [`bundle`]: content-sharing update Bundles.
//! - [`subscription`]: subscribe and unsubscribe requests.
//! - [`channel`]: confirmation, denial and acknowledgement messages of the WebSocket.
//! - [`derive`]: hub-generated open events and the no-duplicates delivery rule.
//! - [`sync_error`]: hub-generated SyncError OperationOutcomes.
//! - [`scope`]: SMART `fhircast/` scopes; [`discovery`]: the `.well-known` document.
//! - [`ids`]: topics, topic refs and endpoint ids; [`json`]: strict JSON parsing;
//!   [`limits`]: the configurable input limits the parsers apply.
//! - [`topic_strength`]: how guessable a topic supplied from outside is (TOP-02).
//! - [`bus`]: the envelope topics publish for gateways; [`error`]: error codes.
//! - [`hub`]: the `HubClient` vocabulary: what gateways ask of a topic's owner.
//! - [`placement`]: which hub node should own a topic; [`redis_schema`]: every Redis key
//!   and Lua script of the cluster.
//! - [`wire`]: the cluster's gRPC and bus messages (`fhircast.hub.v1`) and their
//!   conversions to and from [`hub`] and [`bus`].

pub mod bundle;
pub mod bus;
pub mod channel;
pub mod derive;
pub mod discovery;
pub mod error;
pub mod event;
pub mod event_name;
pub mod fhir;
pub mod hub;
pub mod ids;
pub mod json;
pub mod limits;
pub mod placement;
pub mod redis_schema;
pub mod scope;
pub mod subscription;
pub mod sync_error;
pub mod topic_strength;
pub mod validate;
pub mod wire;

pub use error::{ErrorCode, ValidationError};
pub use event_name::{EventKind, EventName};
pub use ids::{EndpointId, TopicId, TopicKey, TopicRef};
