//! Retention passes, and the purge of what has expired (DynamoDB has TTL for that).

use super::*;

#[async_trait]
impl Retention for SqliteStore {
    async fn apply_retention(
        &self,
        ws: &WorkspaceId,
        from_hour: i64,
        to_hour: i64,
        history_ms: i64,
        now_ms: i64,
    ) -> StoreResult<Retained> {
        let ws = ws.clone();
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Pending deltas would bring deleted hours back when folded: fold them first.
            compact(&tx, &ws)?;
            let mut out = Retained::default();
            let events: Vec<(i64, String, i64)> = {
                let mut stmt = tx.prepare(
                    "SELECT ts_ms, id, expires_ms FROM events WHERE workspace_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
                )?;
                let rows = stmt.query_map(
                    params![ws.as_str(), from_hour * HOUR_MS, to_hour * HOUR_MS],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                rows.collect::<Result<_, _>>()?
            };
            {
                let mut extend = tx.prepare(
                    "UPDATE events SET expires_ms = ?4, body = json_set(body, '$.expires_ms', ?4)
                     WHERE workspace_id = ?1 AND ts_ms = ?2 AND id = ?3",
                )?;
                let mut delete =
                    tx.prepare("DELETE FROM events WHERE workspace_id = ?1 AND ts_ms = ?2 AND id = ?3")?;
                for (ts, id, expires) in events {
                    match retention::event_fate(ts, expires, history_ms, now_ms) {
                        EventFate::ExpireAt(at) => {
                            if at != expires {
                                extend.execute(params![ws.as_str(), ts, id, at])?;
                            }
                            out.events_kept += 1;
                        }
                        EventFate::Delete | EventFate::Leave => {
                            delete.execute(params![ws.as_str(), ts, id])?;
                            out.events_deleted += 1;
                        }
                    }
                }
            }
            // Local rollups carry no expiry of their own: the hours before the first one kept
            // are deleted, and the rest are counted as kept.
            let first = retention::rollups_kept_from(history_ms, now_ms);
            out.rollups_deleted = tx.execute(
                "DELETE FROM rollups WHERE workspace_id = ?1 AND hour >= ?2 AND hour < ?3",
                params![ws.as_str(), from_hour, to_hour.min(first)],
            )? as u64;
            out.rollups_kept = tx.query_row(
                "SELECT COUNT(*) FROM rollups WHERE workspace_id = ?1 AND hour >= ?2 AND hour < ?3",
                params![ws.as_str(), from_hour.max(first), to_hour],
                |r| r.get::<_, i64>(0),
            )? as u64;
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

impl SqliteStore {
    /// Deletes everything whose time has passed (events, rollups by their workspace's plan, and
    /// spent records): what DynamoDB's TTL does on its own. `serve`'s upkeep runs it.
    pub async fn purge_expired(&self, now_ms: i64) -> StoreResult<u64> {
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut n = tx.execute("DELETE FROM events WHERE expires_ms <= ?1", [now_ms])? as u64;
            let plans: Vec<(String, String)> = {
                let mut stmt = tx.prepare("SELECT id, plan FROM workspaces")?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            for (ws, plan) in plans {
                let plan = Plan::parse(&plan).ok_or_else(|| anyhow!("bad plan {plan}"))?;
                let first = retention::rollups_kept_from(plan.history_ms(), now_ms);
                let ws = WorkspaceId::parse(&ws).ok_or_else(|| anyhow!("bad workspace id {ws}"))?;
                compact(&tx, &ws)?;
                n += tx.execute(
                    "DELETE FROM rollups WHERE workspace_id = ?1 AND hour < ?2",
                    params![ws.as_str(), first],
                )? as u64;
            }
            n += tx.execute("DELETE FROM sessions WHERE expires_ms <= ?1", [now_ms])? as u64;
            n += tx.execute(
                "DELETE FROM jobs WHERE finished = 1 AND json_extract(body, '$.expires_ms') <= ?1",
                [now_ms],
            )? as u64;
            n += tx.execute("DELETE FROM login_codes WHERE expires_ms <= ?1", [now_ms])? as u64;
            n += tx.execute("DELETE FROM invitations WHERE expires_ms <= ?1", [now_ms])? as u64;
            n += tx.execute(
                "DELETE FROM stripe_events WHERE at_ms < ?1",
                [now_ms - STRIPE_EVENT_TTL_MS],
            )? as u64;
            n += tx.execute(
                "DELETE FROM audit WHERE at_ms < ?1",
                [now_ms - AUDIT_RETENTION_MS],
            )? as u64;
            tx.commit()?;
            Ok(n)
        })
        .await
    }
}
