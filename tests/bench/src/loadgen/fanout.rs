//! `fanout` (S1, S4, S5): M subscribers on each of T topics, then one step per rate: a
//! warm-up and a measured window of open-loop publishes, a drain until every expected
//! delivery arrived (or a bound), and the step's figures. Stepping stops once p99 exceeds
//! `--stop-p99-ms` or anything is lost. With `--idle-seconds` an `idle` step first gives
//! the memory per idle subscription; with `--stall N`, N more subscribers stop reading at
//! the start of each step and whether the hub cut them is reported.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::cli::FanoutArgs;
use super::connect::{Connected, Planned, connect_all, plan_subscribers};
use super::latency;
use super::ledger::{Ledger, Socket, SocketIo, lock};
use super::publisher::{PhaseStats, Publisher, Schedule};
use super::receive::Acks;
use super::resources::{self, kernel_tcp_pages};
use super::{Run, Unusable, output};
use crate::results::{Deliveries, Idle, Stalled};

/// Longest wait for the last deliveries of a step.
const DRAIN: Duration = Duration::from_secs(5);
/// How long resumed stalled subscribers get to find out whether they were cut.
const CUT_CHECK: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(20);

pub async fn run(run: &mut Run, args: FanoutArgs) -> Result<bool> {
    let topics = args.topics.max(1);
    let per_topic = args.subscribers_per_topic;
    let Planned {
        tokens,
        plans,
        ledger,
        shared,
    } = plan_subscribers(run, topics, per_topic, topics * per_topic, acks(&args)).await?;
    let rss_before = run.watch.rss();
    let tcp_before = kernel_tcp_pages();
    let connected = connect_all(
        &shared,
        plans,
        args.connect_in_flight,
        run.left(),
        run.common.quiet,
    )
    .await;
    let connect = connected.connect();
    let mut ok = connect.failed == 0;
    let mut connect_notes = vec![format!(
        "{topics} topic(s) x {per_topic} subscribers: {} bound, {} failed, {:.0} bound/s, connect p99 {:.1} ms",
        connect.bound,
        connect.failed,
        connect.per_s,
        connect.latency_us.p99 as f64 / 1000.0
    )];
    connect_notes.extend(
        connected
            .errors
            .iter()
            .map(|e| format!("subscribe failed: {e}")),
    );
    if !run.common.quiet {
        eprintln!("{}", connect_notes.join("; "));
    }
    if connect.bound == 0 && per_topic > 0 {
        connected.abort();
        return Err(Unusable(format!(
            "no subscription could be bound: {}",
            connect_notes.join("; ")
        ))
        .into());
    }

    if let Some(idle_seconds) = args.idle_seconds {
        let wait = Duration::from_secs_f64(idle_seconds.max(0.0)).min(run.left());
        tokio::time::sleep(wait).await;
        let rss_after = run.watch.rss();
        let tcp_after = kernel_tcp_pages();
        let mut step = run.step("S4", "idle");
        step.duration_s = wait.as_secs_f64();
        step.connect = Some(connect.clone());
        step.idle = Some(Idle {
            subscriptions: connect.bound,
            rss_before_bytes: rss_before,
            rss_after_bytes: rss_after,
            bytes_per_subscription: (rss_after as f64 - rss_before as f64)
                / (connect.bound.max(1) as f64),
            kernel_tcp_pages: tcp_after,
        });
        if let (Some(before), Some(after)) = (tcp_before, tcp_after) {
            step.notes.push(format!(
                "kernel TCP memory grew by {} pages",
                after as i64 - before as i64
            ));
        }
        step.notes.extend(connect_notes.iter().cloned());
        if run.watch.is_empty() {
            step.notes
                .push("no --watch-pid: RSS figures are 0".to_owned());
        }
        run.output.step(step)?;
    }

    let publisher = Arc::new(Publisher::new(
        &run.target,
        tokens
            .iter()
            .map(|t| (t.name.clone(), t.publisher.clone()))
            .collect(),
        args.payload_bytes,
        run.http.clone(),
        ledger.clone(),
    ));
    let default_scenario = if args.stall > 0 { "S5" } else { "S1" };
    for (index, &rate) in args.rates.iter().enumerate() {
        if run.left() < Duration::from_millis(500) {
            break;
        }
        let phase = (index + 1) as u32;
        let stalled = stall(&connected, &ledger, args.stall);
        let stall_started = Instant::now();
        let io_before = ledger.io();
        let stats = Arc::new(PhaseStats::default());
        let label = format!("{rate}/s");
        let progress = (!run.common.quiet)
            .then(|| output::progress(label.clone(), ledger.clone(), stats.clone(), phase));
        let schedule = Schedule {
            rate,
            warmup: Duration::from_secs_f64(args.warmup_seconds.max(0.0)),
            measured: Duration::from_secs_f64(args.step_seconds.max(0.1)),
            phase,
            connections: args.publish_connections,
        };
        let started = Instant::now();
        let publishing = {
            let (publisher, stats, deadline) = (publisher.clone(), stats.clone(), run.deadline);
            tokio::spawn(async move {
                publisher
                    .open_loop(schedule, deadline, stats, started)
                    .await
            })
        };
        tokio::time::sleep_until((started + schedule.warmup).into()).await;
        let sample = run.watch.sample();
        let _ = publishing.await;
        let measured_end = (started + schedule.warmup + schedule.measured).min(run.deadline);
        let measured_s = measured_end
            .saturating_duration_since(started + schedule.warmup)
            .as_secs_f64();
        // Drain: until every expected delivery is in, DRAIN passes, or time is up.
        let drain_until = Instant::now() + DRAIN.min(run.left());
        while Instant::now() < drain_until && ledger.received(phase) < ledger.expected(phase) {
            tokio::time::sleep(POLL).await;
        }
        let tally = ledger.tally(phase);
        if let Some(progress) = progress {
            progress.abort();
        }
        let mut step = run.step(default_scenario, &label);
        step.offered_publishes_per_s = Some(rate);
        step.duration_s = measured_s;
        let publishes = stats.publishes(measured_s);
        step.resources = Some(run.watch.resources(&sample, tally.received));
        step.notes.extend(run.watch.pinned_note(&sample));
        step.deliveries = Some(Deliveries {
            expected: tally.expected,
            received: tally.received,
            lost: tally.lost,
            duplicated: tally.duplicated,
            reordered: tally.reordered,
            per_s: if measured_s > 0.0 {
                tally.received as f64 / measured_s
            } else {
                0.0
            },
        });
        let merged = ledger.latency.merged(phase);
        let latency = latency::summary(&merged);
        if let Some(note) = stats.refusal_note() {
            step.notes
                .push(format!("publishes refused or failed: {note}"));
        }
        if tally.unaccepted > 0 {
            step.notes.push(format!(
                "{} deliveries of publishes not answered 2xx",
                tally.unaccepted
            ));
        }
        if publishes.sent < stats.offered.load(Ordering::Relaxed) {
            step.notes
                .push("the step was cut short by --max-seconds".to_owned());
        }
        if index == 0 {
            step.notes.extend(connect_notes.iter().cloned());
        }
        other_frames(&ledger, &mut step.notes);
        step.notes.push(socket_io(&ledger.io().since(&io_before)));
        if !stalled.is_empty() {
            let cut = resume(&connected, &ledger, &stalled).await;
            step.stalled = Some(Stalled {
                count: stalled.len() as u64,
                cut,
                within_s: stall_started.elapsed().as_secs_f64(),
            });
            let after: u64 = stalled
                .iter()
                .map(|&index| lock(&ledger.subscribers[index]).excluded_received)
                .sum();
            step.notes.push(format!(
                "{} subscribers excluded from accounting (stalled in this or an earlier step); they had received {} events by the drain; this step's stalled ones {after} once resumed",
                tally.excluded_subscribers, tally.excluded_received
            ));
            other_frames(&ledger, &mut step.notes);
        }
        let step_ok = tally.lost == 0
            && tally.duplicated == 0
            && tally.reordered == 0
            && publishes.failed == 0
            && tally.expected > 0;
        if tally.expected == 0 {
            step.notes
                .push("nothing was expected: no publish accepted or no subscriber".to_owned());
        }
        ok &= step_ok;
        step.publishes = Some(publishes);
        step.latency_us = Some(latency.clone());
        run.output.step(step)?;
        if tally.lost > 0 || latency.p99 as f64 > args.stop_p99_ms * 1000.0 {
            if !run.common.quiet {
                eprintln!(
                    "{label}: stopping (p99 {:.1} ms, {} lost)",
                    latency.p99 as f64 / 1000.0,
                    tally.lost
                );
            }
            break;
        }
    }
    connected.abort();
    let _ = resources::kernel_tcp_pages;
    Ok(ok)
}

