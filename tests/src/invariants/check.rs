//! The invariants checked against a [`History`]: I1–I3 per subscriber, I4 against the
//! topic's state.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::record::{History, Opening, Publish, SocketEnd, SubscriberLog};
use super::report::{Report, StateFigures, SubscriberFigures, TopicFigures};
use super::{EXAMPLES, Gaps};
use crate::eventually::eventually;

impl History {
    /// Checks I1–I3 for every subscriber and returns the figures and violations.
    pub fn check(&self, gaps: Gaps) -> Report {
        let records = self.records();
        let mut report = Report::default();
        let topics: Vec<&str> = {
            let mut seen = HashSet::new();
            records
                .publishes
                .iter()
                .map(|publish| publish.topic.as_str())
                .chain(records.subscribers.iter().map(|log| log.topic.as_str()))
                .filter(|topic| seen.insert(*topic))
                .collect()
        };
        for topic in topics {
            let publishes: Vec<&Publish> = records
                .publishes
                .iter()
                .filter(|publish| publish.topic == topic)
                .collect();
            report.topics.push(TopicFigures::of(topic, &publishes));
            for log in records.subscribers.iter().filter(|log| log.topic == topic) {
                let (figures, violations) = check_subscriber(log, &publishes, gaps);
                report.subscribers.push(figures);
                report.violations.extend(violations);
            }
        }
        report
    }

    /// Waits until no subscriber misses an acknowledged event (I1 with `gaps`), or
    /// `deadline` passes, and returns [`History::check`] then: the subscribers keep reading
    /// (and reconnecting) meanwhile.
    pub async fn settle(&self, gaps: Gaps, deadline: Duration) -> Report {
        let _ = eventually("every subscriber got what it is due", deadline, || {
            let missing = self
                .check(gaps)
                .subscribers
                .iter()
                .map(|figures| figures.missing)
                .sum::<usize>();
            async move { Ok((missing == 0).then_some(())) }
        })
        .await;
        self.check(gaps)
    }

    /// Checks I4 against the event ids `topic`'s state accepted, oldest first (read after
    /// the publishes ended; the list must not have reached its cap).
    pub fn check_state(&self, topic: &str, accepted: &[String]) -> StateFigures {
        let publishes = self.publishes(topic);
        let by_id: HashMap<&str, &Publish> = publishes
            .iter()
            .map(|publish| (publish.id.as_str(), publish))
            .collect();
        let mut figures = StateFigures {
            accepted: accepted.len(),
            ..StateFigures::default()
        };
        let mut position = HashMap::new();
        let mut twice = Vec::new();
        let mut strangers = Vec::new();
        let mut refused = Vec::new();
        for (at, id) in accepted.iter().enumerate() {
            if position.insert(id.as_str(), at).is_some() {
                twice.push(id.clone());
            }
            match by_id.get(id.as_str()) {
                None => strangers.push(id.clone()),
                Some(publish) if publish.refused_for_good() => refused.push(id.clone()),
                Some(publish) if !publish.acked() => figures.unacked_applied += 1,
                Some(_) => {}
            }
        }
        let acked: Vec<&Publish> = publishes.iter().filter(|p| p.acked()).collect();
        let lost: Vec<String> = acked
            .iter()
            .filter(|publish| !position.contains_key(publish.id.as_str()))
            .map(|publish| publish.id.clone())
            .collect();
        let placed: Vec<(usize, &str)> = acked
            .iter()
            .filter_map(|publish| {
                position
                    .get(publish.id.as_str())
                    .map(|at| (*at, publish.id.as_str()))
            })
            .collect();
        let disordered: Vec<String> = placed
            .windows(2)
            .filter(|pair| pair[1].0 < pair[0].0)
            .map(|pair| format!("{} before {}", pair[1].1, pair[0].1))
            .collect();
        let mut violate = |what: &str, ids: &[String]| {
            if !ids.is_empty() {
                figures.violations.push(format!(
                    "I4 {topic}: {} {what} (e.g. {})",
                    ids.len(),
                    examples(ids)
                ));
            }
        };
        violate("acknowledged events missing from the state", &lost);
        violate("events accepted twice in the state", &twice);
        violate("events in the state that were never published", &strangers);
        violate("events in the state that were refused with a 4xx", &refused);
        violate(
            "acknowledged events out of publish order in the state",
            &disordered,
        );
        figures
    }
}

fn examples(ids: &[String]) -> String {
    let shown: Vec<&str> = ids.iter().take(EXAMPLES).map(String::as_str).collect();
    shown.join(", ")
}

