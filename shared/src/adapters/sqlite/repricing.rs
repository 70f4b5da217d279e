//! Repricing: an hour's events priced again and its rollups rebuilt, in one transaction.

use super::*;
use crate::domain::pricing::PriceTable;

#[async_trait]
impl Repricing for SqliteStore {
    async fn reprice_events_in_hour(
        &self,
        ws: &WorkspaceId,
        hour: i64,
        from_ms: i64,
        to_ms: i64,
        table: &'static PriceTable,
        prices: &WorkspacePrices,
    ) -> StoreResult<u64> {
        let (ws, prices) = (ws.clone(), prices.clone());
        let (lo, hi) = (from_ms.max(hour * HOUR_MS), to_ms.min((hour + 1) * HOUR_MS));
        if lo >= hi {
            return Ok(0);
        }
        self.write(move |c| {
            let rules = prices.ready();
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let changed: Vec<Event> = {
                let mut stmt = tx.prepare(
                    "SELECT body FROM events WHERE workspace_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
                )?;
                let rows = stmt.query_map(params![ws.as_str(), lo, hi], |r| r.get::<_, String>(0))?;
                let mut changed = Vec::new();
                for body in rows {
                    let e: Event = serde_json::from_str(&body?)?;
                    changed.extend(e.repriced(table, &rules));
                }
                changed
            };
            // One transaction: when nothing changed, the hour's rollups are already right.
            if changed.is_empty() {
                return Ok(0);
            }
            {
                let mut put = tx.prepare(
                    "UPDATE events SET body = ?4 WHERE workspace_id = ?1 AND ts_ms = ?2 AND id = ?3",
                )?;
                for e in &changed {
                    put.execute(params![ws.as_str(), e.ts_ms, e.id, serde_json::to_string(e)?])?;
                }
            }
            rebuild_hour(&tx, &ws, hour)?;
            tx.commit()?;
            Ok(changed.len() as u64)
        })
        .await
    }
}
