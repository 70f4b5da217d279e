//! Importing what a provider billed: the days due, a week per request so an interrupted import
//! keeps whole weeks and resumes after them, each day replaced whole (a re-import changes
//! nothing), and the outcome kept on the connection. Run on connect, on demand, and on a
//! schedule (daily on AWS; `llmtrack serve`'s upkeep locally) for every connection.

use chrono::{Duration, NaiveDate};
use llmtrack_shared::domain::reconciliation::{Connection, ImportStatus};
use llmtrack_shared::domain::time::{HOUR_MS, rfc3339, to_datetime};
use llmtrack_shared::ports::all_workspace_ids;

use crate::Deps;

/// Days imported when a connection is made.
pub const BACKFILL_DAYS: i64 = 30;
/// The last days are imported again on every run: providers add late usage for a day or two.
pub const RECHECK_DAYS: i64 = 3;
/// Days asked of the provider at once; an interrupted import keeps the whole chunks it got.
pub const CHUNK_DAYS: i64 = 7;
/// How far back an import may reach (on demand; a connection left failing catches up this far).
pub const MAX_DAYS_BACK: i64 = 366;
/// A scheduled run imports a connection again after this long (after a failure, sooner).
pub const EVERY_MS: i64 = 12 * HOUR_MS;
pub const RETRY_FAILED_MS: i64 = HOUR_MS;
/// How long an import made while someone waits (connecting, *Import now*) may take: the API
/// gateway gives up at 30 s. Stopped there, it keeps the weeks it has and the schedule imports
/// the rest.
pub const WAITED_FOR: std::time::Duration = std::time::Duration::from_secs(20);

/// The days `[from, to)` a connection's next import covers: from the day after the last one
/// imported whole (but the last [`RECHECK_DAYS`] again), or the last [`BACKFILL_DAYS`], through
/// today.
pub fn due_range(c: &Connection, today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let to = today + Duration::days(1);
    let recheck = to - Duration::days(RECHECK_DAYS);
    let oldest = today - Duration::days(MAX_DAYS_BACK);
    let from = match c
        .imported_through
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    {
        Some(done) => (done + Duration::days(1)).min(recheck).max(oldest),
        None => to - Duration::days(BACKFILL_DAYS),
    };
    (from, to)
}

/// The admin key, opened for one call to the provider.
pub async fn open_key(deps: &Deps, c: &Connection) -> anyhow::Result<String> {
    deps.vault
        .open(
            &c.sealed_key,
            &Connection::seal_context(&c.workspace, &c.id),
        )
        .await
}

/// Imports `[from, to)` for one connection, chunk by chunk, and records how it went on it (a
/// provider's refusal is an outcome, kept in `last_import`; only the store failing is an
/// error). Stops quietly if the connection is removed meanwhile, and removes what it wrote.
pub async fn run(
    deps: &Deps,
    c: &mut Connection,
    from: NaiveDate,
    to: NaiveDate,
    budget: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let store = &deps.store.connections;
    let key = open_key(deps, c).await?;
    let began = std::time::Instant::now();
    let mut days = 0u32;
    let mut failure = None;
    let mut left_over = None;
    let mut start = from;
    while start < to {
        if budget.is_some_and(|b| began.elapsed() >= b) {
            left_over = Some(format!(
                "imported through {}; the days after follow with the next scheduled import",
                c.imported_through.as_deref().unwrap_or("nothing yet")
            ));
            break;
        }
        let end = (start + Duration::days(CHUNK_DAYS)).min(to);
        let (first, next) = (start.to_string(), end.to_string());
        match deps
            .providers
            .billed(c.provider, &key, &c.scope, &first, &next)
            .await
        {
            Ok(rows) => {
                let chunk: Vec<String> = start
                    .iter_days()
                    .take_while(|d| *d < end)
                    .map(|d| d.to_string())
                    .collect();
                store
                    .replace_billed_days(&c.workspace, &c.id, &chunk, &rows)
                    .await?;
                days += chunk.len() as u32;
                let last = (end - Duration::days(1)).to_string();
                if c.imported_through.as_deref().is_none_or(|t| *t < *last) {
                    c.imported_through = Some(last);
                }
                if !store.update_connection(c).await? {
                    // Removed while this ran: what was just written goes too.
                    store.delete_connection(&c.workspace, &c.id).await?;
                    return Ok(());
                }
            }
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
        start = end;
    }
    if let Some(message) = &failure {
        tracing::warn!(workspace = %c.workspace, connection = %c.id, error = %message, "provider import failed");
    }
    c.last_import = Some(ImportStatus {
        at: rfc3339(deps.clock.now_ms()),
        ok: failure.is_none(),
        message: failure.or(left_over),
        days,
    });
    if !store.update_connection(c).await? {
        store.delete_connection(&c.workspace, &c.id).await?;
    }
    Ok(())
}

/// What a scheduled run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Imported {
    pub connections: usize,
    pub days: u32,
    pub failed: usize,
}

