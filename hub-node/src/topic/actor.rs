//! The topic actor's run loop: one task per live topic, the only owner of its
//! [`TopicState`]. It applies one command at a time (which is what makes the topic's order
//! total), commits each change before replying, and never awaits another actor or a socket.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::command::{Reply, TopicCommand};
use fhircast_proto::ValidationError;
use fhircast_proto::hub::{Caller, TopicRecord, UnixMs, instant_at, unix_now_ms};

use super::state::{Effects, Note, TopicState};
use crate::high_water::{HighWater, Mark, restart_after_rollback};
use crate::store::{Fence, Store, StoreError};
use fhircast_proto::hub::TopicError;

/// Why an actor ended, logged once when it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicExit {
    /// It held nothing and saw no command for the idle period.
    Idle,
    /// Nobody was subscribed and no command came for the retention period, though
    /// contexts were still open (an abandoned session).
    Abandoned,
    /// Every handle was dropped.
    AllHandlesDropped,
    /// The process is shutting down.
    Shutdown,
    /// A commit failed (store unavailable or ownership lost): the in-memory state may
    /// differ from the store's, so the actor stops and the next command reloads.
    Lost,
    /// Its lease could not be renewed in time, or another node took the topic: it stops
    /// serving before anyone else may (self-fencing).
    Fenced,
}

/// The ownership lease of a topic whose store makes them lapse: renewed at a third of its
/// length, trusted only until its length minus a safety margin has passed since the
/// renewal that was last confirmed.
struct Lease {
    length: Duration,
    valid_until: Instant,
    next_renewal: Instant,
}

impl Lease {
    fn new(length: Duration) -> Self {
        let now = Instant::now();
        Self {
            length,
            valid_until: now + length.mul_f32(0.8),
            next_renewal: now + length / 3,
        }
    }

    fn renew_at(&self) -> Instant {
        self.next_renewal
    }

    fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }
}

pub(crate) struct TopicActor {
    pub(crate) state: TopicState,
    /// Boxed commands: the mailbox allocates a block of 32 slots up front, and a command
    /// inline is a few hundred bytes (an event), for every idle topic.
    pub(crate) mailbox: mpsc::Receiver<Box<TopicCommand>>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) fence: Fence,
    pub(crate) shutdown: CancellationToken,
    pub(crate) idle_stop: Duration,
    pub(crate) retention: Duration,
    /// Where this node's commits of the topic reached, kept after the actor stops.
    pub(crate) high_water: Arc<HighWater>,
    /// The last position the store acknowledged (the loaded one at first).
    pub(crate) committed: Mark,
    /// What the admin API recorded of the topic (minted for, revoked).
    pub(crate) record: Option<TopicRecord>,
}

