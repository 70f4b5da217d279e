//! The audit log.

use super::*;

#[async_trait]
impl AuditLog for SqliteStore {
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let e = entry.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO audit (workspace_id, id, at_ms, actor_id, actor_email, action, target, ip) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![e.workspace_id.as_str(), e.id, e.at_ms, e.actor_id, e.actor_email, e.action, e.target, e.ip],
            )?;
            Ok(())
        })
        .await
    }

    async fn audit(
        &self,
        ws: &WorkspaceId,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AuditEntry>> {
        let (ws, before) = (ws.clone(), before.map(str::to_owned));
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT * FROM audit WHERE workspace_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![ws.as_str(), before, limit as i64], |r| {
                Ok(AuditEntry {
                    id: r.get("id")?,
                    workspace_id: ws.clone(),
                    at_ms: r.get("at_ms")?,
                    actor_id: r.get("actor_id")?,
                    actor_email: r.get("actor_email")?,
                    action: r.get("action")?,
                    target: r.get("target")?,
                    ip: r.get("ip")?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
