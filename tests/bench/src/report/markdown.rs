//! The Markdown report: the headline table (each figure as a fraction of the limit measured
//! in the same run), the cluster-to-embedded ratios, one table per scenario with every step,
//! then the generator calls, pinning, raised limits, memory and notes.

use std::fmt::Write as _;

use super::figures::{FIGURE_NAMES, Headline, headline, ratio, targets};
use super::header::RunHeader;
use crate::results::StepResult;

/// What each scenario is, in report order.
pub const SCENARIOS: [(&str, &str); 6] = [
    (
        "S1",
        "one topic fanning out to many sockets, stepped publish rate",
    ),
    ("S2", "many small topics, stepped publish rate"),
    (
        "S3",
        "subscription storm: subscribe to bound (`wss`: over TLS)",
    ),
    ("S4", "memory per idle subscription (after S2 connects)"),
    ("S5", "slow consumers: some subscribers stop reading"),
    ("S6", "publishes with no subscribers"),
];

/// The plots the report links, as file names next to it.
#[derive(Debug, Clone)]
pub struct Plots {
    pub latency: String,
    pub deliveries: String,
    pub memory: String,
}

/// A number with about three significant figures.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn ms(us: u64) -> String {
    num(us as f64 / 1000.0)
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

fn header_row(out: &mut String, cells: &[&str]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        cells.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
}

/// Renders the whole report.
pub fn render(header: &RunHeader, steps: &[StepResult], plots: &Plots) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# FHIRcast hub benchmark, {}\n", header.date);
    if header.quick {
        let _ = writeln!(
            out,
            "> **Quick run** (`--quick`): a check of the harness with small counts and short \
             steps; its figures are not measurements.\n"
        );
    }
    let _ = writeln!(
        out,
        "Started {} UTC, {} s wall time, commit `{}`. {} on {} core(s) ({}), kernel {}. \
         Method: [docs/performance.md](../../../docs/performance.md). Raw results: \
         [{}.json]({}.json).\n",
        header.started_at,
        num(header.wall_seconds),
        header.git_commit,
        pinning_sentence(header),
        header.machine.allowed_cpus.len(),
        header.machine.cpu_model,
        header.machine.kernel,
        header.date,
        header.date
    );
    if let (Some(start), Some(end)) = (header.load_1m_start, header.load_1m_end) {
        let _ = writeln!(
            out,
            "1-minute load average: {start:.2} at the start, {end:.2} at the end.\n"
        );
    }
    let targets = targets(steps);
    let heads: Vec<Headline> = targets.iter().map(|t| headline(t, steps)).collect();
    headline_table(&mut out, &heads);
    cluster_table(&mut out, &heads);
    let _ = writeln!(
        out,
        "## Plots\n\n![p99 latency vs offered deliveries/s (S1)]({})\n\n\
         ![delivered vs offered deliveries/s (S1)]({})\n\n\
         ![bytes per idle subscription (S4)]({})\n",
        plots.latency, plots.deliveries, plots.memory
    );
    for (id, what) in SCENARIOS {
        let rows: Vec<&StepResult> = targets
            .iter()
            .flat_map(|t| {
                steps
                    .iter()
                    .filter(move |s| &s.target == t && s.scenario == id)
            })
            .collect();
        let _ = writeln!(out, "## {id}: {what}\n");
        if rows.is_empty() {
            let _ = writeln!(out, "No steps.\n");
        } else {
            scenario_table(&mut out, &rows);
        }
    }
    runs_section(&mut out, header);
    setup_section(&mut out, header);
    out
}

fn pinning_sentence(header: &RunHeader) -> String {
    let p = &header.pinning;
    match (p.pinned, p.sut_core, p.loadgen_core) {
        (true, Some(s), Some(l)) => format!("SUTs pinned to core {s}, load generator to core {l}"),
        _ => format!(
            "Unpinned ({})",
            p.note
                .clone()
                .unwrap_or_else(|| "no reason recorded".into())
        ),
    }
}

