//! Keeping request-level history only as long as a plan allows.

use super::StoreResult;
use crate::domain::ids::WorkspaceId;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What one retention pass changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retained {
    pub events_kept: u64,
    pub events_deleted: u64,
    pub rollups_kept: u64,
    pub rollups_deleted: u64,
}

impl std::ops::AddAssign for Retained {
    fn add_assign(&mut self, o: Retained) {
        self.events_kept += o.events_kept;
        self.events_deleted += o.events_deleted;
        self.rollups_kept += o.rollups_kept;
        self.rollups_deleted += o.rollups_deleted;
    }
}

#[async_trait]
pub trait Retention: Send + Sync + 'static {
    /// Re-applies a plan keeping `history_ms` to a workspace's events and rollups of the hours in
    /// `[from_hour, to_hour)` (see `domain::retention`): each event gets the fate
    /// `event_fate` gives it, each rollup the expiry `rollup_expiry_ms` gives it, and what has
    /// expired is deleted.
    async fn apply_retention(
        &self,
        ws: &WorkspaceId,
        from_hour: i64,
        to_hour: i64,
        history_ms: i64,
        now_ms: i64,
    ) -> StoreResult<Retained>;
}
