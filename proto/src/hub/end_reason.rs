//! Why a subscription ended: the reason a denial carries and the operator's log names.

/// Why a subscription ended; the reason goes into the denial and the operator's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EndReason {
    /// The subscriber unsubscribed.
    Unsubscribed,
    /// The lease (or the token it was capped by) ran out.
    LeaseExpired,
    /// The subscriber let acknowledgements time out (2-5: unresponsive subscribers are
    /// unsubscribed).
    Unresponsive,
    /// The endpoint was never connected within the attach window.
    AttachWindowPassed,
    /// The socket closed and nobody attached again within the re-attach window.
    ReattachWindowPassed,
    /// The socket closed and endpoints are single-use (re-attach window 0).
    ConnectionClosed,
    /// An administrator revoked the topic (the session ended).
    Revoked,
}

impl EndReason {
    /// Returns the `hub.reason` of the denial.
    pub fn denial_reason(self) -> &'static str {
        match self {
            Self::Unsubscribed => "unsubscribed",
            Self::LeaseExpired => "the lease expired",
            Self::Unresponsive => "the subscriber did not acknowledge events in time",
            Self::AttachWindowPassed => "the endpoint was not connected in time",
            Self::ReattachWindowPassed => "the connection was not resumed in time",
            Self::ConnectionClosed => "the connection closed; subscribe again",
            Self::Revoked => "the session ended",
        }
    }

    /// Returns a short name for logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Unsubscribed => "unsubscribed",
            Self::LeaseExpired => "lease_expired",
            Self::Unresponsive => "unresponsive",
            Self::AttachWindowPassed => "attach_window_passed",
            Self::ReattachWindowPassed => "reattach_window_passed",
            Self::ConnectionClosed => "connection_closed",
            Self::Revoked => "revoked",
        }
    }
}
