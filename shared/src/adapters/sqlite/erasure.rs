//! Deletion: ranges of events, whole workspaces, people; and the scrub that leaves no copy.

use super::*;

/// Tries at truncating the log before the scrub gives up (the deletion job then fails, and is
/// resumed later).
const SCRUB_ATTEMPTS: usize = 100;

#[async_trait]
impl Erasure for SqliteStore {
    async fn finish_writes(&self, _ws: &WorkspaceId) -> StoreResult<()> {
        Ok(())
    }

    async fn delete_events_in_hour(
        &self,
        ws: &WorkspaceId,
        hour: i64,
        from_ms: i64,
        to_ms: i64,
        source: Option<&str>,
    ) -> StoreResult<u64> {
        let (ws, source) = (ws.clone(), source.map(str::to_owned));
        let (lo, hi) = (from_ms.max(hour * HOUR_MS), to_ms.min((hour + 1) * HOUR_MS));
        if lo >= hi {
            return Ok(0);
        }
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let deleted = tx.execute(
                "DELETE FROM events WHERE workspace_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3
                 AND (?4 IS NULL OR json_extract(body, '$.source') = ?4)",
                params![ws.as_str(), lo, hi, source],
            )? as i64;
            // One transaction: a deletion that did nothing left nothing to recompute.
            if deleted == 0 {
                return Ok(0);
            }
            // Quota is counted per month of the events' time; an hour lies in one month. Not
            // clamped at 0: reads clamp, and ingest adds to the same counter as on DynamoDB.
            tx.execute(
                "INSERT INTO usage (workspace_id, month, events) VALUES (?1, ?2, ?3)
                 ON CONFLICT (workspace_id, month) DO UPDATE SET events = events + excluded.events",
                params![ws.as_str(), month_of(hour * HOUR_MS), -deleted],
            )?;
            rebuild_hour(&tx, &ws, hour)?;
            tx.commit()?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn begin_deletion(&self, job: &Job, whole_workspace: bool) -> StoreResult<bool> {
        let (job, body) = (
            job.clone(),
            serde_json::to_string(job).map_err(|e| anyhow!(e))?,
        );
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let open: bool = tx
                .query_row(
                    "SELECT deleting IS NULL FROM workspaces WHERE id = ?1",
                    [job.workspace.as_str()],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(false);
            if !open {
                return Ok(false);
            }
            if whole_workspace {
                tx.execute(
                    "UPDATE workspaces SET deleting = ?1 WHERE id = ?2",
                    params![job.id, job.workspace.as_str()],
                )?;
            }
            tx.execute(
                "INSERT INTO jobs (workspace_id, id, finished, created_ms, version, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![job.workspace.as_str(), job.id, job_finished(&job), job.created_ms, job.version as i64, body],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn purge_workspace(&self, ws: &WorkspaceId, budget: usize) -> StoreResult<Purged> {
        let (ws, budget) = (ws.clone(), budget.max(1) as i64);
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut out = Purged::default();
            // The bulky tables a page at a time, so a large workspace never holds the writer
            // for long; a full page means there may be more.
            for (kind, sql) in [
                ("events", "DELETE FROM events WHERE workspace_id = ?1 AND (ts_ms, id) IN
                    (SELECT ts_ms, id FROM events WHERE workspace_id = ?1 LIMIT ?2)"),
                ("rollups", "DELETE FROM rollups WHERE workspace_id = ?1 AND (view, hour, value) IN
                    (SELECT view, hour, value FROM rollups WHERE workspace_id = ?1 LIMIT ?2)"),
                ("rollup_deltas", "DELETE FROM deltas WHERE workspace_id = ?1 AND seq IN
                    (SELECT seq FROM deltas WHERE workspace_id = ?1 LIMIT ?2)"),
            ] {
                let n = tx.execute(sql, params![ws.as_str(), budget])?;
                out.count(kind, n as u64);
                if n as i64 >= budget {
                    tx.commit()?;
                    return Ok(out);
                }
            }
            for (kind, sql) in [
                ("keys", "DELETE FROM api_keys WHERE workspace_id = ?1"),
                ("members", "DELETE FROM members WHERE workspace_id = ?1"),
                ("invitations", "DELETE FROM invitations WHERE workspace_id = ?1"),
                ("audit_entries", "DELETE FROM audit WHERE workspace_id = ?1"),
                ("usage_counters", "DELETE FROM usage WHERE workspace_id = ?1"),
                ("billing_records", "DELETE FROM billing WHERE workspace_id = ?1"),
                ("notices", "DELETE FROM notices WHERE workspace_id = ?1"),
                ("alert_rules", "DELETE FROM alert_rules WHERE workspace_id = ?1"),
                ("alert_events", "DELETE FROM alert_events WHERE workspace_id = ?1"),
                ("provider_connections", "DELETE FROM connections WHERE workspace_id = ?1"),
                ("billed_days", "DELETE FROM billed_days WHERE workspace_id = ?1"),
            ] {
                let n = tx.execute(sql, [ws.as_str()])?;
                out.count(kind, n as u64);
            }
            let n = tx.execute(
                "DELETE FROM jobs WHERE workspace_id = ?1 AND json_extract(body, '$.kind') IS NOT ?2",
                params![ws.as_str(), deletion::JOB_KIND],
            )?;
            out.count("jobs", n as u64);
            let n = tx.execute("DELETE FROM workspaces WHERE id = ?1", [ws.as_str()])?;
            out.count("workspace", n as u64);
            tx.commit()?;
            out.done = true;
            Ok(out)
        })
        .await
    }

    async fn delete_user(&self, user: &UserId) -> StoreResult<Purged> {
        let user = user.clone();
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut out = Purged::default();
            let email: Option<String> = tx
                .query_row(
                    "SELECT email FROM users WHERE id = ?1",
                    [user.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(email) = email {
                let n = tx.execute("DELETE FROM login_codes WHERE email = ?1", [email])?;
                out.count("sign_in_codes", n as u64);
            }
            for (kind, sql) in [
                ("sessions", "DELETE FROM sessions WHERE user_id = ?1"),
                ("memberships", "DELETE FROM members WHERE user_id = ?1"),
                ("user", "DELETE FROM users WHERE id = ?1"),
            ] {
                let n = tx.execute(sql, [user.as_str()])?;
                out.count(kind, n as u64);
            }
            tx.commit()?;
            out.done = true;
            Ok(out)
        })
        .await
    }

    async fn scrub(&self) -> StoreResult<()> {
        // A checkpoint already running (the checkpointer thread's passive one, every 200 ms)
        // makes this one answer busy at once, without the busy timeout: try again shortly.
        for _ in 0..SCRUB_ATTEMPTS {
            let busy = self
                .write(|c| {
                    // Blocks (up to the busy timeout) until readers are on the newest snapshot,
                    // copies every frame into the database (whose freed content `secure_delete`
                    // zeroed) and truncates the log to nothing.
                    let (busy, _, _): (i64, i64, i64) =
                        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                        })?;
                    Ok(busy != 0)
                })
                .await?;
            if !busy {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Err(anyhow!(
            "the write-ahead log could not be truncated: another checkpoint or readers were busy"
        )
        .into())
    }
}