/// Makes `count` bound subscribers that never stalled stop reading; returns them.
fn stall(connected: &Connected, ledger: &Ledger, count: usize) -> Vec<usize> {
    let mut chosen = Vec::new();
    for (index, sub) in ledger.subscribers.iter().enumerate() {
        if chosen.len() >= count {
            break;
        }
        let mut sub = lock(sub);
        if sub.socket == Socket::Bound && !sub.excluded {
            sub.excluded = true;
            connected.controls[index]
                .stall
                .store(true, Ordering::Release);
            chosen.push(index);
        }
    }
    chosen
}

/// Lets stalled subscribers read again; returns how many found their socket closed by
/// the hub within [`CUT_CHECK`].
async fn resume(connected: &Connected, ledger: &Ledger, stalled: &[usize]) -> u64 {
    for &index in stalled {
        connected.controls[index]
            .stall
            .store(false, Ordering::Release);
        connected.controls[index].resume.notify_one();
    }
    let closed = || {
        stalled
            .iter()
            .filter(|&&index| matches!(lock(&ledger.subscribers[index]).socket, Socket::Closed(_)))
            .count() as u64
    };
    let until = Instant::now() + CUT_CHECK;
    while Instant::now() < until && closed() < stalled.len() as u64 {
        tokio::time::sleep(POLL).await;
    }
    closed()
}

/// The subscribers' ack policy.
fn acks(args: &FanoutArgs) -> Acks {
    Acks {
        enabled: !args.no_ack,
        hold: Duration::from_micros(args.ack_hold_us),
    }
}

/// The generator's own work per notification in a step (warm-up and drain included).
fn socket_io(io: &SocketIo) -> String {
    let per = |count: u64, per: u64| count as f64 / per.max(1) as f64;
    format!(
        "subscriber sockets: {} notifications in {} reads ({:.2} per read), {} acks in {} writes ({:.2} per write)",
        io.notifications,
        io.reads,
        per(io.notifications, io.reads),
        io.acks,
        io.writes,
        per(io.acks, io.writes)
    )
}

fn other_frames(ledger: &Ledger, notes: &mut Vec<String>) {
    let other = &ledger.other;
    let (denials, sync_errors, others, pings) = (
        other.denials.load(Ordering::Relaxed),
        other.sync_errors.load(Ordering::Relaxed),
        other.other.load(Ordering::Relaxed),
        other.pings.load(Ordering::Relaxed),
    );
    if denials + sync_errors + others + pings > 0 {
        notes.push(format!(
            "hub frames that are not our events so far: {denials} denials, {sync_errors} SyncErrors, {others} other, {pings} pings"
        ));
    }
}
