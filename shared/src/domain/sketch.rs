//! The mergeable latency sketch stored in every rollup: a DDSketch (sketches-ddsketch) with 1%
//! relative accuracy, so any quantile of any merge of rollups is within 1% of the exact value.

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

/// Relative accuracy of every quantile read from a sketch.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Latencies below this many milliseconds are counted as this value (sub-microsecond calls are noise).
const MIN_VALUE_MS: f64 = 0.001;
const MAX_BINS: u32 = 2048;

#[derive(Clone)]
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

/// A sketch as a batch's groups store it ([`crate::domain::rollup::GROUPS_FORMAT`] 5): most
/// groups of a batch hold one event, and a sketch of one value is that value (a fresh sketch
/// given it again is the same sketch, bin for bin), 9 bytes instead of about 37. Delta items are
/// what ingest writes to DynamoDB, which charges by the KiB.
#[derive(Serialize, Deserialize)]
pub enum Slim<S> {
    Empty,
    One(f64),
    Many(S),
}

impl LatencySketch {
    pub fn slim(&self) -> Slim<&LatencySketch> {
        match (self.0.count(), self.0.sum()) {
            (0, _) => Slim::Empty,
            (1, Some(v)) => Slim::One(v),
            _ => Slim::Many(self),
        }
    }
}

impl From<Slim<LatencySketch>> for LatencySketch {
    fn from(s: Slim<LatencySketch>) -> LatencySketch {
        match s {
            Slim::Empty => LatencySketch::default(),
            Slim::One(v) => {
                let mut sketch = LatencySketch::default();
                // The value as the sketch kept it (already at least the minimum).
                sketch.0.add(v);
                sketch
            }
            Slim::Many(sketch) => sketch,
        }
    }
}

/// Stored form. sketches-ddsketch serialises its whole dense bin array (at least 128 bins) and its
/// constant config with every sketch, about 200 bytes for a sketch of one value; rollup deltas
/// carry hundreds of sketches, and DynamoDB charges by the KiB. The compact form keeps only the
/// bins in use and leaves the config out (it is the constant `Default` one), typically 40 bytes.
#[derive(Serialize, Deserialize)]
struct Compact {
    positive: CompactStore,
    /// Latencies are never negative: this store is almost always untouched, and then absent.
    negative: Option<CompactStore>,
    min: f64,
    max: f64,
    sum: f64,
    zero_count: u64,
}

#[derive(Serialize, Deserialize)]
struct CompactStore {
    count: u64,
    min_key: i32,
    max_key: i32,
    offset: i32,
    len: u32,
    collapsed: bool,
    /// Bins `min_key ..= max_key`; every other bin is zero.
    used: Vec<u64>,
}

// Mirrors of sketches-ddsketch 0.4's serde layout (postcard is positional), used only to move
// between its full form and the compact one. A test checks the round trip byte for byte.
#[derive(Clone, Serialize, Deserialize)]
struct ConfigMirror {
    max_num_bins: u32,
    gamma: f64,
    gamma_ln: f64,
    min_value: f64,
    offset: i32,
}

#[derive(Serialize, Deserialize)]
struct StoreMirror {
    bins: Vec<u64>,
    count: u64,
    min_key: i32,
    max_key: i32,
    offset: i32,
    bin_limit: usize,
    is_collapsed: bool,
}

#[derive(Serialize, Deserialize)]
struct SketchMirror {
    config: ConfigMirror,
    store: StoreMirror,
    negative_store: StoreMirror,
    min: f64,
    max: f64,
    sum: f64,
    zero_count: u64,
}

impl StoreMirror {
    /// A store as sketches-ddsketch creates it, before any value.
    fn untouched() -> StoreMirror {
        StoreMirror {
            bins: Vec::new(),
            count: 0,
            min_key: i32::MAX,
            max_key: i32::MIN,
            offset: 0,
            bin_limit: MAX_BINS as usize,
            is_collapsed: false,
        }
    }

    fn is_untouched(&self) -> bool {
        self.bins.is_empty()
            && self.count == 0
            && self.min_key == i32::MAX
            && self.max_key == i32::MIN
            && self.offset == 0
            && !self.is_collapsed
    }

    fn compact(self) -> CompactStore {
        let used = if self.bins.is_empty() || self.min_key > self.max_key {
            Vec::new()
        } else {
            let lo = (self.min_key - self.offset).max(0) as usize;
            let hi = ((self.max_key - self.offset) as usize).min(self.bins.len().saturating_sub(1));
            self.bins
                .get(lo..=hi)
                .map(<[u64]>::to_vec)
                .unwrap_or_default()
        };
        CompactStore {
            count: self.count,
            min_key: self.min_key,
            max_key: self.max_key,
            offset: self.offset,
            len: self.bins.len() as u32,
            collapsed: self.is_collapsed,
            used,
        }
    }

