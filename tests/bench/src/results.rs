//! One measured step, as the load generator writes it (one JSON object per line) and the
//! report reads it. Every figure is what was measured in that step; nothing is derived from
//! another run.

use serde::{Deserialize, Serialize};

/// The result of one step of one scenario against one system under test.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepResult {
    /// Which system: `limit`, `embedded`, `cluster`, or a name given on the command line.
    pub target: String,
    /// The scenario id (`S1` … `S6`).
    pub scenario: String,
    /// The step within the scenario (e.g. `100/s`, `connect`, `idle`, `wss`).
    pub step: String,
    /// Publishes per second offered (open loop), if the step publishes.
    pub offered_publishes_per_s: Option<f64>,
    /// How long the measured part of the step lasted, in seconds (warm-up excluded).
    pub duration_s: f64,
    /// Publishes sent in the measured part.
    pub publishes: Option<Publishes>,
    /// Deliveries expected and seen in the measured part.
    pub deliveries: Option<Deliveries>,
    /// Publish-to-delivery latency in microseconds, counted from each publish's scheduled
    /// send time (no coordinated omission).
    pub latency_us: Option<Latency>,
    /// Subscribe-to-bound figures of a connection phase.
    pub connect: Option<Connect>,
    /// Subscribers made to stop reading (S5).
    pub stalled: Option<Stalled>,
    /// CPU and memory of the system under test (every watched process) and of the load
    /// generator, over the measured part.
    pub resources: Option<Resources>,
    /// Memory held by idle subscriptions.
    pub idle: Option<Idle>,
    /// Anything a reader needs to interpret the figures (scaled-down counts, errors seen).
    pub notes: Vec<String>,
}

/// Publish counts and HTTP latency of the publishes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Publishes {
    pub sent: u64,
    /// Answered 2xx.
    pub accepted: u64,
    /// Answered otherwise, or not at all.
    pub failed: u64,
    /// Publishes per second accepted.
    pub per_s: f64,
    /// From scheduled send time to the HTTP response, in microseconds.
    pub http_latency_us: Option<Latency>,
}

/// Delivery accounting: every expected delivery exactly once, in per-topic order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Deliveries {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Deliveries per second received.
    pub per_s: f64,
}

/// A latency distribution (HdrHistogram), in microseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// A connection phase: subscribe, follow the endpoint, wait for the confirmation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Connect {
    pub attempted: u64,
    pub bound: u64,
    pub failed: u64,
    /// Subscriptions bound per second over the phase.
    pub per_s: f64,
    /// Most subscriptions in flight at once.
    pub in_flight: u64,
    /// Subscribe request sent to confirmation received, in microseconds.
    pub latency_us: Latency,
}

/// Subscribers that stopped reading.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stalled {
    pub count: u64,
    /// Of those, how many the hub had closed by the end of the step.
    pub cut: u64,
    /// Seconds from the stall to the end of the step (an upper bound on time to cut).
    pub within_s: f64,
}

/// CPU and memory over the measured part.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Resources {
    /// utime + stime of every watched process, in milliseconds.
    pub sut_cpu_ms: f64,
    /// The same as a share of one core (1.0 = one core busy).
    pub sut_cores: f64,
    /// CPU milliseconds per 1000 deliveries (or per 1000 publishes when nothing is
    /// delivered).
    pub sut_cpu_ms_per_1k: Option<f64>,
    /// RSS of every watched process at the end of the step, in bytes.
    pub sut_rss_bytes: u64,
    /// The load generator's own CPU as a share of one core (to tell whether it saturated).
    pub loadgen_cores: f64,
}

/// Memory held by idle subscriptions (all watched processes).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Idle {
    pub subscriptions: u64,
    pub rss_before_bytes: u64,
    pub rss_after_bytes: u64,
    /// (after - before) / subscriptions.
    pub bytes_per_subscription: f64,
    /// Kernel TCP memory from /proc/net/sockstat (`TCP: mem`, pages), after.
    pub kernel_tcp_pages: Option<u64>,
}
