//! The audit log on DynamoDB.

use super::*;
use crate::domain::audit::AUDIT_RETENTION_MS;
use crate::domain::audit::AuditEntry;
use crate::domain::ids::WorkspaceId;
use crate::ports::StoreError;
use crate::ports::StoreResult;
use std::collections::HashMap;

#[async_trait]
impl AuditLog for DynamoStore {
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        let mut item = HashMap::from([
            ("pk".to_owned(), s(format!("W#{}#AUDIT", e.workspace_id))),
            ("sk".to_owned(), s(&e.id)),
            ("at".to_owned(), n(e.at_ms)),
            ("actor".to_owned(), s(&e.actor_id)),
            ("action".to_owned(), s(&e.action)),
            (TTL_ATTRIBUTE.to_owned(), ttl(e.at_ms + AUDIT_RETENTION_MS)),
        ]);
        for (name, value) in [
            ("actor_email", &e.actor_email),
            ("target", &e.target),
            ("ip", &e.ip),
        ] {
            if let Some(v) = value {
                item.insert(name.to_owned(), s(v));
            }
        }
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
            .expression_attribute_values(":pk", s(format!("W#{ws}#AUDIT")));
        q = match before {
            Some(b) => q
                .key_condition_expression("pk = :pk AND sk < :b")
                .expression_attribute_values(":b", s(b)),
            None => q.key_condition_expression("pk = :pk"),
        };
        // One page: a page of audit entries (at most 100 small items) fits in one response.
        let items: Vec<Item> = q
            .limit(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(err)?
            .items
            .unwrap_or_default();
        let get_opt = |i: &Item, name: &str| get_s(i, name).ok().map(str::to_owned);
        items
            .iter()
            .map(|i| {
                Ok(AuditEntry {
                    id: get_s(i, "sk")?.to_owned(),
                    workspace_id: ws.clone(),
                    at_ms: get_n(i, "at")?,
                    actor_id: get_s(i, "actor")?.to_owned(),
                    actor_email: get_opt(i, "actor_email"),
                    action: get_s(i, "action")?.to_owned(),
                    target: get_opt(i, "target"),
                    ip: get_opt(i, "ip"),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()
            .map_err(StoreError::from)
    }
}
