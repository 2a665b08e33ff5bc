//! The health of the gateway's bus link: a PING on the subscriber's own connection every
//! [`PING_EVERY`], answered within [`PING_TIMEOUT`] or the link counts as stalled.
//!
//! A link that drops is noticed by the connection itself (its subscriptions end, and the
//! fan-out resubscribes and backfills). A link that stalls without a reset (a partition, a
//! host gone without a FIN) is not: nothing arrives and nothing fails. Redis answers a
//! PING on the subscriber connection after every message it pushed before it, so an
//! answered PING proves the link was at most one round trip behind; while PINGs go
//! unanswered the link is reported unhealthy and [`super::revalidation`] asks the topics'
//! owners directly which sockets are still subscribed. When the stall heals, the held
//! messages arrive in order (a denial before anything published after it), so nothing
//! needs to be backfilled.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::bus::RedisBus;

/// How often the subscriber connection is pinged.
pub const PING_EVERY: Duration = Duration::from_secs(1);
/// How long a PING may take before the link counts as stalled.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// Pings the bus until `shutdown`; the receiver reads `true` while the link answers.
pub fn watch(bus: RedisBus, shutdown: CancellationToken) -> watch::Receiver<bool> {
    let (healthy, receiver) = watch::channel(true);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PING_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let answered = matches!(
                tokio::time::timeout(PING_TIMEOUT, bus.ping()).await,
                Ok(Ok(()))
            );
            let changed = healthy.send_if_modified(|was| {
                let changed = *was != answered;
                *was = answered;
                changed
            });
            if changed && answered {
                info!("bus link to Redis answers again");
            } else if changed {
                warn!(
                    "bus link to Redis does not answer; revalidating this gateway's sockets \
                     with their topics' owners until it does"
                );
            }
        }
    });
    receiver
}
