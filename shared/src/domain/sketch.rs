//! The mergeable latency sketch stored in every rollup: a DDSketch (sketches-ddsketch) with 1%
//! relative accuracy, so any quantile of any merge of rollups is within 1% of the exact value.

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

/// Relative accuracy of every quantile read from a sketch.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Latencies below this many milliseconds are counted as this value (sub-microsecond calls are noise).
const MIN_VALUE_MS: f64 = 0.001;
const MAX_BINS: u32 = 2048;

#[derive(Clone, Serialize, Deserialize)]
pub struct LatencySketch(DDSketch);

impl std::fmt::Debug for LatencySketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LatencySketch {{ count: {}, p50: {:?} }}",
            self.count(),
            self.quantile(0.5)
        )
    }
}

impl Default for LatencySketch {
    fn default() -> Self {
        LatencySketch(DDSketch::new(Config::new(
            RELATIVE_ACCURACY,
            MAX_BINS,
            MIN_VALUE_MS,
        )))
    }
}

impl LatencySketch {
    pub fn add(&mut self, latency_ms: f64) {
        self.0.add(latency_ms.max(MIN_VALUE_MS));
    }

    pub fn merge(&mut self, other: &LatencySketch) {
        if other.0.count() == 0 {
            return;
        }
        if self.0.count() == 0 {
            *self = other.clone();
            return;
        }
        // Both sketches share one Config, the only case merge can refuse.
        let _ = self.0.merge(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.count() as u64
    }

    /// The value at quantile `q` (0..=1), or None when the sketch is empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.0.quantile(q).ok().flatten()
    }

    /// Equal as distributions: same count and the same value at every percentile. (Sums are floats
    /// added in different orders, so byte equality is the wrong test.)
    pub fn same_distribution(&self, other: &LatencySketch) -> bool {
        self.count() == other.count()
            && (0..=100).all(|p| {
                let q = f64::from(p) / 100.0;
                self.quantile(q) == other.quantile(q)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_one_percent_and_merge_is_lossless() {
        let values: Vec<f64> = (1..=10_000).map(|i| (i as f64).powf(1.3) / 7.0).collect();
        let mut whole = LatencySketch::default();
        let mut a = LatencySketch::default();
        let mut b = LatencySketch::default();
        for (i, v) in values.iter().enumerate() {
            whole.add(*v);
            if i % 3 == 0 { a.add(*v) } else { b.add(*v) }
        }
        a.merge(&b);
        assert!(a.same_distribution(&whole));
        for q in [0.5, 0.9, 0.95, 0.99] {
            let exact = values[((q * values.len() as f64).ceil() as usize).saturating_sub(1)];
            let est = a.quantile(q).unwrap();
            assert!(
                (est - exact).abs() <= exact * RELATIVE_ACCURACY,
                "q{q}: {est} vs {exact}"
            );
        }
        assert_eq!(LatencySketch::default().quantile(0.5), None);
    }
}
