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
        self.read(move |c| read_rollups(c, &ws, &view, None, from_hour, to_hour, &counter))
            .await
    }

    /// One range scan: of the partial index `rollups_by_user` for the `user` view (hundreds of
    /// values an hour on a busy workspace), of the primary key's (workspace, view, hour) range
    /// for the others, whose few values an hour are skipped without decoding their rollups.
    async fn value_rollups(
        &self,
        ws: &WorkspaceId,
        view: &View,
        value: &str,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<(RollupKey, Rollup)>> {
        let (ws, view, value) = (ws.clone(), view.clone(), value.to_owned());
        let counter = self.rollup_rows_read.clone();
        self.read(move |c| read_rollups(c, &ws, &view, Some(&value), from_hour, to_hour, &counter))
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

/// The rollups of `view` (of its one `value` when given) for hours `[from_hour, to_hour)`, sorted
/// by key, the pending deltas of the non-core views merged; counts the rows read.
fn read_rollups(
    c: &Connection,
    ws: &WorkspaceId,
    view: &View,
    value: Option<&str>,
    from_hour: i64,
    to_hour: i64,
    counter: &std::sync::atomic::AtomicU64,
) -> Fallible<Vec<(RollupKey, Rollup)>> {
    // One snapshot for the rollups and the pending deltas: a fold committing in between must not
    // count a batch twice or not at all.
    let tx = c.unchecked_transaction()?;
    let name = view.encode();
    let mut stmt = match value {
        None => tx.prepare_cached(
            "SELECT hour, value, data FROM rollups WHERE workspace_id = ?1 AND view = ?2 AND hour >= ?3 AND hour < ?4 ORDER BY hour, value",
        )?,
        // The literal `view = 'user'` makes the partial index usable, `INDEXED BY` takes it.
        Some(_) if name == USER_VIEW => tx.prepare_cached(USER_VALUE_ROLLUPS)?,
        Some(_) => tx.prepare_cached(
            "SELECT hour, value, data FROM rollups WHERE workspace_id = ?1 AND view = ?2 AND hour >= ?3 AND hour < ?4 AND value = ?5 ORDER BY hour",
        )?,
    };
    let mut out = Vec::new();
    {
        let mut rows = match value {
            None => stmt.query(params![ws.as_str(), name, from_hour, to_hour])?,
            Some(v) if name == USER_VIEW => {
                stmt.query(params![ws.as_str(), v, from_hour, to_hour])?
            }
            Some(v) => stmt.query(params![ws.as_str(), name, from_hour, to_hour, v])?,
        };
        while let Some(row) = rows.next()? {
            let (hour, value, data) = (
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            );
            let r = Rollup::decode(&data)
                .ok_or_else(|| anyhow!("corrupt rollup {ws} {name} {hour} {value}"))?;
            out.push((
                RollupKey {
                    hour,
                    view: view.clone(),
                    value,
                },
                r,
            ));
        }
    }
    counter.fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
    drop(stmt);
    if !view.is_core() {
        let mut merged: std::collections::BTreeMap<RollupKey, Rollup> = out.into_iter().collect();
        for mut groups in pending_groups(&tx, ws)? {
            // Only the asked hours: a backfilled batch spans many.
            groups.retain_hours(from_hour..to_hour);
            for (k, delta) in groups.views(Select::One(view)) {
                if value.is_none_or(|v| k.value == v) {
                    merged.entry(k).or_default().merge(&delta);
                }
            }
        }
        out = merged.into_iter().collect();
    }
    Ok(out)
}

/// The storage name of the end-user view, the one view `rollups_by_user` indexes.
const USER_VIEW: &str = "user";

/// One end-user's rollups, through the partial index `rollups_by_user` (made by a migration).
/// Named: without statistics (no `ANALYZE`) the planner takes the primary key's range over
/// every end-user's rows of the hours, which covers `data` and so looks cheaper; `INDEXED BY`
/// also makes the statement fail to prepare, rather than scan, should the index not apply.
pub(super) const USER_VALUE_ROLLUPS: &str = "SELECT hour, value, data FROM rollups INDEXED BY rollups_by_user WHERE workspace_id = ?1 AND view = 'user' AND value = ?2 AND hour >= ?3 AND hour < ?4 ORDER BY hour";

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(c: &Connection, sql: &str) -> String {
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(params!["ws", "user-42", 0, 744], |r| r.get::<_, String>(3))
            .unwrap();
        rows.collect::<Result<Vec<_>, _>>().unwrap().join("; ")
    }

    /// One end-user's rollups are a range of the partial index, in hour order (no sort): not a
    /// scan of every end-user's rows of the hours asked.
    #[test]
    fn one_end_users_rollups_are_a_range_of_the_user_index() {
        let mut c = Connection::open_in_memory().unwrap();
        schema::migrate(&mut c).unwrap();
        let plan = plan(&c, USER_VALUE_ROLLUPS);
        assert!(
            plan.contains("USING INDEX rollups_by_user (workspace_id=? AND view=? AND value=? AND hour>? AND hour<?)"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}
