//! Provider connections and the days their imports brought.

use super::*;
use crate::domain::reconciliation::{BilledRow, Connection};
use crate::ports::Connections;

#[async_trait]
impl Connections for SqliteStore {
    async fn save_connection(&self, c: &Connection) -> StoreResult<()> {
        let (ws, id) = (c.workspace.clone(), c.id.clone());
        let body = serde_json::to_string(c).map_err(|e| anyhow!(e))?;
        self.write(move |c| {
            c.execute(
                "INSERT INTO connections (workspace_id, id, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (workspace_id, id) DO UPDATE SET body = excluded.body",
                params![ws.as_str(), id, body],
            )?;
            Ok(())
        })
        .await
    }

    async fn update_connection(&self, c: &Connection) -> StoreResult<bool> {
        let (ws, id) = (c.workspace.clone(), c.id.clone());
        let body = serde_json::to_string(c).map_err(|e| anyhow!(e))?;
        self.write(move |c| {
            let n = c.execute(
                "UPDATE connections SET body = ?3 WHERE workspace_id = ?1 AND id = ?2",
                params![ws.as_str(), id, body],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn connections(&self, ws: &WorkspaceId) -> StoreResult<Vec<Connection>> {
        let ws = ws.clone();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT body FROM connections WHERE workspace_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([ws.as_str()], |r| r.get::<_, String>(0))?;
            rows.map(|body| Ok(serde_json::from_str(&body?)?)).collect()
        })
        .await
    }

    async fn connection(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<Connection>> {
        let (ws, id) = (ws.clone(), id.to_owned());
        self.read(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM connections WHERE workspace_id = ?1 AND id = ?2",
                    params![ws.as_str(), id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
        })
        .await
    }

    async fn delete_connection(&self, ws: &WorkspaceId, id: &str) -> StoreResult<bool> {
        let (ws, id) = (ws.clone(), id.to_owned());
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "DELETE FROM billed_days WHERE workspace_id = ?1 AND connection_id = ?2",
                params![ws.as_str(), id],
            )?;
            let n = tx.execute(
                "DELETE FROM connections WHERE workspace_id = ?1 AND id = ?2",
                params![ws.as_str(), id],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    async fn replace_billed_days(
        &self,
        ws: &WorkspaceId,
        connection: &str,
        days: &[String],
        rows: &[BilledRow],
    ) -> StoreResult<()> {
        let mut by_day: Vec<(String, String)> = Vec::with_capacity(days.len());
        for day in days {
            let of_day: Vec<&BilledRow> = rows.iter().filter(|r| &r.day == day).collect();
            by_day.push((
                day.clone(),
                serde_json::to_string(&of_day).map_err(|e| anyhow!(e))?,
            ));
        }
        let (ws, connection) = (ws.clone(), connection.to_owned());
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (day, rows) in &by_day {
                tx.execute(
                    "INSERT INTO billed_days (workspace_id, day, connection_id, rows)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (workspace_id, day, connection_id) DO UPDATE SET rows = excluded.rows",
                    params![ws.as_str(), day, connection, rows],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn billed_rows(
        &self,
        ws: &WorkspaceId,
        from_day: &str,
        to_day: &str,
    ) -> StoreResult<Vec<BilledRow>> {
        let (ws, from, to) = (ws.clone(), from_day.to_owned(), to_day.to_owned());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT rows FROM billed_days WHERE workspace_id = ?1 AND day >= ?2 AND day < ?3
                 ORDER BY day, connection_id",
            )?;
            let days = stmt.query_map(params![ws.as_str(), from, to], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for rows in days {
                out.extend(serde_json::from_str::<Vec<BilledRow>>(&rows?)?);
            }
            Ok(out)
        })
        .await
    }
}
