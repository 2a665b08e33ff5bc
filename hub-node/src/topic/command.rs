//! The mailbox vocabulary of a topic actor: one variant per operation, each with a
//! `reply` oneshot.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::oneshot;

use fhircast_proto::EndpointId;
use fhircast_proto::event::EventRequest;

use fhircast_proto::hub::TopicError;
use fhircast_proto::hub::{
    AttachOutcome, Caller, CurrentContext, DeliveryFailure, Detach, EndedEndpoint, Published,
    SubscribeCommand, TopicRecord,
};

/// The reply channel of a command.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, TopicError>>;

/// A request to a topic actor.
#[derive(Debug)]
pub(crate) enum TopicCommand {
    Subscribe {
        command: SubscribeCommand,
        reply: Reply<EndpointId>,
    },
    Unsubscribe {
        endpoint: EndpointId,
        caller: Caller,
        reply: Reply<()>,
    },
    Attach {
        endpoint: EndpointId,
        gateway: String,
        reply: Reply<AttachOutcome>,
    },
    /// These gateways left the cluster; no reply.
    GatewaysGone { gateways: Arc<BTreeSet<String>> },
    Publish {
        event: EventRequest,
        poster: Caller,
        reply: Reply<Published>,
    },
    CurrentContext {
        caller: Caller,
        reply: Reply<CurrentContext>,
    },
    /// Records the topic as minted for `user` (the admin API).
    Mint {
        user: String,
        reply: Reply<TopicRecord>,
    },
    /// Revokes the topic: every subscription ends; replies with the record and how many
    /// subscriptions ended.
    Revoke { reply: Reply<(TopicRecord, usize)> },
    ReportFailure {
        endpoint: EndpointId,
        report: DeliveryFailure,
        reply: Reply<()>,
    },
    Detach {
        endpoint: EndpointId,
        detach: Detach,
        reply: Reply<()>,
    },
    /// Which of these endpoints have no subscription; read-only.
    Revalidate {
        endpoints: Vec<EndpointId>,
        reply: Reply<Vec<EndedEndpoint>>,
    },
}

impl TopicCommand {
    /// Answers the command with `err` without running it.
    pub(crate) fn refuse(self, err: TopicError) {
        match self {
            Self::Subscribe { reply, .. } => drop(reply.send(Err(err))),
            Self::Unsubscribe { reply, .. }
            | Self::ReportFailure { reply, .. }
            | Self::Detach { reply, .. } => drop(reply.send(Err(err))),
            Self::Attach { reply, .. } => drop(reply.send(Err(err))),
            Self::Publish { reply, .. } => drop(reply.send(Err(err))),
            Self::CurrentContext { reply, .. } => drop(reply.send(Err(err))),
            Self::Mint { reply, .. } => drop(reply.send(Err(err))),
            Self::Revoke { reply } => drop(reply.send(Err(err))),
            Self::Revalidate { reply, .. } => drop(reply.send(Err(err))),
            Self::GatewaysGone { .. } => {}
        }
    }
}
