//! Latency histograms (HdrHistogram, microseconds, 3 significant digits up to 10 minutes):
//! sharded per phase so subscriber tasks on any worker record a batch under one
//! uncontended lock, merged when a step ends or the progress line wants a p99.

use std::sync::Mutex;

use hdrhistogram::Histogram;

use super::ledger::{MAX_PHASES, lock};
use crate::results::Latency;

/// Highest latency recorded (larger values are clamped).
const MAX_US: u64 = 600_000_000;

/// A new empty histogram.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3)
        .expect("constant histogram bounds are within hdrhistogram's limits")
}

/// Records `value` (µs), clamped into range.
pub fn record(histogram: &mut Histogram<u64>, value: u64) {
    histogram.saturating_record(value.clamp(1, MAX_US));
}

/// Per-phase histograms in a few shards.
#[derive(Debug)]
pub struct Shards(Vec<Mutex<Vec<Option<Histogram<u64>>>>>);

impl Shards {
    pub fn new(count: usize) -> Self {
        Self((0..count.max(1)).map(|_| Mutex::new(Vec::new())).collect())
    }

    /// Records a batch of `(phase, µs)` into the shard of `key`.
    pub fn record(&self, key: usize, batch: &[(u32, u64)]) {
        if batch.is_empty() {
            return;
        }
        let mut shard = lock(&self.0[key % self.0.len()]);
        for &(phase, value) in batch {
            let phase = phase as usize;
            if phase >= MAX_PHASES {
                continue;
            }
            if shard.len() <= phase {
                shard.resize_with(phase + 1, || None);
            }
            record(shard[phase].get_or_insert_with(histogram), value);
        }
    }

    /// All shards of `phase` merged.
    pub fn merged(&self, phase: u32) -> Histogram<u64> {
        let mut merged = histogram();
        for shard in &self.0 {
            let shard = lock(shard);
            if let Some(Some(histogram)) = shard.get(phase as usize) {
                // Same bounds everywhere; an add that does not fit is dropped.
                let _ = merged.add(histogram);
            }
        }
        merged
    }
}

/// The result figures of a histogram.
pub fn summary(histogram: &Histogram<u64>) -> Latency {
    Latency {
        count: histogram.len(),
        p50: histogram.value_at_quantile(0.50),
        p90: histogram.value_at_quantile(0.90),
        p99: histogram.value_at_quantile(0.99),
        p999: histogram.value_at_quantile(0.999),
        max: histogram.max(),
    }
}