/// Whether a scheduled run should import this connection now.
pub fn due(c: &Connection, now_ms: i64) -> bool {
    match &c.last_import {
        None => true,
        Some(s) => {
            let at =
                chrono::DateTime::parse_from_rfc3339(&s.at).map_or(0, |t| t.timestamp_millis());
            // Failed, or cut short (a message on a finished import says the rest follows).
            let wait = if s.ok && s.message.is_none() {
                EVERY_MS
            } else {
                RETRY_FAILED_MS
            };
            now_ms - at >= wait
        }
    }
}

/// Imports every workspace's connections that are due.
pub async fn all(deps: &Deps) -> anyhow::Result<Imported> {
    let now = deps.clock.now_ms();
    let today = to_datetime(now).date_naive();
    let mut out = Imported::default();
    for ws in all_workspace_ids(deps.store.workspaces.as_ref()).await? {
        for mut c in deps.store.connections.connections(&ws).await? {
            if !due(&c, now) {
                continue;
            }
            let (from, to) = due_range(&c, today);
            // One connection failing (a store timeout) must not stop the others.
            if let Err(e) = run(deps, &mut c, from, to, None).await {
                tracing::error!(workspace = %ws, connection = %c.id, error = format!("{e:#}"), "provider import failed");
                out.failed += 1;
                continue;
            }
            out.connections += 1;
            if let Some(s) = &c.last_import {
                out.days += s.days;
                out.failed += usize::from(!s.ok);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmtrack_shared::domain::ids::WorkspaceId;
    use llmtrack_shared::domain::reconciliation::Provider;

    fn conn(through: Option<&str>) -> Connection {
        Connection {
            workspace: WorkspaceId::generate(0),
            id: "pc_1".into(),
            provider: Provider::OpenAi,
            sealed_key: vec![],
            key_hint: "…abcd".into(),
            scope: vec![],
            created_at_ms: 0,
            imported_through: through.map(str::to_owned),
            last_import: None,
        }
    }

    #[test]
    fn the_days_due() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        // First import: the last 30 days, today included.
        assert_eq!(
            due_range(&conn(None), today),
            (d("2026-11-04"), d("2026-12-04"))
        );
        // Up to date: the last three days again.
        assert_eq!(
            due_range(&conn(Some("2026-12-03")), today),
            (d("2026-12-01"), d("2026-12-04"))
        );
        // Interrupted after November 10th: resumes on the 11th.
        assert_eq!(
            due_range(&conn(Some("2026-11-10")), today),
            (d("2026-11-11"), d("2026-12-04"))
        );
        // Failing for two years: catches up a year at most.
        assert_eq!(
            due_range(&conn(Some("2024-01-01")), today),
            (d("2025-12-02"), d("2026-12-04"))
        );
    }
}
