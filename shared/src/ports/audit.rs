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

/// Appends an entry to the audit log. The change it records has already happened: a line
/// that cannot be written is logged as an error, not turned into the request's failure.
pub async fn record(log: &dyn AuditLog, entry: &AuditEntry) {
    if let Err(e) = log.append_audit(entry).await {
        tracing::error!(
            workspace = %entry.workspace_id,
            action = %entry.action,
            error = %e,
            "could not write the audit log"
        );
    }
}
