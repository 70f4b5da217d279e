//! Provider connections and what their imports brought: the figures reconciliation compares.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::ids::WorkspaceId;
use crate::domain::reconciliation::{BilledRow, Connection};

/// The most connections a workspace may hold (a few organisations, never hundreds).
pub const MAX_CONNECTIONS: usize = 10;

#[async_trait]
pub trait Connections: Send + Sync + 'static {
    /// Creates or replaces a connection.
    async fn save_connection(&self, c: &Connection) -> StoreResult<()>;

    /// Saves a connection's new state if it still exists (an import must not bring back a
    /// connection removed while it ran); false when it is gone.
    async fn update_connection(&self, c: &Connection) -> StoreResult<bool>;

    async fn connections(&self, ws: &WorkspaceId) -> StoreResult<Vec<Connection>>;

    async fn connection(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<Connection>>;

    /// Deletes a connection and every figure it imported; false when there was none.
    async fn delete_connection(&self, ws: &WorkspaceId, id: &str) -> StoreResult<bool>;

    /// Replaces, for each of `days`, what `connection` imported for it with the `rows` of that
    /// day (none: the provider billed nothing). Each day is replaced whole or not at all, so a
    /// re-import changes nothing and an interrupted one leaves whole days.
    async fn replace_billed_days(
        &self,
        ws: &WorkspaceId,
        connection: &str,
        days: &[String],
        rows: &[BilledRow],
    ) -> StoreResult<()>;

    /// Every connection's rows for the UTC days `[from_day, to_day)`.
    async fn billed_rows(
        &self,
        ws: &WorkspaceId,
        from_day: &str,
        to_day: &str,
    ) -> StoreResult<Vec<BilledRow>>;
}