fn headline_table(out: &mut String, heads: &[Headline]) {
    let _ = writeln!(
        out,
        "## Headline\n\nEach figure, with its ratio to the same figure of `limit` (the bare \
         broadcaster) measured in this run; the S1 step it was read at in parentheses.\n"
    );
    let mut cols = vec!["figure"];
    cols.extend(heads.iter().map(|h| h.target.as_str()));
    header_row(out, &cols);
    let limit = heads.iter().find(|h| h.target == "limit");
    for (i, (name, more_is_better)) in FIGURE_NAMES.iter().enumerate() {
        let mut cells = vec![format!(
            "{name} ({})",
            if *more_is_better {
                "higher is better"
            } else {
                "lower is better"
            }
        )];
        for h in heads {
            let fig = h.figures()[i];
            let text = match fig {
                None => "–".to_owned(),
                Some(f) => {
                    let mut t = num(f.value);
                    if i < 3 {
                        let _ = write!(t, " ({})", f.step);
                    }
                    if h.target != "limit"
                        && let Some(r) = ratio(fig, limit.and_then(|l| l.figures()[i]))
                    {
                        let _ = write!(t, ", {}× limit", num(r));
                    }
                    t
                }
            };
            cells.push(cell(&text));
        }
        row(out, &cells);
    }
    let _ = writeln!(
        out,
        "\n–: not measured, or (first row) no S1 step had p99 under 50 ms with nothing lost."
    );
    out.push('\n');
}

fn cluster_table(out: &mut String, heads: &[Headline]) {
    let embedded = heads.iter().find(|h| h.target == "embedded");
    let cluster = heads.iter().find(|h| h.target == "cluster");
    let _ = writeln!(out, "## Cluster vs embedded\n");
    let (Some(e), Some(c)) = (embedded, cluster) else {
        let _ = writeln!(out, "Not both measured in this run.\n");
        return;
    };
    header_row(
        out,
        &["figure", "embedded", "cluster", "cluster ÷ embedded"],
    );
    for (i, (name, _)) in FIGURE_NAMES.iter().enumerate() {
        let (fe, fc) = (e.figures()[i], c.figures()[i]);
        row(
            out,
            &[
                (*name).to_owned(),
                fe.map_or("–".into(), |f| num(f.value)),
                fc.map_or("–".into(), |f| num(f.value)),
                ratio(fc, fe).map_or("–".into(), |r| format!("{}×", num(r))),
            ],
        );
    }
    out.push('\n');
}

type Getter = fn(&StepResult) -> Option<String>;

/// Every column a scenario table may have; a column is shown when any row has it.
const COLUMNS: &[(&str, Getter)] = &[
    ("offered pub/s", |s| s.offered_publishes_per_s.map(num)),
    ("s", |s| Some(num(s.duration_s))),
    ("pub sent", |s| {
        s.publishes.as_ref().map(|p| p.sent.to_string())
    }),
    ("pub failed", |s| {
        s.publishes.as_ref().map(|p| p.failed.to_string())
    }),
    ("pub/s", |s| s.publishes.as_ref().map(|p| num(p.per_s))),
    ("pub HTTP p99 ms", |s| {
        s.publishes
            .as_ref()
            .and_then(|p| p.http_latency_us.as_ref())
            .map(|l| ms(l.p99))
    }),
    ("expected", |s| {
        s.deliveries.as_ref().map(|d| d.expected.to_string())
    }),
    ("received", |s| {
        s.deliveries.as_ref().map(|d| d.received.to_string())
    }),
    ("lost", |s| {
        s.deliveries.as_ref().map(|d| d.lost.to_string())
    }),
    ("dup", |s| {
        s.deliveries.as_ref().map(|d| d.duplicated.to_string())
    }),
    ("reord", |s| {
        s.deliveries.as_ref().map(|d| d.reordered.to_string())
    }),
    ("deliv/s", |s| s.deliveries.as_ref().map(|d| num(d.per_s))),
    ("p50 ms", |s| s.latency_us.as_ref().map(|l| ms(l.p50))),
    ("p99 ms", |s| s.latency_us.as_ref().map(|l| ms(l.p99))),
    ("p99.9 ms", |s| s.latency_us.as_ref().map(|l| ms(l.p999))),
    ("max ms", |s| s.latency_us.as_ref().map(|l| ms(l.max))),
    ("bound/attempted", |s| {
        s.connect
            .as_ref()
            .map(|c| format!("{}/{}", c.bound, c.attempted))
    }),
    ("connect failed", |s| {
        s.connect.as_ref().map(|c| c.failed.to_string())
    }),
    ("bound/s", |s| s.connect.as_ref().map(|c| num(c.per_s))),
    ("connect p50 ms", |s| {
        s.connect.as_ref().map(|c| ms(c.latency_us.p50))
    }),
    ("connect p99 ms", |s| {
        s.connect.as_ref().map(|c| ms(c.latency_us.p99))
    }),
    ("stalled", |s| {
        s.stalled.as_ref().map(|x| x.count.to_string())
    }),
    ("cut", |s| s.stalled.as_ref().map(|x| x.cut.to_string())),
    ("cut within s", |s| {
        s.stalled.as_ref().map(|x| num(x.within_s))
    }),
    ("SUT cores", |s| {
        s.resources.as_ref().map(|r| num(r.sut_cores))
    }),
    ("CPU ms/1k", |s| {
        s.resources
            .as_ref()
            .and_then(|r| r.sut_cpu_ms_per_1k)
            .map(num)
    }),
    ("SUT RSS MiB", |s| {
        s.resources
            .as_ref()
            .map(|r| num(r.sut_rss_bytes as f64 / 1_048_576.0))
    }),
    ("loadgen cores", |s| {
        s.resources.as_ref().map(|r| num(r.loadgen_cores))
    }),
    ("idle subs", |s| {
        s.idle.as_ref().map(|i| i.subscriptions.to_string())
    }),
    ("bytes/sub", |s| {
        s.idle.as_ref().map(|i| num(i.bytes_per_subscription))
    }),
    ("kernel TCP pages", |s| {
        s.idle
            .as_ref()
            .and_then(|i| i.kernel_tcp_pages)
            .map(|p| p.to_string())
    }),
    ("notes", |s| {
        (!s.notes.is_empty()).then(|| s.notes.join("; "))
    }),
];

