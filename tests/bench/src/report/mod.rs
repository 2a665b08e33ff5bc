//! The report of a run: `<date>.json` (the [`header::RunHeader`], then every step),
//! `<date>.md` with the tables, three hand-written SVG plots, and `latest.md`, a copy of the
//! newest report under a stable name.

pub mod figures;
pub mod header;
pub mod markdown;
pub mod svg;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::results::StepResult;
use header::RunHeader;
use markdown::Plots;
use svg::{BarChart, LineChart, Series};

/// The files a report was written to.
#[derive(Debug, Clone)]
pub struct Written {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub latest: PathBuf,
    pub plots: Vec<PathBuf>,
}

/// Offered and received deliveries/s and p99 (ms) of each S1 step of `target`.
fn s1_points(target: &str, steps: &[StepResult]) -> Vec<(f64, f64, Option<f64>)> {
    steps
        .iter()
        .filter(|s| s.target == target && s.scenario == "S1" && s.duration_s > 0.0)
        .filter_map(|s| {
            let d = s.deliveries.as_ref()?;
            let offered = d.expected as f64 / s.duration_s;
            let p99 = s.latency_us.as_ref().map(|l| l.p99 as f64 / 1000.0);
            Some((offered, d.per_s, p99))
        })
        .collect()
}

/// One series per target of the S1 points `pick` keeps, as (x, y).
fn s1_series(
    targets: &[String],
    steps: &[StepResult],
    pick: impl Fn((f64, f64, Option<f64>)) -> Option<(f64, f64)>,
) -> Vec<Series> {
    targets
        .iter()
        .map(|t| Series {
            name: t.clone(),
            points: s1_points(t, steps).into_iter().filter_map(&pick).collect(),
        })
        .collect()
}

/// The three plots of a run: p99 and delivered vs offered deliveries/s (S1), bytes per
/// idle subscription (S4).
pub fn plots(steps: &[StepResult]) -> (LineChart, LineChart, BarChart) {
    let targets = figures::targets(steps);
    let latency = LineChart {
        title: "S1: p99 publish-to-delivery latency vs offered load".into(),
        x_label: "offered deliveries/s".into(),
        y_label: "p99 latency, ms (log)".into(),
        series: s1_series(&targets, steps, |(x, _, p99)| Some((x, p99?))),
        log_y: true,
        diagonal: false,
    };
    let deliveries = LineChart {
        title: "S1: delivered vs offered deliveries/s (dashed: all delivered)".into(),
        x_label: "offered deliveries/s".into(),
        y_label: "delivered deliveries/s".into(),
        series: s1_series(&targets, steps, |(x, y, _)| Some((x, y))),
        log_y: false,
        diagonal: true,
    };
    let memory = BarChart {
        title: "S4: memory per idle subscription".into(),
        y_label: "bytes per idle subscription".into(),
        bars: targets
            .iter()
            .filter_map(|t| {
                let h = figures::headline(t, steps);
                Some((t.clone(), h.idle_bytes_per_sub?.value))
            })
            .collect(),
    };
    (latency, deliveries, memory)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Writes the report of a run into `out` (created if missing).
pub fn write(out: &Path, header: &RunHeader, steps: &[StepResult]) -> Result<Written> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let date = &header.date;
    let names = Plots {
        latency: format!("{date}-latency.svg"),
        deliveries: format!("{date}-deliveries.svg"),
        memory: format!("{date}-memory.svg"),
    };
    let (latency, deliveries, memory) = plots(steps);
    let plot_files = vec![
        (out.join(&names.latency), latency.render()),
        (out.join(&names.deliveries), deliveries.render()),
        (out.join(&names.memory), memory.render()),
    ];
    for (path, svg) in &plot_files {
        write_file(path, svg)?;
    }
    let mut all = vec![serde_json::to_value(header)?];
    for s in steps {
        all.push(serde_json::to_value(s)?);
    }
    let json = out.join(format!("{date}.json"));
    write_file(&json, &(serde_json::to_string_pretty(&all)? + "\n"))?;
    let text = markdown::render(header, steps, &names);
    let md = out.join(format!("{date}.md"));
    write_file(&md, &text)?;
    let latest = out.join("latest.md");
    write_file(&latest, &text)?;
    Ok(Written {
        json,
        markdown: md,
        latest,
        plots: plot_files.into_iter().map(|(p, _)| p).collect(),
    })
}

#[cfg(test)]
mod tests;
