//! Report rendering from a few synthetic steps.

use super::figures::headline;
use super::header::{RaisedLimit, RunHeader, RunOutcome};
use super::markdown::{Plots, num, render};
use super::svg::{decades, ticks};
use super::*;
use crate::results::{Deliveries, Idle, Latency, Resources, StepResult};

fn s1(target: &str, rate: f64, per_s: f64, lost: u64, p99_us: u64, cpu: f64) -> StepResult {
    StepResult {
        target: target.into(),
        scenario: "S1".into(),
        step: format!("{rate}/s"),
        offered_publishes_per_s: Some(rate),
        duration_s: 4.0,
        deliveries: Some(Deliveries {
            expected: (rate * 1000.0 * 4.0) as u64,
            received: (per_s * 4.0) as u64,
            lost,
            per_s,
            ..Deliveries::default()
        }),
        latency_us: Some(Latency {
            count: 10,
            p50: p99_us / 2,
            p90: p99_us,
            p99: p99_us,
            p999: p99_us,
            max: p99_us,
        }),
        resources: Some(Resources {
            sut_cpu_ms: 100.0,
            sut_cores: 0.5,
            sut_cpu_ms_per_1k: Some(cpu),
            sut_rss_bytes: 10 << 20,
            loadgen_cores: 0.3,
        }),
        ..StepResult::default()
    }
}

fn idle(target: &str, bytes: f64) -> StepResult {
    StepResult {
        target: target.into(),
        scenario: "S4".into(),
        step: "idle".into(),
        duration_s: 3.0,
        idle: Some(Idle {
            subscriptions: 10_000,
            rss_before_bytes: 1,
            rss_after_bytes: 2,
            bytes_per_subscription: bytes,
            kernel_tcp_pages: Some(42),
        }),
        notes: vec!["a | pipe".into()],
        ..StepResult::default()
    }
}

fn steps() -> Vec<StepResult> {
    vec![
        s1("limit", 20.0, 20_000.0, 0, 2_000, 1.0),
        s1("limit", 100.0, 100_000.0, 0, 5_000, 0.8),
        s1("limit", 300.0, 250_000.0, 12, 900_000, 0.7),
        s1("embedded", 20.0, 20_000.0, 0, 8_000, 4.0),
        s1("embedded", 100.0, 50_000.0, 0, 60_000, 3.0),
        idle("limit", 4000.0),
        idle("embedded", 20_000.0),
    ]
}

fn header() -> RunHeader {
    RunHeader {
        kind: "header".into(),
        date: "2026-12-04".into(),
        started_at: "2026-12-04T11:00:00Z".into(),
        wall_seconds: 200.0,
        git_commit: "abc123".into(),
        limits_raised: vec![RaisedLimit {
            applies_to: "gateways".into(),
            flag: "--rate-limit-per-second".into(),
            default: "100".into(),
            value: "0 (unlimited)".into(),
        }],
        runs: vec![RunOutcome {
            target: "cluster".into(),
            scenario: "S2".into(),
            command: "fanout --topics 5000".into(),
            outcome: "failed".into(),
            exit_code: None,
            seconds: 100.0,
            steps: 0,
            detail: Some("killed past its 100 s budget".into()),
        }],
        ..RunHeader::default()
    }
}

#[test]
fn headline_figures() {
    let steps = steps();
    let limit = headline("limit", &steps);
    // 300/s lost deliveries: the highest good step is 100/s.
    let max = limit.max_deliveries_per_s.clone();
    assert_eq!(max.as_ref().map(|f| f.value), Some(100_000.0));
    assert_eq!(max.map(|f| f.step), Some("100/s".into()));
    assert_eq!(limit.p99_ms.map(|f| f.value), Some(2.0));
    assert_eq!(limit.cpu_ms_per_1k.map(|f| f.value), Some(1.0));
    let embedded = headline("embedded", &steps);
    // 100/s has p99 of 60 ms: only 20/s counts.
    assert_eq!(
        embedded.max_deliveries_per_s.map(|f| f.value),
        Some(20_000.0)
    );
    assert_eq!(embedded.idle_bytes_per_sub.map(|f| f.value), Some(20_000.0));
    assert_eq!(
        headline("cluster", &steps),
        super::figures::Headline {
            target: "cluster".into(),
            ..Default::default()
        }
    );
}

#[test]
fn markdown_tables() {
    let plots = Plots {
        latency: "l.svg".into(),
        deliveries: "d.svg".into(),
        memory: "m.svg".into(),
    };
    let md = render(&header(), &steps(), &plots);
    // Headline: embedded deliveries/s is 0.2 of the limit's, its p99 4× the limit's.
    assert!(md.contains("| figure | limit | embedded |"), "{md}");
    assert!(md.contains("20000 (20/s), 0.200× limit"), "{md}");
    assert!(md.contains("8.00 (20/s), 4.00× limit"), "{md}");
    assert!(md.contains("20000, 5.00× limit"), "{md}");
    // No cluster in this run.
    assert!(md.contains("Not both measured in this run."));
    // S1 table has latency and delivery columns but no connect ones; S4 has idle ones.
    assert!(
        md.contains("| target | step | offered pub/s | s | expected |"),
        "{md}"
    );
    assert!(!md.contains("bound/attempted"));
    assert!(md.contains("| limit | idle |"), "{md}");
    assert!(md.contains("a \\| pipe"), "pipes escaped: {md}");
    assert!(md.contains("## S3: ") && md.contains("No steps."));
    assert!(md.contains("killed past its 100 s budget"));
    assert!(md.contains("`--rate-limit-per-second`"));
    assert!(md.contains("![p99 latency vs offered deliveries/s (S1)](l.svg)"));
    assert!(md.contains("Unpinned (no reason recorded)"));
}

#[test]
fn svg_plots() {
    let (latency, deliveries, memory) = plots(&steps());
    let l = latency.render();
    assert!(l.starts_with("<svg") && l.trim_end().ends_with("</svg>"));
    assert_eq!(l.matches("<polyline").count(), 2, "one line per target");
    assert_eq!(l.matches("<circle").count(), 5, "one point per S1 step");
    assert!(l.contains(">limit</text>") && l.contains(">embedded</text>"));
    let d = deliveries.render();
    assert!(d.contains("stroke-dasharray"), "the y = x line");
    let m = memory.render();
    assert_eq!(m.matches("<rect").count(), 3, "background and two bars");
    let empty = plots(&[]).0.render();
    assert!(empty.contains("no data"));
}

#[test]
fn axis_ticks_and_numbers() {
    assert_eq!(ticks(9.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
    assert_eq!(ticks(250_000.0).last().copied(), Some(250_000.0));
    assert_eq!(decades(0.5, 900.0), vec![0.1, 1.0, 10.0, 100.0, 1000.0]);
    assert_eq!(num(1234.4), "1234");
    assert_eq!(num(0.25), "0.250");
    assert_eq!(num(f64::NAN), "–");
}

#[test]
fn writes_every_file() -> anyhow::Result<()> {
    let dir = crate::orchestrate::process::TempDir::new()?;
    let written = write(dir.path(), &header(), &steps())?;
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&written.json)?)?;
    let arr = json.as_array().map(Vec::len);
    assert_eq!(arr, Some(8), "header and seven steps");
    assert_eq!(json[0]["kind"], "header");
    assert_eq!(
        std::fs::read_to_string(&written.latest)?,
        std::fs::read_to_string(&written.markdown)?
    );
    assert_eq!(written.plots.len(), 3);
    assert!(dir.path().join("2026-12-04-memory.svg").exists());
    Ok(())
}
