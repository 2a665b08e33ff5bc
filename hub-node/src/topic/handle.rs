//! [`TopicHandle`]: the only way to talk to a topic. Cloneable; every call is a bounded
//! `try_send` (a full mailbox is `Overloaded`, never an unbounded queue) and a oneshot
//! reply.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use fhircast_proto::event::EventRequest;
use fhircast_proto::{EndpointId, TopicId};

use super::command::{Reply, TopicCommand};
use fhircast_proto::hub::TopicError;
use fhircast_proto::hub::{
    AttachOutcome, Caller, CurrentContext, DeliveryFailure, Detach, EndedEndpoint, Published,
    SubscribeCommand, TopicRecord,
};

/// A cloneable handle to a running topic actor.
#[derive(Clone, Debug)]
pub struct TopicHandle {
    topic: TopicId,
    mailbox: mpsc::Sender<Box<TopicCommand>>,
}

impl TopicHandle {
    pub(crate) fn new(topic: TopicId, mailbox: mpsc::Sender<Box<TopicCommand>>) -> Self {
        Self { topic, mailbox }
    }

    /// Returns the topic.
    pub fn topic(&self) -> &TopicId {
        &self.topic
    }

    /// Returns true once the actor has stopped.
    pub fn is_stopped(&self) -> bool {
        self.mailbox.is_closed()
    }

    /// Creates or re-requests a subscription; returns its endpoint.
    pub async fn subscribe(&self, command: SubscribeCommand) -> Result<EndpointId, TopicError> {
        self.call(|reply| TopicCommand::Subscribe { command, reply })
            .await
    }

    /// Cancels a subscription `caller` created.
    pub async fn unsubscribe(
        &self,
        endpoint: EndpointId,
        caller: Caller,
    ) -> Result<(), TopicError> {
        self.call(|reply| TopicCommand::Unsubscribe {
            endpoint,
            caller,
            reply,
        })
        .await
    }

    /// Attaches a socket held by gateway `gateway` to an endpoint (or learns that its
    /// subscription ended).
    pub async fn attach(
        &self,
        endpoint: EndpointId,
        gateway: String,
    ) -> Result<AttachOutcome, TopicError> {
        self.call(|reply| TopicCommand::Attach {
            endpoint,
            gateway,
            reply,
        })
        .await
    }

    /// Tells the topic that these gateways left the cluster: their sockets are gone. Waits
    /// for room in the mailbox (this must not be lost), never for the topic to act.
    pub async fn gateways_gone(&self, gateways: Arc<BTreeSet<String>>) {
        let _ = self
            .mailbox
            .send(Box::new(TopicCommand::GatewaysGone { gateways }))
            .await;
    }

    /// Publishes an event from `poster`; returns after the change is committed.
    pub async fn publish(
        &self,
        event: EventRequest,
        poster: Caller,
    ) -> Result<Published, TopicError> {
        self.call(|reply| TopicCommand::Publish {
            event,
            poster,
            reply,
        })
        .await
    }

    /// Returns the current context.
    pub async fn current_context(&self, caller: Caller) -> Result<CurrentContext, TopicError> {
        self.call(|reply| TopicCommand::CurrentContext { caller, reply })
            .await
    }

    /// Records the topic as minted for `user`.
    pub async fn mint(&self, user: String) -> Result<TopicRecord, TopicError> {
        self.call(|reply| TopicCommand::Mint { user, reply }).await
    }

    /// Revokes the topic; returns its record and how many subscriptions ended.
    pub async fn revoke(&self) -> Result<(TopicRecord, usize), TopicError> {
        self.call(|reply| TopicCommand::Revoke { reply }).await
    }

    /// Reports a failed delivery.
    pub async fn report_failure(
        &self,
        endpoint: EndpointId,
        report: DeliveryFailure,
    ) -> Result<(), TopicError> {
        self.call(|reply| TopicCommand::ReportFailure {
            endpoint,
            report,
            reply,
        })
        .await
    }

    /// Reports that a socket went away.
    pub async fn detach(&self, endpoint: EndpointId, detach: Detach) -> Result<(), TopicError> {
        self.call(|reply| TopicCommand::Detach {
            endpoint,
            detach,
            reply,
        })
        .await
    }

    /// Returns which of `endpoints` have no subscription, each with its denial.
    pub async fn revalidate(
        &self,
        endpoints: Vec<EndpointId>,
    ) -> Result<Vec<EndedEndpoint>, TopicError> {
        self.call(|reply| TopicCommand::Revalidate { endpoints, reply })
            .await
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> TopicCommand,
    ) -> Result<T, TopicError> {
        let (reply, reply_rx) = oneshot::channel();
        self.mailbox
            .try_send(Box::new(command(reply)))
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => TopicError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => TopicError::Stopped,
            })?;
        reply_rx.await.map_err(|_| TopicError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use fhircast_proto::{ErrorCode, TopicKey};

    use super::*;

    #[tokio::test]
    async fn a_full_mailbox_answers_overloaded_which_is_a_503_with_retry_after() {
        let topic = TopicId::parse("mailbox-test-topic-0123456789", &TopicKey::random())
            .expect("valid topic");
        // A mailbox of one that nobody reads: the first command waits in it.
        let (sender, _mailbox) = mpsc::channel(1);
        let handle = TopicHandle::new(topic, sender);
        let waiting = tokio::spawn({
            let handle = handle.clone();
            async move { handle.current_context(Caller::default()).await }
        });
        while handle.mailbox.capacity() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = handle.current_context(Caller::default()).await;
        assert_eq!(refused, Err(TopicError::Overloaded));
        assert_eq!(TopicError::Overloaded.code(), ErrorCode::Unavailable);
        assert_eq!(TopicError::Overloaded.code().http_status(), 503);
        waiting.abort();
    }
}
