//! Rollups: the workspace total written with each batch, every other view through delta rows
//! folded later by the compactor thread, off the request path.

use super::*;

/// Batches whose deferred views wait in `deltas` before the compactor folds them.
pub(super) const COMPACT_EVERY: i64 = 32;

/// Folds a batch into the rollups: the workspace total at once, every other view through a
/// delta row, folded later with other batches' by the compactor thread. A batch has one group
/// per distinct (hour, provider, model, model as sent, feature, source, status) and per (hour,
/// feature, source, user); writing each of its 19 views row by row would cost about 2.5 row updates per event,
/// folding 32 batches at once a fraction of that. Readers merge the pending rows. Returns how
/// many delta rows are pending.
pub(super) fn add_batch(
    tx: &Connection,
    ws: &WorkspaceId,
    batch: &BatchRollups,
) -> anyhow::Result<i64> {
    if batch.delta.is_empty() {
        return Ok(0);
    }
    merge_rollups(tx, ws, &batch.total)?;
    let (seq, pending): (i64, i64) = tx
        .prepare_cached(
            "SELECT COALESCE(MAX(seq), 0) + 1, COUNT(*) + 1 FROM deltas WHERE workspace_id = ?1",
        )?
        .query_row(params![ws.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?;
    tx.prepare_cached("INSERT INTO deltas (workspace_id, seq, data) VALUES (?1, ?2, ?3)")?
        .execute(params![ws.as_str(), seq, batch.delta])?;
    Ok(pending)
}

/// Rollup rows one compaction step may write (past it, no further delta row is added; a step
/// writes at most this plus one row's views). Applying a step holds the single writer (about
/// 10 µs a row here, so at most ~20 ms), and ingest requests slip in between steps. Batches of
/// one busy period share most of their rollup rows, so a step usually folds every pending row at
/// once, writing each rollup row once for all of them (that sharing is what makes folding cheaper
/// than writing views at ingest: 0.6 rollup rows per event in the HTTP benchmark, against 2.5).
pub(super) const COMPACT_STEP_ROWS: usize = 2_000;

/// A delta row whose groups could touch more rollup rows than this is folded over several steps
/// (a batch backfilled over many hours).
pub(super) const COMPACT_SPLIT_ROWS: usize = 2 * COMPACT_STEP_ROWS;

/// The deferred views of a group kind that one group can touch: a fine group is in every view
/// but the total and the end-user ones (15), an end-user group in the three end-user views.
pub(super) const VIEWS_PER_FINE_GROUP: usize = 15;
pub(super) const VIEWS_PER_USER_GROUP: usize = 3;

/// One bounded step of folding a workspace's pending deltas: planned on the compactor's own
/// connection, outside the writer lock (decoding the batches' groups and expanding their views
/// is most of a step's work), then applied in one short writer transaction.
pub(super) struct Step {
    /// The rollup rows to add, folded from the rows below.
    deltas: std::collections::HashMap<RollupKey, Rollup>,
    /// The delta rows folded whole: (seq, data as read).
    folded: Vec<(i64, Vec<u8>)>,
    /// A row too large for one step: (seq, data as read, the rest to write back).
    split: Option<(i64, Vec<u8>, Vec<u8>)>,
    /// Whether rows are left after this step.
    more: bool,
}

/// Plans a step: the oldest rows, while their views come to at most `budget` rollup rows (an
/// oversized row alone is split).
pub(super) fn plan_step(c: &Connection, ws: &WorkspaceId, budget: usize) -> anyhow::Result<Step> {
    const ROWS: usize = 256;
    let rows: Vec<(i64, Vec<u8>)> = {
        let mut stmt = c.prepare_cached(
            "SELECT seq, data FROM deltas WHERE workspace_id = ?1 ORDER BY seq LIMIT 256",
        )?;
        stmt.query_map(params![ws.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut step = Step {
        deltas: std::collections::HashMap::new(),
        folded: Vec::new(),
        split: None,
        more: rows.len() == ROWS,
    };
    for (seq, data) in rows {
        if step.deltas.len() >= budget {
            step.more = true;
            break;
        }
        let mut groups = Groups::decode(&data, GROUPS_FORMAT)
            .map_err(|e| anyhow!("corrupt delta of {ws}: {e}"))?;
        let bound = groups.fine.len() * VIEWS_PER_FINE_GROUP
            + groups.users.len() * VIEWS_PER_USER_GROUP
            + groups.tags.len();
        if bound > COMPACT_SPLIT_ROWS {
            if !step.folded.is_empty() {
                step.more = true;
                break;
            }
            // Too large for one step: fold a part now and keep the rest for the next.
            let take_fine = (budget / VIEWS_PER_FINE_GROUP)
                .max(1)
                .min(groups.fine.len());
            let room = budget.saturating_sub(take_fine * VIEWS_PER_FINE_GROUP);
            let take_users = (room / VIEWS_PER_USER_GROUP)
                .max(usize::from(take_fine == 0))
                .min(groups.users.len());
            // Tags (one view each) once the others are all taken, at least one if nothing else.
            let room = room.saturating_sub(take_users * VIEWS_PER_USER_GROUP);
            let take_tags = if take_fine == groups.fine.len() && take_users == groups.users.len() {
                room.max(usize::from(take_fine + take_users == 0))
                    .min(groups.tags.len())
            } else {
                0
            };
            let rest = Groups {
                fine: groups.fine.split_off(take_fine),
                users: groups.users.split_off(take_users),
                tags: groups.tags.split_off(take_tags),
            };
            groups.views_into(Select::Deferred, &mut step.deltas);
            step.split = Some((seq, data, postcard::to_stdvec(&rest)?));
            step.more = true;
            break;
        }
        groups.views_into(Select::Deferred, &mut step.deltas);
        step.folded.push((seq, data));
    }
    Ok(step)
}

/// Applies a planned step in the writer's transaction. Each row it folds must still be there
/// as it was read (retention or a deletion may have folded or removed it, and its seq been
/// reused since); if one is not, nothing may be kept: returns `false` and the caller rolls back.
pub(super) fn apply_step(
    tx: &rusqlite::Transaction,
    ws: &WorkspaceId,
    step: &Step,
) -> anyhow::Result<bool> {
    let mut delete =
        tx.prepare_cached("DELETE FROM deltas WHERE workspace_id = ?1 AND seq = ?2 AND data = ?3")?;
    for (seq, data) in &step.folded {
        if delete.execute(params![ws.as_str(), seq, data])? != 1 {
            return Ok(false);
        }
    }
    if let Some((seq, data, rest)) = &step.split {
        let n = tx
            .prepare_cached(
                "UPDATE deltas SET data = ?3 WHERE workspace_id = ?1 AND seq = ?2 AND data = ?4",
            )?
            .execute(params![ws.as_str(), seq, rest, data])?;
        if n != 1 {
            return Ok(false);
        }
    }
    merge_rollups(tx, ws, &step.deltas)?;
    Ok(true)
}

/// The compactor: a thread that folds workspaces' pending deltas off the request path, one
/// short writer transaction at a time.
#[derive(Clone)]
pub(super) struct Compactor {
    queue: std::sync::mpsc::Sender<WorkspaceId>,
    /// Workspaces queued and not yet folded, so a busy workspace is queued once.
    queued: Arc<Mutex<std::collections::HashSet<WorkspaceId>>>,
}

impl Compactor {
    pub(super) fn start(path: &Path, writer: Arc<Mutex<Connection>>) -> anyhow::Result<Compactor> {
        // Its own connection, for planning steps without the writer lock.
        let reader = open(path)?;
        let (queue, jobs) = std::sync::mpsc::channel::<WorkspaceId>();
        let queued: Arc<Mutex<std::collections::HashSet<WorkspaceId>>> = Arc::default();
        let seen = queued.clone();
        // Ends when every store clone (and so every sender) is gone.
        std::thread::Builder::new()
            .name("sqlite-compactor".into())
            .spawn(move || {
                for ws in jobs {
                    if let Ok(mut q) = seen.lock() {
                        q.remove(&ws);
                    }
                    if let Err(e) = compact_bounded(&reader, &writer, &ws) {
                        tracing::error!(workspace = %ws, error = format!("{e:#}"), "folding rollup deltas failed");
                    }
                }
            })
            .context("starting the compactor thread")?;
        Ok(Compactor { queue, queued })
    }

    pub(super) fn request(&self, ws: &WorkspaceId) {
        let fresh = self
            .queued
            .lock()
            .map(|mut q| q.insert(ws.clone()))
            .unwrap_or(true);
        if fresh {
            // A closed queue means the store is being dropped: nothing left to fold for.
            let _ = self.queue.send(ws.clone());
        }
    }
}

/// Folds a workspace's deltas in bounded steps, each planned on the compactor's connection and
/// applied in a short writer transaction, so ingest requests slip in between.
pub(super) fn compact_bounded(
    reader: &Connection,
    writer: &Mutex<Connection>,
    ws: &WorkspaceId,
) -> anyhow::Result<()> {
    loop {
        let step = plan_step(reader, ws, COMPACT_STEP_ROWS)?;
        if step.folded.is_empty() && step.split.is_none() {
            return Ok(());
        }
        let applied = {
            let mut conn = writer
                .lock()
                .map_err(|_| anyhow!("sqlite writer lock poisoned"))?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let applied = apply_step(&tx, ws, &step)?;
            if applied {
                tx.commit()?;
            }
            applied
        };
        if applied && !step.more {
            return Ok(());
        }
        // Let the writers queued behind this step go first.
        std::thread::yield_now();
    }
}

/// A batch's rollup work, prepared before the writer lock is taken (the lock is the throughput
/// bottleneck): the total view's deltas, and the groups encoded as the batch's delta row (empty
/// when the batch has no event).
pub(super) struct BatchRollups {
    total: std::collections::HashMap<RollupKey, Rollup>,
    delta: Vec<u8>,
}

impl BatchRollups {
    pub(super) fn of<'a>(
        events: impl IntoIterator<Item = &'a Event>,
    ) -> anyhow::Result<BatchRollups> {
        let groups = Groups::of(events);
        Ok(BatchRollups {
            total: groups.views(Select::Core),
            delta: if groups.is_empty() {
                Vec::new()
            } else {
                postcard::to_stdvec(&groups)?
            },
        })
    }
}

/// Folds every pending delta of a workspace into its rollups.
pub(super) fn compact(tx: &rusqlite::Transaction, ws: &WorkspaceId) -> anyhow::Result<()> {
    let mut all = Groups::default();
    for g in pending_groups(tx, ws)? {
        all.extend(g);
    }
    merge_rollups(tx, ws, &all.views(Select::Deferred))?;
    tx.prepare_cached("DELETE FROM deltas WHERE workspace_id = ?1")?
        .execute(params![ws.as_str()])?;
    Ok(())
}

/// Rebuilds one hour's rollups, every view, from the events it holds, inside the caller's
/// transaction: after events of the hour were deleted or repriced. Pending deltas still count
/// the hour's events as they were: they are folded first, so the rows replaced here are the
/// only place the hour is counted.
pub(super) fn rebuild_hour(
    tx: &rusqlite::Transaction,
    ws: &WorkspaceId,
    hour: i64,
) -> anyhow::Result<()> {
    compact(tx, ws)?;
    let events: Vec<Event> = {
        let mut stmt = tx.prepare_cached(
            "SELECT body FROM events WHERE workspace_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
        )?;
        let rows = stmt.query_map(
            params![ws.as_str(), hour * HOUR_MS, (hour + 1) * HOUR_MS],
            |r| r.get::<_, String>(0),
        )?;
        rows.map(|b| Ok(serde_json::from_str(&b?)?))
            .collect::<anyhow::Result<_>>()?
    };
    tx.prepare_cached("DELETE FROM rollups WHERE workspace_id = ?1 AND hour = ?2")?
        .execute(params![ws.as_str(), hour])?;
    merge_rollups(tx, ws, &rollup::fold(&events))
}

pub(super) fn pending_groups(c: &Connection, ws: &WorkspaceId) -> anyhow::Result<Vec<Groups>> {
    let mut stmt =
        c.prepare_cached("SELECT data FROM deltas WHERE workspace_id = ?1 ORDER BY seq")?;
    let rows = stmt.query_map(params![ws.as_str()], |r| r.get::<_, Vec<u8>>(0))?;
    // The schema migration that brought format 2 folded every delta stored before it.
    rows.map(|data| {
        Groups::decode(&data?, GROUPS_FORMAT).map_err(|e| anyhow!("corrupt delta of {ws}: {e}"))
    })
    .collect()
}

/// Adds deltas to the stored rollups, inside the caller's transaction.
pub(super) fn merge_rollups(
    tx: &Connection,
    ws: &WorkspaceId,
    deltas: &std::collections::HashMap<RollupKey, Rollup>,
) -> anyhow::Result<()> {
    let mut get = tx.prepare_cached(
        "SELECT data FROM rollups WHERE workspace_id = ?1 AND view = ?2 AND hour = ?3 AND value = ?4",
    )?;
    let mut put = tx.prepare_cached(
        "INSERT INTO rollups (workspace_id, view, hour, value, data) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (workspace_id, view, hour, value) DO UPDATE SET data = excluded.data",
    )?;
    for (k, delta) in deltas {
        let view = k.view.encode();
        let existing: Option<Vec<u8>> = get
            .query_row(params![ws.as_str(), view, k.hour, k.value], |r| r.get(0))
            .optional()?;
        let mut merged = match existing {
            Some(bytes) => Rollup::decode(&bytes)
                .ok_or_else(|| anyhow!("corrupt rollup {ws} {view} {} {}", k.hour, k.value))?,
            None => Rollup::default(),
        };
        merged.merge(delta);
        put.execute(params![ws.as_str(), view, k.hour, k.value, merged.encode()])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::sqlite::test_events as events;

    fn add_delta(c: &Connection, ws: &WorkspaceId, seq: i64, events: &[Event]) {
        c.execute(
            "INSERT INTO deltas (workspace_id, seq, data) VALUES (?1, ?2, ?3)",
            params![ws.as_str(), seq, BatchRollups::of(events).unwrap().delta],
        )
        .unwrap();
    }

    /// A step planned outside the writer lock must not be applied over rows that changed since:
    /// retention folded them meanwhile and a new batch took the same seq. Applying it anyway
    /// would count the first batch twice and lose the new one.
    #[test]
    fn a_planned_step_is_not_applied_over_rows_that_changed() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        let ws = WorkspaceId::generate(1_800_000_000_000);
        add_delta(&c, &ws, 1, &events(&["a"]));
        let step = plan_step(&c, &ws, COMPACT_STEP_ROWS).unwrap();
        assert_eq!(step.folded.len(), 1);

        // Meanwhile: everything is folded, and the next batch reuses seq 1.
        let tx = c.transaction().unwrap();
        compact(&tx, &ws).unwrap();
        tx.commit().unwrap();
        add_delta(&c, &ws, 1, &events(&["b"]));

        let tx = c.transaction().unwrap();
        assert!(!apply_step(&tx, &ws, &step).unwrap());
        drop(tx);
        let pending: i64 = c
            .query_row("SELECT COUNT(*) FROM deltas", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pending, 1, "the new batch's delta must stay to be folded");

        // Planned again, it folds the new batch, and each feature is counted once.
        let step = plan_step(&c, &ws, COMPACT_STEP_ROWS).unwrap();
        let tx = c.transaction().unwrap();
        assert!(apply_step(&tx, &ws, &step).unwrap());
        tx.commit().unwrap();
        for feature in ["a", "b"] {
            let rows: Vec<Vec<u8>> = c
                .prepare("SELECT data FROM rollups WHERE view = 'feature' AND value = ?1")
                .unwrap()
                .query_map([feature], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(rows.len(), 1, "{feature}");
            assert_eq!(Rollup::decode(&rows[0]).unwrap().requests, 1, "{feature}");
        }
    }
}