/// Checks one subscriber against its topic's publishes (in publish order).
fn check_subscriber(
    log: &SubscriberLog,
    publishes: &[&Publish],
    gaps: Gaps,
) -> (SubscriberFigures, Vec<String>) {
    let name = &log.name;
    let mut violations = Vec::new();
    let acked: Vec<&Publish> = publishes.iter().copied().filter(|p| p.acked()).collect();
    let index: HashMap<&str, usize> = acked
        .iter()
        .enumerate()
        .map(|(at, publish)| (publish.id.as_str(), at))
        .collect();
    let published: HashMap<&str, &Publish> = publishes
        .iter()
        .map(|publish| (publish.id.as_str(), *publish))
        .collect();

    // I3, duplicates, and the first arrival of each acknowledged event (I2).
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    let mut sync_errors = 0;
    let mut first_arrivals: Vec<(usize, usize)> = Vec::new();
    let mut foreign = Vec::new();
    let mut strangers = Vec::new();
    let mut disordered = Vec::new();
    for notification in &log.notifications {
        if notification.event.eq_ignore_ascii_case("SyncError") {
            sync_errors += 1;
            continue;
        }
        if notification.topic != log.topic {
            foreign.push(format!("{} names {}", notification.id, notification.topic));
        }
        match published.get(notification.id.as_str()) {
            None => strangers.push(notification.id.clone()),
            Some(publish) if publish.refused_for_good() => strangers.push(format!(
                "{} (refused with {:?})",
                notification.id, publish.outcome
            )),
            Some(_) => {}
        }
        if !seen.insert(notification.id.as_str()) {
            duplicates += 1;
            continue;
        }
        if let Some(&at) = index.get(notification.id.as_str()) {
            if let Some(&(last, _)) = first_arrivals.last()
                && at < last
            {
                disordered.push(format!(
                    "#{at} {} after #{last} {}",
                    notification.id, acked[last].id
                ));
            }
            first_arrivals.push((at, notification.socket));
        }
    }
    if !foreign.is_empty() {
        violations.push(format!(
            "I3 {name}: {} notifications for another topic (e.g. {})",
            foreign.len(),
            examples(&foreign)
        ));
    }
    if !strangers.is_empty() {
        violations.push(format!(
            "I3 {name}: {} notifications of events never published to its topic or refused (e.g. {})",
            strangers.len(),
            examples(&strangers)
        ));
    }
    if !disordered.is_empty() {
        violations.push(format!(
            "I2 {name}: {} acknowledged events arrived out of publish order (e.g. {})",
            disordered.len(),
            examples(&disordered)
        ));
    }

    // I1: what it is due, what it got, what a 1011 excuses.
    let since = log.sockets.first().map(|socket| socket.opened);
    let stopped = log.sockets.last().and_then(|socket| match &socket.ended {
        Some((at, SocketEnd::Stopped)) => Some(*at),
        _ => None,
    });
    let due: Vec<usize> = match since {
        None => Vec::new(),
        Some(since) => (0..acked.len())
            .filter(|&at| {
                acked[at].sent >= since && stopped.is_none_or(|stop| acked[at].done <= stop)
            })
            .collect(),
    };
    let excused = if gaps == Gaps::SupersededAfter1011 {
        superseded(log, &acked, &index, &first_arrivals)
    } else {
        HashSet::new()
    };
    let delivered: HashSet<usize> = first_arrivals.iter().map(|(at, _)| *at).collect();
    let missing: Vec<usize> = due
        .iter()
        .copied()
        .filter(|at| !delivered.contains(at) && !excused.contains(at))
        .collect();
    let gap_closes = log
        .sockets
        .iter()
        .filter(|socket| socket.ended.as_ref().is_some_and(|(_, end)| end.is_gap()))
        .count();
    if !missing.is_empty() {
        let ids: Vec<String> = missing
            .iter()
            .map(|&at| format!("#{at} {}", acked[at].id))
            .collect();
        violations.push(format!(
            "I1/I2 {name}: {} of {} acknowledged events it is due never arrived \
             (e.g. {}); its sockets closed with 1011 {gap_closes} times",
            missing.len(),
            due.len(),
            examples(&ids)
        ));
    }
    if let Some(why) = &log.gave_up {
        violations.push(format!("{name} could not reconnect: {why}"));
    }
    if since.is_none() && log.gave_up.is_none() {
        violations.push(format!("{name} never attached"));
    }
    let figures = SubscriberFigures {
        name: name.clone(),
        due: due.len(),
        delivered: due.iter().filter(|at| delivered.contains(at)).count(),
        duplicates,
        excused: due.iter().filter(|at| excused.contains(at)).count(),
        missing: missing.len(),
        sync_errors,
        other_messages: log.other_messages.len(),
        ends: log
            .sockets
            .iter()
            .filter_map(|socket| socket.ended.as_ref().map(|(_, end)| end.clone()))
            .filter(|end| *end != SocketEnd::Stopped)
            .collect(),
        reconnects: log.reconnects().into_iter().map(|(_, took)| took).collect(),
    };
    (figures, violations)
}

/// The acknowledged events (by publish index) a 1011 excuses: for each socket the hub
/// closed with 1011 that was followed by a new subscription, those published after the
/// last event delivered before the close, before the first event delivered on the new
/// subscription, and before the new subscription's socket was attached.
fn superseded(
    log: &SubscriberLog,
    acked: &[&Publish],
    index: &HashMap<&str, usize>,
    first_arrivals: &[(usize, usize)],
) -> HashSet<usize> {
    let mut excused = HashSet::new();
    for (closed, pair) in log.sockets.windows(2).enumerate() {
        let gap = pair[0].ended.as_ref().is_some_and(|(_, end)| end.is_gap());
        if !gap || pair[1].opening != Opening::Resubscribe {
            continue;
        }
        let last_before = first_arrivals
            .iter()
            .filter(|(_, socket)| *socket <= closed)
            .map(|(at, _)| *at)
            .max();
        let first_after = log
            .notifications
            .iter()
            .filter(|notification| notification.socket > closed)
            .find_map(|notification| index.get(notification.id.as_str()).copied());
        let attached = pair[1].opened;
        excused.extend((0..acked.len()).filter(|&at| {
            last_before.is_none_or(|last| at > last)
                && first_after.is_none_or(|first| at < first)
                && acked[at].sent < attached
        }));
    }
    excused
}
