//! The audit log on DynamoDB.

use super::items::{self, AuditItem};
use super::*;
use crate::domain::audit::AUDIT_RETENTION_MS;
use crate::domain::audit::AuditEntry;
use crate::domain::ids::WorkspaceId;
use crate::ports::StoreError;
use crate::ports::StoreResult;

#[async_trait]
impl AuditLog for DynamoStore {
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        let item = items::item(
            schema::audit(&e.workspace_id, &e.id),
            &AuditItem::new(e, e.at_ms + AUDIT_RETENTION_MS),
        )?;
        self.put(item, None).await?;
        Ok(())
    }

    async fn audit(
        &self,
        ws: &WorkspaceId,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AuditEntry>> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .scan_index_forward(false)
            .expression_attribute_values(":pk", s(schema::audit_pk(ws)));
        q = match before {
            Some(b) => q
                .key_condition_expression("pk = :pk AND sk < :b")
                .expression_attribute_values(":b", s(b)),
            None => q.key_condition_expression("pk = :pk"),
        };
        // One page: a page of audit entries (at most 100 small items) fits in one response.
        let page: Vec<Item> = q
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(err)?
            .items
            .unwrap_or_default();
        page.into_iter()
            .map(|i| {
                let (_, id) = items::key_of(&i)?;
                Ok(items::read::<AuditItem>(i)?.into_entry(id, ws))
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(StoreError::from)
    }
}
