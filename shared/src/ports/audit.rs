//! The workspace's audit log.

use super::StoreResult;
use crate::domain::audit::AuditEntry;
use crate::domain::ids::WorkspaceId;
use async_trait::async_trait;

#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    /// Newest first, entries with ids below `before`.
    async fn audit(
        &self,
        ws: &WorkspaceId,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AuditEntry>>;
}
