//! What a check found: figures per topic and subscriber, violations, and how they print.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use anyhow::{Result, bail};

use super::record::{Outcome, Publish, SocketEnd};

/// A topic's publishes, counted.
#[derive(Debug, Clone, Default)]
pub struct TopicFigures {
    /// The topic.
    pub topic: String,
    /// Every publish.
    pub publishes: usize,
    /// Acknowledged (2xx).
    pub acked: usize,
    /// Refused, by status: (count, how many carried `Retry-After`).
    pub refused: BTreeMap<u16, (usize, usize)>,
    /// No answer.
    pub indeterminate: usize,
}

impl TopicFigures {
    pub(super) fn of(topic: &str, publishes: &[&Publish]) -> Self {
        let mut figures = Self {
            topic: topic.to_owned(),
            publishes: publishes.len(),
            ..Self::default()
        };
        for publish in publishes {
            match &publish.outcome {
                Outcome::Acked(_) => figures.acked += 1,
                Outcome::Refused {
                    status,
                    retry_after,
                } => {
                    let entry = figures.refused.entry(*status).or_default();
                    entry.0 += 1;
                    entry.1 += usize::from(retry_after.is_some());
                }
                Outcome::Indeterminate(_) => figures.indeterminate += 1,
            }
        }
        figures
    }
}

/// One subscriber's deliveries, counted.
#[derive(Debug, Clone, Default)]
pub struct SubscriberFigures {
    /// Its name.
    pub name: String,
    /// Acknowledged events it is due.
    pub due: usize,
    /// Of those, how many arrived.
    pub delivered: usize,
    /// Notifications of an event it had already got.
    pub duplicates: usize,
    /// Due events a 1011 excused ([`Gaps::SupersededAfter1011`]).
    pub excused: usize,
    /// Due events that did not arrive and were not excused.
    pub missing: usize,
    /// SyncError notifications.
    pub sync_errors: usize,
    /// Messages that were neither a confirmation nor an event.
    pub other_messages: usize,
    /// How its sockets ended, except the test's own close.
    pub ends: Vec<SocketEnd>,
    /// How long each reconnect took.
    pub reconnects: Vec<Duration>,
}

/// What [`History::check_state`] found.
#[derive(Debug, Clone, Default)]
pub struct StateFigures {
    /// How many event ids the state holds.
    pub accepted: usize,
    /// Of those, how many were refused with a 5xx or got no answer (applied anyway).
    pub unacked_applied: usize,
    /// I4 violations.
    pub violations: Vec<String>,
}

/// The figures of a check and its violations.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per topic.
    pub topics: Vec<TopicFigures>,
    /// Per subscriber.
    pub subscribers: Vec<SubscriberFigures>,
    /// Per topic whose state was checked.
    pub states: Vec<StateFigures>,
    /// Every violated invariant, one line each.
    pub violations: Vec<String>,
}

impl Report {
    /// Adds the outcome of [`History::check_state`].
    pub fn push_state(&mut self, state: StateFigures) {
        self.violations.extend(state.violations.iter().cloned());
        self.states.push(state);
    }

    /// Fails with every violation (and the figures) if there is any.
    pub fn ensure_ok(&self) -> Result<()> {
        if self.violations.is_empty() {
            return Ok(());
        }
        bail!("{} invariant violations:\n{self}", self.violations.len())
    }

    /// Every subscriber's reconnect times.
    pub fn reconnects(&self) -> Vec<Duration> {
        self.subscribers
            .iter()
            .flat_map(|figures| figures.reconnects.iter().copied())
            .collect()
    }

    /// Duplicates over every subscriber.
    pub fn duplicates(&self) -> usize {
        self.subscribers
            .iter()
            .map(|figures| figures.duplicates)
            .sum()
    }
}

impl fmt::Display for Report {
    /// One line for the publishes, one for the subscribers (summed), one per state, then
    /// one per violation.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for topic in &self.topics {
            let refused: Vec<String> = topic
                .refused
                .iter()
                .map(|(status, (count, retry_after))| {
                    format!("{status}×{count} ({retry_after} with Retry-After)")
                })
                .collect();
            writeln!(
                f,
                "  publishes: {} ({} acknowledged, refused: [{}], {} indeterminate)",
                topic.publishes,
                topic.acked,
                refused.join(", "),
                topic.indeterminate
            )?;
        }
        let sum = |field: fn(&SubscriberFigures) -> usize| {
            self.subscribers.iter().map(field).sum::<usize>()
        };
        let mut ends: BTreeMap<String, usize> = BTreeMap::new();
        for end in self.subscribers.iter().flat_map(|figures| &figures.ends) {
            *ends.entry(end.label()).or_default() += 1;
        }
        let ends: Vec<String> = ends
            .iter()
            .map(|(label, count)| format!("{label}×{count}"))
            .collect();
        writeln!(
            f,
            "  {} subscribers: {}/{} due events delivered, {} duplicates, {} superseded \
             after 1011, {} missing, {} SyncErrors, {} other messages; sockets ended: [{}]; \
             reconnects: {}",
            self.subscribers.len(),
            sum(|figures| figures.delivered),
            sum(|figures| figures.due),
            sum(|figures| figures.duplicates),
            sum(|figures| figures.excused),
            sum(|figures| figures.missing),
            sum(|figures| figures.sync_errors),
            sum(|figures| figures.other_messages),
            ends.join(", "),
            spread(&self.reconnects())
        )?;
        for state in &self.states {
            writeln!(
                f,
                "  state: {} accepted ids ({} of them not acknowledged)",
                state.accepted, state.unacked_applied
            )?;
        }
        for violation in &self.violations {
            writeln!(f, "  VIOLATION {violation}")?;
        }
        Ok(())
    }
}

/// Describes durations as `min/median/max ms (n)`, or `none`.
pub fn spread(values: &[Duration]) -> String {
    if values.is_empty() {
        return "none".to_owned();
    }
    let mut sorted = values.to_vec();
    sorted.sort();
    let ms = |duration: Duration| duration.as_millis();
    format!(
        "{}/{}/{} ms min/median/max ({})",
        ms(sorted[0]),
        ms(sorted[sorted.len() / 2]),
        ms(sorted[sorted.len() - 1]),
        sorted.len()
    )
}
