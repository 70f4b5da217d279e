//! The read path: rollups (with the deltas not yet folded) and raw events.

use super::*;

#[async_trait]
impl Events for SqliteStore {
    async fn usage(&self, ws: &WorkspaceId, month: &str) -> StoreResult<u64> {
        let (ws, month) = (ws.clone(), month.to_owned());
        self.read(move |c| {
            let used: i64 = c
                .query_row(
                    "SELECT events FROM usage WHERE workspace_id = ?1 AND month = ?2",
                    params![ws.as_str(), month],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            Ok(used.max(0) as u64)
        })
        .await
    }

    async fn rollups(
        &self,
        ws: &WorkspaceId,
        view: &View,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<(RollupKey, Rollup)>> {
        let (ws, view) = (ws.clone(), view.clone());
        let counter = self.rollup_rows_read.clone();
        self.read(move |c| {
            // One snapshot for the rollups and the pending deltas: a fold committing in between
            // must not count a batch twice or not at all.
            let tx = c.unchecked_transaction()?;
            let name = view.encode();
            let mut stmt = tx.prepare_cached(
                "SELECT hour, value, data FROM rollups WHERE workspace_id = ?1 AND view = ?2 AND hour >= ?3 AND hour < ?4 ORDER BY hour, value",
            )?;
            let rows = stmt.query_map(params![ws.as_str(), name, from_hour, to_hour], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (hour, value, data) = row?;
                let r = Rollup::decode(&data).ok_or_else(|| anyhow!("corrupt rollup {ws} {name} {hour} {value}"))?;
                out.push((RollupKey { hour, view: view.clone(), value }, r));
            }
            counter.fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
            drop(stmt);
            if !view.is_core() {
                let mut merged: std::collections::BTreeMap<RollupKey, Rollup> = out.into_iter().collect();
                for mut groups in pending_groups(&tx, &ws)? {
                    // Only the asked hours: a backfilled batch spans many.
                    groups.retain_hours(from_hour..to_hour);
                    for (k, delta) in groups.views(Select::One(&view)) {
                        merged.entry(k).or_default().merge(&delta);
                    }
                }
                out = merged.into_iter().collect();
            }
            Ok(out)
        })
        .await
    }

    async fn events(
        &self,
        ws: &WorkspaceId,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let ws = ws.clone();
        self.read(move |c| {
            let (after_ts, after_id) = after.unwrap_or((i64::MIN, String::new()));
            let mut stmt = c.prepare_cached(
                "SELECT body FROM events WHERE workspace_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 AND (ts_ms, id) > (?4, ?5)
                 ORDER BY ts_ms, id LIMIT ?6",
            )?;
            let rows = stmt.query_map(params![ws.as_str(), from_ms, to_ms, after_ts, after_id, limit as i64], |r| r.get::<_, String>(0))?;
            rows.map(|body| Ok(serde_json::from_str(&body?)?)).collect()
        })
        .await
    }

    async fn recent_events(
        &self,
        ws: &WorkspaceId,
        from_ms: i64,
        to_ms: i64,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let ws = ws.clone();
        self.read(move |c| {
            let mut stmt = match &before {
                Some(_) => c.prepare_cached(
                    "SELECT body FROM events WHERE workspace_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 AND (ts_ms, id) < (?4, ?5)
                     ORDER BY ts_ms DESC, id DESC LIMIT ?6",
                )?,
                None => c.prepare_cached(
                    "SELECT body FROM events WHERE workspace_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 AND ?4 IS NULL AND ?5 IS NULL
                     ORDER BY ts_ms DESC, id DESC LIMIT ?6",
                )?,
            };
            let (before_ts, before_id) = before.map_or((None, None), |(t, i)| (Some(t), Some(i)));
            let rows = stmt.query_map(params![ws.as_str(), from_ms, to_ms, before_ts, before_id, limit as i64], |r| r.get::<_, String>(0))?;
            rows.map(|body| Ok(serde_json::from_str(&body?)?)).collect()
        })
        .await
    }
}
