//! The read path: rollups for analytics, raw events for exports and the request log.

use super::StoreResult;
use crate::domain::event::Event;
use crate::domain::ids::WorkspaceId;
use crate::domain::rollup::{Rollup, RollupKey, View};
use async_trait::async_trait;

#[async_trait]
pub trait Events: Send + Sync + 'static {
    /// Events counted against the month's quota.
    async fn usage(&self, ws: &WorkspaceId, month: &str) -> StoreResult<u64>;

    /// Rollups of one view for hours in `[from_hour, to_hour)`, sorted by key.
    async fn rollups(
        &self,
        ws: &WorkspaceId,
        view: &View,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<(RollupKey, Rollup)>>;

    /// The rollups of one value of a view (`user-42` of `user`) for hours in
    /// `[from_hour, to_hour)`, sorted by hour, pending deltas merged as [`Events::rollups`]
    /// merges them: exactly the rows of `rollups` whose value is `value`, read without the
    /// view's other values where the store can (what a budget scoped to one end-user measures).
    async fn value_rollups(
        &self,
        ws: &WorkspaceId,
        view: &View,
        value: &str,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<(RollupKey, Rollup)>>;

    /// Raw events with `from_ms <= ts < to_ms`, oldest first, at most `limit` after `after`
    /// (the last `(ts_ms, id)` of the previous page).
    async fn events(
        &self,
        ws: &WorkspaceId,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Event>>;

    /// Raw events with `from_ms <= ts < to_ms`, newest first, at most `limit` before `before`
    /// (the last `(ts_ms, id)` of the previous page): the request log.
    async fn recent_events(
        &self,
        ws: &WorkspaceId,
        from_ms: i64,
        to_ms: i64,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Event>>;
}