fn scenario_table(out: &mut String, rows: &[&StepResult]) {
    let shown: Vec<&(&str, Getter)> = COLUMNS
        .iter()
        .filter(|(_, get)| rows.iter().any(|r| get(r).is_some()))
        .collect();
    let mut cols = vec!["target", "step"];
    cols.extend(shown.iter().map(|(name, _)| *name));
    header_row(out, &cols);
    for r in rows {
        let mut cells = vec![cell(&r.target), cell(&r.step)];
        cells.extend(
            shown
                .iter()
                .map(|(_, get)| get(r).map_or("–".into(), |v| cell(&v))),
        );
        row(out, &cells);
    }
    out.push('\n');
}

fn runs_section(out: &mut String, header: &RunHeader) {
    let _ = writeln!(out, "## Generator calls\n");
    if header.runs.is_empty() {
        let _ = writeln!(out, "None.\n");
        return;
    }
    header_row(
        out,
        &[
            "target", "scenario", "outcome", "exit", "s", "steps", "command", "detail",
        ],
    );
    for r in &header.runs {
        row(
            out,
            &[
                cell(&r.target),
                cell(&r.scenario),
                cell(&r.outcome),
                r.exit_code.map_or("–".into(), |c| c.to_string()),
                num(r.seconds),
                r.steps.to_string(),
                format!("`{}`", cell(&r.command)),
                cell(r.detail.as_deref().unwrap_or("")),
            ],
        );
    }
    out.push('\n');
}

fn setup_section(out: &mut String, header: &RunHeader) {
    let _ = writeln!(out, "## Pinning\n\n{}.\n", pinning_sentence(header));
    let _ = writeln!(out, "## Limits raised for the run\n");
    if header.limits_raised.is_empty() {
        let _ = writeln!(out, "None.\n");
    } else {
        header_row(out, &["applies to", "flag", "default", "value"]);
        for l in &header.limits_raised {
            row(
                out,
                &[
                    cell(&l.applies_to),
                    format!("`{}`", l.flag),
                    cell(&l.default),
                    cell(&l.value),
                ],
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Memory of the SUT processes (RSS)\n");
    if header.rss.is_empty() {
        let _ = writeln!(out, "None sampled.\n");
    } else {
        header_row(out, &["target", "process", "pid", "ready MiB", "end MiB"]);
        let mib = |b: Option<u64>| b.map_or("–".into(), |b| num(b as f64 / 1_048_576.0));
        for r in &header.rss {
            row(
                out,
                &[
                    cell(&r.target),
                    cell(&r.process),
                    r.pid.to_string(),
                    mib(r.start_bytes),
                    mib(r.end_bytes),
                ],
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Notes\n");
    if header.notes.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for n in &header.notes {
        let _ = writeln!(out, "- {n}");
    }
}
