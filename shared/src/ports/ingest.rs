//! The write path: batches of events stored exactly once, rollups and the quota counter with them.

use super::StoreResult;
use crate::domain::event::Event;
use crate::domain::ids::WorkspaceId;
use async_trait::async_trait;

/// What happened to one event of a batch in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Accepted,
    /// Its idempotency key was already stored: nothing changed.
    Duplicate,
}

/// The plan's monthly event quota, checked atomically with the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// `YYYY-MM` (UTC).
    pub month: String,
    pub limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// One entry per event, in order.
    Stored(Vec<Stored>),
    /// The month's quota was already used up: nothing was written. `stored[i]` tells whether
    /// event `i` is already stored (a retry of an acknowledged event), so it can still be
    /// answered as a duplicate.
    QuotaExceeded { used: u64, stored: Vec<bool> },
}

#[async_trait]
pub trait Ingest: Send + Sync + 'static {
    /// Stores a batch of validated events exactly once each and folds the new ones into the
    /// rollups. If the month's quota is used up, stores nothing.
    async fn ingest(
        &self,
        ws: &WorkspaceId,
        events: &[Event],
        quota: &Quota,
    ) -> StoreResult<IngestOutcome>;
}