    fn expand(c: CompactStore) -> Result<StoreMirror, SketchError> {
        let mut bins = vec![0; c.len as usize];
        if !c.used.is_empty() {
            let lo = usize::try_from(c.min_key - c.offset).map_err(|_| SketchError::Offset)?;
            bins.get_mut(lo..lo + c.used.len())
                .ok_or(SketchError::Bins)?
                .copy_from_slice(&c.used);
        }
        Ok(StoreMirror {
            bins,
            count: c.count,
            min_key: c.min_key,
            max_key: c.max_key,
            offset: c.offset,
            bin_limit: MAX_BINS as usize,
            is_collapsed: c.collapsed,
        })
    }
}

/// Why stored sketch bytes do not make a sketch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum SketchError {
    #[error("bad sketch offset")]
    Offset,
    #[error("bad sketch bins")]
    Bins,
}

/// The constant config every sketch has, as its mirror (computed once).
fn default_config() -> Result<ConfigMirror, postcard::Error> {
    static CONFIG: std::sync::LazyLock<Result<ConfigMirror, postcard::Error>> =
        std::sync::LazyLock::new(|| {
            let full = postcard::to_stdvec(&LatencySketch::default().0)?;
            Ok(postcard::from_bytes::<SketchMirror>(&full)?.config)
        });
    CONFIG.clone()
}

impl Serialize for LatencySketch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        // A reused buffer: this runs for every sketch of every delta a batch writes.
        thread_local!(static FULL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) });
        let m: SketchMirror = FULL
            .with_borrow_mut(|full| {
                let mut buf = std::mem::take(full);
                buf.clear();
                let buf = postcard::to_extend(&self.0, buf)?;
                let m = postcard::from_bytes(&buf);
                *full = buf;
                m
            })
            .map_err(S::Error::custom)?;
        Compact {
            positive: m.store.compact(),
            negative: Some(m.negative_store)
                .filter(|s| !s.is_untouched())
                .map(StoreMirror::compact),
            min: m.min,
            max: m.max,
            sum: m.sum,
            zero_count: m.zero_count,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LatencySketch {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let c = Compact::deserialize(deserializer)?;
        let config = default_config().map_err(D::Error::custom)?;
        let m = SketchMirror {
            config,
            store: StoreMirror::expand(c.positive).map_err(D::Error::custom)?,
            negative_store: match c.negative {
                Some(n) => StoreMirror::expand(n).map_err(D::Error::custom)?,
                None => StoreMirror::untouched(),
            },
            min: c.min,
            max: c.max,
            sum: c.sum,
            zero_count: c.zero_count,
        };
        let full = postcard::to_stdvec(&m).map_err(D::Error::custom)?;
        postcard::from_bytes(&full)
            .map(LatencySketch)
            .map_err(D::Error::custom)
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

    #[test]
    fn the_compact_form_round_trips_exactly_and_is_small() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for n in [0usize, 1, 2, 10, 1000, 20_000] {
            let mut s = LatencySketch::default();
            for _ in 0..n {
                // From sub-millisecond to an hour, so stores grow, shift and collapse.
                let v = (next() % 3_600_000_000) as f64 / 1000.0
                    * if next() % 50 == 0 { 1e-4 } else { 1.0 };
                s.add(v);
            }
            let bytes = postcard::to_stdvec(&s).unwrap();
            let back: LatencySketch = postcard::from_bytes(&bytes).unwrap();
            // Byte for byte the same sketch as sketches-ddsketch sees it.
            assert_eq!(
                postcard::to_stdvec(&back.0).unwrap(),
                postcard::to_stdvec(&s.0).unwrap(),
                "n = {n}"
            );
            assert!(back.same_distribution(&s));
            if n <= 1 {
                assert!(bytes.len() < 45, "{} bytes for {n} values", bytes.len());
            }
        }
        let mut merged = LatencySketch::default();
        let mut one = LatencySketch::default();
        one.add(850.0);
        merged.merge(&one);
        let back: LatencySketch =
            postcard::from_bytes(&postcard::to_stdvec(&merged).unwrap()).unwrap();
        back.clone().merge(&one);
    }

    #[test]
    fn the_slim_form_of_a_sketch_of_one_value_is_that_sketch() {
        for v in [0.0, 0.0005, 0.001, 1.0, 850.25, 3_600_000.0] {
            let mut s = LatencySketch::default();
            s.add(v);
            let bytes = postcard::to_stdvec(&s.slim()).unwrap();
            assert!(bytes.len() <= 9, "{} bytes for {v}", bytes.len());
            let back =
                LatencySketch::from(postcard::from_bytes::<Slim<LatencySketch>>(&bytes).unwrap());
            assert_eq!(
                postcard::to_stdvec(&back.0).unwrap(),
                postcard::to_stdvec(&s.0).unwrap(),
                "{v}"
            );
        }
        for n in [0, 2, 50] {
            let mut s = LatencySketch::default();
            (0..n).for_each(|i| s.add(f64::from(i) * 3.5));
            let bytes = postcard::to_stdvec(&s.slim()).unwrap();
            let back =
                LatencySketch::from(postcard::from_bytes::<Slim<LatencySketch>>(&bytes).unwrap());
            assert_eq!(
                postcard::to_stdvec(&back.0).unwrap(),
                postcard::to_stdvec(&s.0).unwrap(),
                "{n} values"
            );
        }
    }
}
