//! The mailbox vocabulary of a topic actor: one variant per operation, each with a
//! `reply` oneshot.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::oneshot;

use fhircast_proto::EndpointId;
use fhircast_proto::event::EventRequest;

use fhircast_proto::hub::TopicError;
use fhircast_proto::hub::{
    AttachOutcome, CurrentContext, DeliveryFailure, Detach, Owner, Published, SubscribeCommand,
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
        reply: Reply<()>,
    },
    Attach {
        endpoint: EndpointId,
        gateway: String,
        reply: Reply<AttachOutcome>,
    },
    /// These gateways left the cluster; no reply.
    GatewaysGone {
        gateways: Arc<BTreeSet<String>>,
    },
    Publish {
        event: EventRequest,
        poster: Owner,
        reply: Reply<Published>,
    },
    CurrentContext {
        reply: Reply<CurrentContext>,
    },
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
            Self::CurrentContext { reply } => drop(reply.send(Err(err))),
            Self::GatewaysGone { .. } => {}
        }
    }
}
