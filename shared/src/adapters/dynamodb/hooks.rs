//! Test hooks of the DynamoDB store: simulated crashes at the points recovery must survive, and
//! write-unit counters for the capacity benchmark. They exist only with feature `test-hooks`
//! (the integration tests and benchmarks turn it on): in a production build `Hooks` is empty,
//! `crashes_at` is a constant `false` the compiler removes with its branch, and no request asks
//! DynamoDB for its consumed capacity.

use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};

use super::Item;

/// Where a simulated crash stops a batch (tests of crash recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// After the events are written, before any rollup is touched.
    AfterEvents,
    /// After the first rollup item is updated.
    AfterFirstRollup,
    /// After a compaction run wrote its rollup items, before it deleted the deltas.
    AfterCompactionRollups,
    /// After a deletion or a repricing changed its events and removed the hour from the pending
    /// deltas, before it rewrote the hour's rollups (still holding the compaction lock).
    BeforeDeletionRollups,
}

#[derive(Clone, Default)]
pub(super) struct Hooks {
    #[cfg(feature = "test-hooks")]
    pub(super) crash_at: Option<CrashPoint>,
    #[cfg(feature = "test-hooks")]
    pub(super) capacity: std::sync::Arc<Capacity>,
}

impl Hooks {
    /// Whether the store should fail here, as a process killed at `point` would.
    #[cfg(feature = "test-hooks")]
    pub(super) fn crashes_at(&self, point: CrashPoint) -> bool {
        self.crash_at == Some(point)
    }
    #[cfg(not(feature = "test-hooks"))]
    #[inline(always)]
    pub(super) fn crashes_at(&self, _point: CrashPoint) -> bool {
        false
    }

    /// What writes ask DynamoDB to report of their cost.
    pub(super) fn consumed(&self) -> Option<ReturnConsumedCapacity> {
        #[cfg(feature = "test-hooks")]
        return Some(ReturnConsumedCapacity::Total);
        #[cfg(not(feature = "test-hooks"))]
        None
    }

    /// The size a write of `item` is counted at (0: nothing is counted in production).
    pub(super) fn write_size(&self, _item: &Item) -> usize {
        #[cfg(feature = "test-hooks")]
        return item_size(_item);
        #[cfg(not(feature = "test-hooks"))]
        0
    }

    /// Counts one write of `item_bytes` and what DynamoDB reported of it.
    pub(super) fn record_capacity(&self, _consumed: Option<&ConsumedCapacity>, _item_bytes: usize) {
        #[cfg(feature = "test-hooks")]
        self.capacity.record(_consumed, _item_bytes);
    }
}

#[cfg(feature = "test-hooks")]
pub use counting::Capacity;

#[cfg(feature = "test-hooks")]
mod counting {
    use std::sync::atomic::{AtomicU64, Ordering};

    use aws_sdk_dynamodb::types::ConsumedCapacity;

    /// Write and read units DynamoDB reported, and write units computed from item sizes with
    /// DynamoDB's rule (1 unit per started KiB). Servers that report a flat unit per request
    /// (DynamoDB-compatible emulators) make the second the honest figure.
    #[derive(Debug, Default)]
    pub struct Capacity {
        reported_write_tenths: AtomicU64,
        sized_write_units: AtomicU64,
        write_requests: AtomicU64,
    }

    impl Capacity {
        pub fn reported_write_units(&self) -> f64 {
            self.reported_write_tenths.load(Ordering::Relaxed) as f64 / 10.0
        }
        pub fn sized_write_units(&self) -> u64 {
            self.sized_write_units.load(Ordering::Relaxed)
        }
        pub fn write_requests(&self) -> u64 {
            self.write_requests.load(Ordering::Relaxed)
        }
        pub fn reset(&self) {
            self.reported_write_tenths.store(0, Ordering::Relaxed);
            self.sized_write_units.store(0, Ordering::Relaxed);
            self.write_requests.store(0, Ordering::Relaxed);
        }
        pub(super) fn record(&self, consumed: Option<&ConsumedCapacity>, item_bytes: usize) {
            if let Some(units) = consumed.and_then(|c| c.capacity_units()) {
                self.reported_write_tenths
                    .fetch_add((units * 10.0).round() as u64, Ordering::Relaxed);
            }
            self.sized_write_units
                .fetch_add(item_bytes.div_ceil(1024).max(1) as u64, Ordering::Relaxed);
            self.write_requests.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// DynamoDB's item size: attribute names plus values (strings and binaries by length, numbers
/// roughly by digits, sets by members).
#[cfg(feature = "test-hooks")]
pub(super) fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

#[cfg(feature = "test-hooks")]
fn value_size(v: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    match v {
        Av::S(x) => x.len(),
        Av::N(x) => x.len().div_ceil(2) + 1,
        Av::B(b) => b.as_ref().len(),
        Av::Ss(xs) => xs.iter().map(String::len).sum(),
        Av::Ns(xs) => xs.iter().map(|x| x.len().div_ceil(2) + 1).sum(),
        Av::Bool(_) | Av::Null(_) => 1,
        Av::L(xs) => 3 + xs.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        Av::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        _ => 0,
    }
}