impl TopicActor {
    pub(crate) async fn run(mut self) -> TopicExit {
        let mut last_command = Instant::now();
        let mut lease = self
            .store
            .lease_ms()
            .map(|ms| Lease::new(Duration::from_millis(ms)));
        let exit = loop {
            let wake = self.next_wake(last_command);
            let renew_at = lease.as_ref().map_or(wake, Lease::renew_at);
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break TopicExit::Shutdown,
                () = sleep_until(renew_at), if lease.is_some() => {
                    if let Some(lease) = lease.as_mut()
                        && let Err(exit) = Box::pin(self.renew(lease)).await
                    {
                        break exit;
                    }
                }
                command = self.mailbox.recv() => {
                    let Some(command) = command else { break TopicExit::AllHandlesDropped };
                    last_command = Instant::now();
                    if lease.as_ref().is_some_and(|lease| !lease.is_valid()) {
                        // Self-fencing: a lease that may have lapsed serves nothing.
                        (*command).refuse(TopicError::Unavailable);
                        break TopicExit::Fenced;
                    }
                    // Boxed: an idle actor keeps only its waits, not a command's state.
                    if Box::pin(self.handle(*command)).await.is_err() {
                        break TopicExit::Lost;
                    }
                }
                () = sleep_until(wake) => {
                    let effects = self.state.expire(unix_now_ms());
                    if Box::pin(self.commit(effects)).await.is_err() {
                        break TopicExit::Lost;
                    }
                    if let Some(exit) = self.should_stop(last_command) {
                        break exit;
                    }
                }
            }
        };
        let topic = self.state.topic().topic_ref();
        // Recorded before the mailbox closes: the next actor of this topic may load as soon
        // as it is closed, and compares what it loads with this mark.
        match exit {
            TopicExit::Idle | TopicExit::Abandoned => self.high_water.forget(topic),
            _ => self.high_water.record(topic, self.committed),
        }
        self.mailbox.close();
        // A topic that held nothing, or was abandoned, is forgotten by the store too; any
        // other exit keeps its state for the next owner.
        let given_up = match exit {
            TopicExit::Idle | TopicExit::Abandoned => self.store.forget(topic, self.fence).await,
            _ => self.store.release(topic, self.fence).await,
        };
        if let Err(err) = given_up {
            warn!(topic = %self.state.topic(), error = %err, "could not release topic ownership");
        }
        debug!(topic = %self.state.topic(), exit = ?exit, "topic actor stopped");
        exit
    }

    /// Renews the lease; `Err` with the exit when the topic must stop being served.
    async fn renew(&mut self, lease: &mut Lease) -> Result<(), TopicExit> {
        let started = Instant::now();
        let topic = self.state.topic().topic_ref().clone();
        match self.store.renew(&topic, self.fence).await {
            Ok(true) => {
                lease.valid_until = started + lease.length.mul_f32(0.8);
                lease.next_renewal = started + lease.length / 3;
                Ok(())
            }
            Ok(false) => {
                warn!(topic = %self.state.topic(), "another node took the topic; this node stops serving it");
                Err(TopicExit::Fenced)
            }
            Err(err) if lease.is_valid() => {
                debug!(topic = %self.state.topic(), error = %err, "lease renewal failed; retrying");
                lease.next_renewal = Instant::now() + lease.length / 10;
                Ok(())
            }
            Err(err) => {
                warn!(topic = %self.state.topic(), error = %err, "lease could not be renewed in time; this node stops serving the topic");
                Err(TopicExit::Fenced)
            }
        }
    }

    /// Returns why the actor should stop now, if it should: nobody is subscribed and no
    /// command came for the idle period (nothing held) or the retention period (contexts
    /// still open: an abandoned session).
    fn should_stop(&self, last_command: Instant) -> Option<TopicExit> {
        let quiet = last_command.elapsed();
        match self.stop_after() {
            Some(period) if quiet >= period && self.state.is_idle() => Some(TopicExit::Idle),
            Some(period) if quiet >= period => Some(TopicExit::Abandoned),
            _ => None,
        }
    }

    /// How long without commands stops this topic; never while it holds endpoints.
    fn stop_after(&self) -> Option<Duration> {
        if self.state.holds_endpoints() {
            None
        } else if self.state.is_idle() {
            Some(self.idle_stop)
        } else {
            Some(self.retention)
        }
    }

    /// The next moment the actor has timed work: an expiry, or the stop check. Each is in
    /// the future or acted upon, so the loop never spins.
    fn next_wake(&self, last_command: Instant) -> Instant {
        let expiry = self.state.next_expiry().map(instant_at);
        let stop_check = self.stop_after().map(|period| last_command + period);
        match (expiry, stop_check) {
            (Some(expiry), Some(stop)) => expiry.min(stop),
            (Some(at), None) | (None, Some(at)) => at,
            (None, None) => Instant::now() + Duration::from_secs(3600),
        }
    }

    async fn handle(&mut self, command: TopicCommand) -> Result<(), ()> {
        let now = unix_now_ms();
        // Whatever fell due since the last timer (a command may arrive before the timer
        // fires) is applied first, so every command sees the topic as it is at `now`.
        let due = self.state.expire(now);
        self.commit(due).await?;
        match command {
            TopicCommand::Subscribe { command, reply } => {
                let result = self
                    .permit(&command.caller())
                    .and_then(|()| self.state.subscribe(command, now));
                self.finish(result, reply).await
            }
            TopicCommand::Unsubscribe {
                endpoint,
                caller,
                reply,
            } => {
                let result = self
                    .permit(&caller)
                    .and_then(|()| self.state.unsubscribe(&endpoint, &caller.owner, now));
                self.finish(result.map(|effects| ((), effects)), reply)
                    .await
            }
            TopicCommand::Attach {
                endpoint,
                gateway,
                reply,
            } => {
                let result = self.state.attach(&endpoint, &gateway, now);
                self.finish(result, reply).await
            }
            TopicCommand::GatewaysGone { gateways } => {
                let effects = self
                    .state
                    .gateways_gone(|gateway| gateways.contains(gateway), now);
                self.commit(effects).await
            }
            TopicCommand::Publish {
                event,
                poster,
                reply,
            } => {
                let result = self
                    .permit(&poster)
                    .and_then(|()| self.state.publish(event, &poster.owner));
                self.finish(result, reply).await
            }
            TopicCommand::CurrentContext { caller, reply } => {
                let result = self.permit(&caller).map(|()| self.state.current_context());
                let _ = reply.send(result);
                Ok(())
            }
            TopicCommand::Mint { user, reply } => self.mint(user, now, reply).await,
            TopicCommand::Revoke { reply } => {
                let Ok(record) = self.revoke_record(now).await else {
                    let _ = reply.send(Err(TopicError::Unavailable));
                    return Err(());
                };
                let (ended, effects) = self.state.revoke(now);
                self.finish(Ok(((record, ended), effects)), reply).await
            }
            TopicCommand::ReportFailure {
                endpoint,
                report,
                reply,
            } => {
                let effects = self.state.report_failure(&endpoint, report, now);
                self.finish(Ok(((), effects)), reply).await
            }
            TopicCommand::Detach {
                endpoint,
                detach,
                reply,
            } => {
                let effects = self.state.detach(&endpoint, detach, now);
                self.finish(Ok(((), effects)), reply).await
            }
            TopicCommand::Revalidate { endpoints, reply } => {
                let _ = reply.send(Ok(self.state.revalidate(&endpoints)));
                Ok(())
            }
        }
    }

    /// Refuses a caller the topic's record does not permit, exactly as the gateway refuses
    /// a topic the token does not name (AUZ-04: no oracle).
    fn permit(&self, caller: &Caller) -> Result<(), TopicError> {
        if TopicRecord::permits(self.record.as_ref(), caller) {
            Ok(())
        } else {
            Err(TopicRecord::refusal())
        }
    }

    /// Records the topic as minted for `user`; a topic that already has a record (minted
    /// or revoked) is refused.
    async fn mint(
        &mut self,
        user: String,
        now: UnixMs,
        reply: Reply<TopicRecord>,
    ) -> Result<(), ()> {
        if self.record.is_some() {
            let refusal = ValidationError::conflict("the topic was already minted or revoked");
            let _ = reply.send(Err(refusal.into()));
            return Ok(());
        }
        let record = TopicRecord {
            topic: self.state.topic().expose().to_owned(),
            user: Some(user),
            minted_at: Some(now),
            revoked_at: None,
        };
        if self.store_record(&record).await.is_err() {
            let _ = reply.send(Err(TopicError::Unavailable));
            return Err(());
        }
        self.record = Some(record.clone());
        let _ = reply.send(Ok(record));
        Ok(())
    }

    /// Marks the record revoked (once: a second revocation keeps the first time) and stores
    /// it before any subscription ends, so a reloaded topic refuses too.
    async fn revoke_record(&mut self, now: UnixMs) -> Result<TopicRecord, ()> {
        let mut record = self.record.clone().unwrap_or_else(|| TopicRecord {
            topic: self.state.topic().expose().to_owned(),
            ..TopicRecord::default()
        });
        if record.revoked_at.is_none() {
            record.revoked_at = Some(now);
            self.store_record(&record).await?;
            info!(topic = %self.state.topic(), "topic revoked");
        }
        self.record = Some(record.clone());
        Ok(record)
    }

    async fn store_record(&self, record: &TopicRecord) -> Result<(), ()> {
        let topic = self.state.topic().topic_ref();
        self.store
            .put_record(topic, self.fence, record)
            .await
            .map_err(|err| {
                warn!(topic = %self.state.topic(), error = %err, "could not store the topic record; stopping the topic");
            })
    }

    /// Commits a command's effects, then replies: nothing is acknowledged before the
    /// store has it (DESIGN §7, P1).
    async fn finish<T>(
        &mut self,
        result: Result<(T, Effects), TopicError>,
        reply: Reply<T>,
    ) -> Result<(), ()> {
        match result {
            Ok((value, effects)) => {
                if self.commit(effects).await.is_err() {
                    let _ = reply.send(Err(TopicError::Unavailable));
                    return Err(());
                }
                let _ = reply.send(Ok(value));
                Ok(())
            }
            Err(err) => {
                let _ = reply.send(Err(err));
                Ok(())
            }
        }
    }

    async fn commit(&mut self, mut effects: Effects) -> Result<(), ()> {
        let notes = std::mem::take(&mut effects.notes);
        let change = self.state.take_change(effects);
        if change.is_empty() {
            self.log_notes(&notes);
            return Ok(());
        }
        let topic = self.state.topic().topic_ref().clone();
        match self.store.commit(&topic, self.fence, change).await {
            Ok(()) => {
                self.committed = Mark::of(&self.state);
                self.log_notes(&notes);
                Ok(())
            }
            Err(StoreError::RolledBack { stored_seq }) => {
                let stored = Mark {
                    epoch: self.committed.epoch,
                    seq: stored_seq,
                };
                let _ = restart_after_rollback(
                    self.store.as_ref(),
                    self.state.topic(),
                    self.fence,
                    stored,
                    self.committed,
                )
                .await;
                Err(())
            }
            Err(err) => {
                warn!(topic = %self.state.topic(), error = %err, "commit failed; stopping the topic");
                Err(())
            }
        }
    }

    /// One info line for everything the topic did on its own (an operator must be able to
    /// tell why a subscriber was cut or a SyncError raised): refs, ids and reasons only.
    fn log_notes(&self, notes: &[Note]) {
        let topic = self.state.topic();
        for note in notes {
            match note {
                Note::Ended {
                    endpoint,
                    client,
                    reason,
                } => info!(
                    topic = %topic,
                    endpoint = %endpoint,
                    client = %client,
                    reason = reason.label(),
                    "hub ended a subscription"
                ),
                Note::SyncError {
                    endpoint,
                    client,
                    event_name,
                    failure,
                } => info!(
                    topic = %topic,
                    endpoint = %endpoint,
                    client = %client,
                    event = %event_name,
                    failure = failure.label(),
                    "hub raised a SyncError"
                ),
                Note::Forgotten { endpoint, client } => info!(
                    topic = %topic,
                    endpoint = %endpoint,
                    client = %client,
                    "forgot an ended endpoint early to stay within the per-topic bounds"
                ),
            }
        }
    }
}
