//! The headline figures of each system under test, read from its steps, and their ratios
//! to the limit's (and the cluster's to the embedded hub's).

use crate::results::StepResult;

/// p99 under which an S1 step counts as keeping up, in microseconds.
pub const GOOD_P99_US: u64 = 50_000;
/// The S1 step the latency and CPU figures are read at (publishes/s).
pub const REFERENCE_RATE: f64 = 20.0;

/// One headline figure of one SUT, with the step it was read from.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub value: f64,
    pub step: String,
}

/// The headline figures of one SUT.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Headline {
    pub target: String,
    /// Deliveries/s at the highest S1 step with p99 < 50 ms and nothing lost.
    pub max_deliveries_per_s: Option<Figure>,
    /// CPU ms per 1000 deliveries at the S1 reference step.
    pub cpu_ms_per_1k: Option<Figure>,
    /// p99 in ms at the S1 reference step.
    pub p99_ms: Option<Figure>,
    /// Bytes per idle subscription (S4).
    pub idle_bytes_per_sub: Option<Figure>,
}

/// What each headline figure is, and whether more is better.
pub const FIGURE_NAMES: [(&str, bool); 4] = [
    (
        "deliveries/s at the highest S1 step with p99 < 50 ms and nothing lost",
        true,
    ),
    ("CPU ms per 1000 deliveries (S1, 20 publishes/s)", false),
    (
        "p99 latency, ms (S1, 20 publishes/s = 20k deliveries/s)",
        false,
    ),
    ("bytes per idle subscription (S4)", false),
];

impl Headline {
    /// The figures in [`FIGURE_NAMES`] order.
    pub fn figures(&self) -> [Option<&Figure>; 4] {
        [
            self.max_deliveries_per_s.as_ref(),
            self.cpu_ms_per_1k.as_ref(),
            self.p99_ms.as_ref(),
            self.idle_bytes_per_sub.as_ref(),
        ]
    }
}

fn lost_nothing(step: &StepResult) -> bool {
    step.deliveries
        .as_ref()
        .is_some_and(|d| d.lost == 0 && d.received > 0)
}

/// The S1 step at the reference rate, else the lowest-rate S1 step.
fn reference_step<'a>(s1: &[&'a StepResult]) -> Option<&'a StepResult> {
    s1.iter()
        .find(|s| s.offered_publishes_per_s == Some(REFERENCE_RATE))
        .or_else(|| {
            s1.iter().min_by(|a, b| {
                let a = a.offered_publishes_per_s.unwrap_or(f64::MAX);
                let b = b.offered_publishes_per_s.unwrap_or(f64::MAX);
                a.total_cmp(&b)
            })
        })
        .copied()
}

/// The headline figures of `target` from every step of the run.
pub fn headline(target: &str, steps: &[StepResult]) -> Headline {
    let s1: Vec<&StepResult> = steps
        .iter()
        .filter(|s| s.target == target && s.scenario == "S1" && s.deliveries.is_some())
        .collect();
    let max_deliveries_per_s = s1
        .iter()
        .filter(|s| lost_nothing(s))
        .filter(|s| s.latency_us.as_ref().is_some_and(|l| l.p99 < GOOD_P99_US))
        .max_by(|a, b| {
            let a = a.offered_publishes_per_s.unwrap_or(0.0);
            let b = b.offered_publishes_per_s.unwrap_or(0.0);
            a.total_cmp(&b)
        })
        .and_then(|s| {
            Some(Figure {
                value: s.deliveries.as_ref()?.per_s,
                step: s.step.clone(),
            })
        });
    let reference = reference_step(&s1);
    let cpu_ms_per_1k = reference.and_then(|s| {
        Some(Figure {
            value: s.resources.as_ref()?.sut_cpu_ms_per_1k?,
            step: s.step.clone(),
        })
    });
    let p99_ms = reference.and_then(|s| {
        Some(Figure {
            value: s.latency_us.as_ref()?.p99 as f64 / 1000.0,
            step: s.step.clone(),
        })
    });
    let idle_bytes_per_sub = steps
        .iter()
        .find(|s| s.target == target && s.scenario == "S4" && s.idle.is_some())
        .and_then(|s| {
            Some(Figure {
                value: s.idle.as_ref()?.bytes_per_subscription,
                step: s.step.clone(),
            })
        });
    Headline {
        target: target.to_owned(),
        max_deliveries_per_s,
        cpu_ms_per_1k,
        p99_ms,
        idle_bytes_per_sub,
    }
}

/// `value / base`, when both exist and the base is not 0.
pub fn ratio(value: Option<&Figure>, base: Option<&Figure>) -> Option<f64> {
    let (v, b) = (value?.value, base?.value);
    (b.abs() > f64::EPSILON && v.is_finite() && b.is_finite()).then(|| v / b)
}

/// The targets of the steps, in first-seen order with `limit`, `embedded` and `cluster`
/// first.
pub fn targets(steps: &[StepResult]) -> Vec<String> {
    let mut out: Vec<String> = ["limit", "embedded", "cluster"]
        .into_iter()
        .filter(|t| steps.iter().any(|s| s.target == *t))
        .map(str::to_owned)
        .collect();
    for s in steps {
        if !out.contains(&s.target) {
            out.push(s.target.clone());
        }
    }
    out
}
