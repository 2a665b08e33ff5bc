//! Revalidation of this gateway's sockets while its bus link is stalled (TOP-08).
//!
//! A denial (unsubscribe, revocation, expiry) normally reaches the socket's gateway over
//! the bus. While the link does not answer ([`super::bus_health`]), every
//! `--revalidate-interval-ms` the gateway asks each topic's owner, in one call per topic
//! (batches of at most [`REVALIDATE_MAX_ENDPOINTS`]), which of its local endpoints no longer
//! have a subscription, and closes their sockets as the bus denial would: the denial, then
//! 1000. Nothing runs per delivery, and nothing at all while the bus is healthy.
//!
//! An owner that cannot be reached (or answers anything but a list) keeps the sockets
//! open until the next round: failing closed would cut every socket of a gateway whose
//! Redis link stalls, and while the link is stalled no notification can reach them anyway.
//! When it heals, the held messages arrive in topic order, so a socket still open gets its
//! denial before anything published after the unsubscribe.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use fhircast_proto::TopicRef;
use fhircast_proto::hub::REVALIDATE_MAX_ENDPOINTS;

use crate::hub_client::HubClient;
use crate::ws::Fanout;

/// Topics revalidated at once.
const CONCURRENT_TOPICS: usize = 16;

/// Revalidates the sockets of `fanout` every `interval` while `bus_healthy` reads false,
/// until `shutdown`.
pub async fn run(
    fanout: Fanout,
    hub: Arc<dyn HubClient>,
    mut bus_healthy: watch::Receiver<bool>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let healthy = *bus_healthy.borrow_and_update();
        if healthy {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = bus_healthy.changed() => if changed.is_err() { return },
            }
            continue;
        }
        revalidate_all(&fanout, &hub).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
            changed = bus_healthy.changed() => if changed.is_err() { return },
        }
    }
}

/// One round: every topic with local sockets, [`CONCURRENT_TOPICS`] at a time.
async fn revalidate_all(fanout: &Fanout, hub: &Arc<dyn HubClient>) {
    let mut topics = fanout.topics().into_iter();
    let mut running = JoinSet::new();
    loop {
        while running.len() < CONCURRENT_TOPICS {
            let Some(topic) = topics.next() else { break };
            running.spawn(revalidate_topic(fanout.clone(), Arc::clone(hub), topic));
        }
        if running.join_next().await.is_none() {
            return;
        }
    }
}

/// Closes the local sockets of `topic` whose subscriptions ended.
async fn revalidate_topic(fanout: Fanout, hub: Arc<dyn HubClient>, topic: TopicRef) {
    let endpoints = fanout.endpoints(&topic).await;
    for batch in endpoints.chunks(REVALIDATE_MAX_ENDPOINTS) {
        match hub.revalidate(&topic, batch).await {
            Ok(ended) => {
                for ended in ended {
                    info!(
                        topic = %topic,
                        endpoint = %ended.endpoint,
                        "closing a socket whose subscription ended (revalidated with the owner)"
                    );
                    fanout.end(&topic, ended.endpoint, ended.denial);
                }
            }
            Err(err) => {
                debug!(topic = %topic, error = %err, "could not revalidate; retrying next round");
            }
        }
    }
}
