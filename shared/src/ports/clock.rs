//! The clock, a port so tests can move time.

use std::sync::Arc;

/// The clock is a port so tests can move time.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

pub type DynClock = Arc<dyn Clock>;
