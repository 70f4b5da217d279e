//! Repricing stored events: their costs rewritten with today's prices, their hours' rollups
//! rebuilt from them.

use super::StoreResult;
use crate::domain::ids::WorkspaceId;
use crate::domain::pricing::PriceTable;
use crate::domain::pricing::custom::WorkspacePrices;
use async_trait::async_trait;

#[async_trait]
pub trait Repricing: Send + Sync + 'static {
    /// Prices again the workspace's events of one hour with `from_ms <= ts < to_ms`, each as
    /// `Event::repriced` does with `table` and the workspace's `prices`, rewrites those whose
    /// cost changes, then recomputes that hour's rollups, every view, from the hour's events
    /// (pending deltas of the hour included). Returns how many events it rewrote. Safe to
    /// repeat: a run stopped at any point is finished by running it again (the hour is
    /// rebuilt again even when no event is left to rewrite), and a repeat changes no cost.
    /// The caller keeps to hours whose events are all still held: the rebuild counts only them.
    async fn reprice_events_in_hour(
        &self,
        ws: &WorkspaceId,
        hour: i64,
        from_ms: i64,
        to_ms: i64,
        table: &'static PriceTable,
        prices: &WorkspacePrices,
    ) -> StoreResult<u64>;
}
