//! The embedded SQLite store: the local and self-hosted default.
//!
//! One writer connection (SQLite allows one writer at a time anyway) and a few readers, WAL mode so
//! readers never wait on the writer. A batch is one transaction: events, rollups and the quota
//! counter commit together or not at all, which is what makes a crash mid-batch harmless here.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, anyhow, bail};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use crate::domain::access::Role;
use crate::domain::account::{
    CODE_MAX_ATTEMPTS, CodeCheck, Email, Invitation, LoginCode, Membership, Session, User,
};
use crate::domain::alert::{AlertEvent, AlertRule};
use crate::domain::apikey::{ApiKey, KeyHash, KeyState, Scope};
use crate::domain::audit::{AUDIT_RETENTION_MS, AuditEntry};
use crate::domain::billing::Billing;
use crate::domain::deletion;
use crate::domain::event::Event;
use crate::domain::ids::{InvitationId, KeyId, UserId, WorkspaceId};
use crate::domain::plan::Plan;
use crate::domain::retention::{self, EventFate};
use crate::domain::rollup::{self, Groups, Rollup, RollupKey, Select, View};
use crate::domain::time::{HOUR_MS, month_of};
use crate::ports::{
    BillingSave, IngestOutcome, Job, JobState, Purged, Quota, Refusal, Retained, Store, StoreError,
    StoreResult, Stored, Workspace,
};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    timezone TEXT NOT NULL DEFAULT 'UTC',
    created_ms INTEGER NOT NULL,
    deleting TEXT
);
CREATE TABLE IF NOT EXISTS api_keys (
    hash TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    scope TEXT NOT NULL,
    state TEXT NOT NULL,
    prefix TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    created_by TEXT,
    last_used_ms INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_by_workspace ON api_keys (workspace_id, id);
CREATE TABLE IF NOT EXISTS events (
    workspace_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    id TEXT NOT NULL,
    idempotency_key TEXT,
    expires_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (workspace_id, ts_ms, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_by_idempotency_key
    ON events (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_by_expiry ON events (expires_ms);
CREATE TABLE IF NOT EXISTS rollups (
    workspace_id TEXT NOT NULL,
    view TEXT NOT NULL,
    hour INTEGER NOT NULL,
    value TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (workspace_id, view, hour, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    finished INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs (finished, created_ms);
CREATE TABLE IF NOT EXISTS deltas (
    workspace_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (workspace_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS billing (
    workspace_id TEXT PRIMARY KEY,
    customer_id TEXT,
    due_ms INTEGER,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS billing_by_customer ON billing (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS billing_by_due ON billing (due_ms) WHERE due_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS stripe_events (
    id TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    created_ms INTEGER NOT NULL,
    reports_opt_out INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS notices (
    workspace_id TEXT NOT NULL,
    key TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_rules (
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_events (
    workspace_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (workspace_id, rule_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS login_codes (
    email TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rate_limits (
    bucket TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    hits INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (bucket, window_start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sessions (
    hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (user_id);
CREATE TABLE IF NOT EXISTS members (
    workspace_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_user ON members (user_id);
CREATE TABLE IF NOT EXISTS invitations (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    invited_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS invitations_by_workspace ON invitations (workspace_id);
CREATE TABLE IF NOT EXISTS audit (
    workspace_id TEXT NOT NULL,
    id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    actor_id TEXT NOT NULL,
    actor_email TEXT,
    action TEXT NOT NULL,
    target TEXT,
    ip TEXT,
    PRIMARY KEY (workspace_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (
    workspace_id TEXT NOT NULL,
    month TEXT NOT NULL,
    events INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, month)
) WITHOUT ROWID;
"#;

const READERS: usize = 4;

#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
    /// Workspaces with deltas to fold, for the compactor thread.
    compactor: Compactor,
    _checkpointer: Arc<Checkpointer>,
    /// Rollup rows read so far: what the query benchmark reports (cost must not grow with volume).
    rollup_rows_read: Arc<std::sync::atomic::AtomicU64>,
}

fn open(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Deleted rows are overwritten with zeros, not left in free space: the privacy policy
    // promises deletion from active systems, and a database file is one.
    conn.pragma_update(None, "secure_delete", "ON")?;
    // WAL: readers do not block the writer; NORMAL sync is durable across process crashes (the
    // failure this store guards against) and fast; a power loss may drop the last transactions.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // A larger page cache: profiling the ingest benchmark showed most of the writer's time in
    // pread() copies of pages SQLite's default 2 MB cache had dropped.
    conn.pragma_update(None, "cache_size", -65_536)?;
    // No checkpoint in the committing connection: one copies the log's pages into the database
    // and syncs both (30-100 ms for tens of MB), and would stall every ingest queued behind the
    // writer. The checkpointer thread does it beside the writer instead.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    Ok(conn)
}

/// How often the checkpointer copies the log into the database. Under full ingest load the log
/// grows ~50 MB/s here, so a checkpoint copies ~10 MB; idle, a checkpoint finds nothing to do.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Log pages (4 KB) past which the checkpointer waits for the writer to restart the log: passive
/// checkpoints keep up with any load measured, but the log must not grow without bound if a
/// long read ever pins it.
const WAL_MAX_PAGES: i64 = 64_000;

/// Copies the write-ahead log into the database on its own connection and thread. A passive
/// checkpoint runs beside the writer (it takes no write lock); the writer restarts the log
/// once every frame is copied.
struct Checkpointer {
    /// Dropped with the last store clone, which ends the thread.
    _alive: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    fn start(path: &Path) -> anyhow::Result<Checkpointer> {
        let conn = open(path)?;
        let (alive, stop) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpointer".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stop.recv_timeout(CHECKPOINT_EVERY)
                {
                    if let Err(e) = checkpoint(&conn) {
                        tracing::warn!(error = format!("{e:#}"), "WAL checkpoint failed");
                    }
                }
            })
            .context("starting the checkpointer thread")?;
        Ok(Checkpointer { _alive: alive })
    }
}

fn checkpoint(conn: &Connection) -> anyhow::Result<()> {
    let (_, log, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if log > WAL_MAX_PAGES {
        // Waits (within the busy timeout) for the writer and readers, copies the rest, and
        // makes the next writer start the log from its beginning.
        conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))?;
    }
    Ok(())
}

/// (table, column, declaration) of every column added after its table was first released.
const ADDED_COLUMNS: [(&str, &str, &str); 4] = [
    ("users", "reports_opt_out", "INTEGER NOT NULL DEFAULT 0"),
    ("workspaces", "timezone", "TEXT NOT NULL DEFAULT 'UTC'"),
    ("workspaces", "deleting", "TEXT"),
    ("api_keys", "created_by", "TEXT"),
];

/// Creates the schema. A store from before rollup views (its rollups keyed by `dimension`)
/// gets its rollups rebuilt from the raw events, so the new views cover its history too.
fn migrate(c: &mut Connection) -> anyhow::Result<()> {
    let old_rollups: bool = c.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('rollups') WHERE name = 'dimension'",
        [],
        |r| r.get(0),
    )?;
    let tx = c.transaction()?;
    if old_rollups {
        // Rebuilt from the raw events below, with every view.
        tx.execute_batch("DROP TABLE rollups; DROP TABLE IF EXISTS deltas;")?;
    }
    // Columns added since the first release: a store created before them gets them, with
    // the default every earlier row implied.
    for (table, column, declaration) in ADDED_COLUMNS {
        let exists: bool = tx.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )?;
        let has: bool = tx.query_row(
            &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
            [column],
            |r| r.get(0),
        )?;
        if exists && !has {
            tx.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {declaration}"
            ))?;
        }
    }
    tx.execute_batch(SCHEMA).context("creating the schema")?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 1 {
        // Idempotency keys were `{id}@{ts}`, or the id alone when sent without a timestamp: two
        // events could share one. Rewritten to the tagged form of `Event::idempotency_key`.
        // Through a control-character prefix no id holds, so no row meets another's key midway.
        tx.execute_batch(
            "UPDATE events SET idempotency_key = char(1) ||
                 CASE WHEN idempotency_key = id THEN 'i:' || id ELSE 't:' || ts_ms || ':' || id END
             WHERE idempotency_key IS NOT NULL;
             UPDATE events SET idempotency_key = substr(idempotency_key, 2)
             WHERE idempotency_key IS NOT NULL;
             PRAGMA user_version = 1;",
        )
        .context("migrating idempotency keys")?;
    }
    if old_rollups {
        let workspaces: Vec<String> = {
            let mut stmt = tx.prepare("SELECT DISTINCT workspace_id FROM events")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for ws in workspaces {
            let ws = WorkspaceId::parse(&ws).ok_or_else(|| anyhow!("bad workspace id {ws}"))?;
            let events: Vec<Event> = {
                let mut stmt = tx.prepare("SELECT body FROM events WHERE workspace_id = ?1")?;
                let rows = stmt.query_map([ws.as_str()], |r| r.get::<_, String>(0))?;
                rows.map(|b| Ok(serde_json::from_str(&b?)?))
                    .collect::<anyhow::Result<_>>()?
            };
            merge_rollups(&tx, &ws, &rollup::fold(&events))?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Batches whose deferred views wait in `deltas` before the compactor folds them.
const COMPACT_EVERY: i64 = 32;

/// Folds a batch into the rollups: the workspace total at once, every other view through a
/// delta row, folded later with other batches' by the compactor thread. A batch has one group
/// per distinct (hour, provider, model, feature, source, status) and per (hour, feature, source,
/// user); writing each of its 17 views row by row would cost about 2.5 row updates per event,
/// folding 32 batches at once a fraction of that. Readers merge the pending rows. Returns how
/// many delta rows are pending.
fn add_batch(
    tx: &rusqlite::Transaction,
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
const COMPACT_STEP_ROWS: usize = 2_000;

/// A delta row whose groups could touch more rollup rows than this is folded over several steps
/// (a batch backfilled over many hours).
const COMPACT_SPLIT_ROWS: usize = 2 * COMPACT_STEP_ROWS;

/// The deferred views of a group kind that one group can touch: a fine group is in every view
/// but the total and the end-user ones (13), an end-user group in the three end-user views.
const VIEWS_PER_FINE_GROUP: usize = 13;
const VIEWS_PER_USER_GROUP: usize = 3;

/// One bounded step of folding a workspace's pending deltas: planned on the compactor's own
/// connection, outside the writer lock (decoding the batches' groups and expanding their views
/// is most of a step's work), then applied in one short writer transaction.
struct Step {
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
fn plan_step(c: &Connection, ws: &WorkspaceId, budget: usize) -> anyhow::Result<Step> {
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
        let mut groups: Groups =
            postcard::from_bytes(&data).map_err(|e| anyhow!("corrupt delta of {ws}: {e}"))?;
        let bound =
            groups.fine.len() * VIEWS_PER_FINE_GROUP + groups.users.len() * VIEWS_PER_USER_GROUP;
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
            let rest = Groups {
                fine: groups.fine.split_off(take_fine),
                users: groups.users.split_off(take_users),
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
fn apply_step(tx: &rusqlite::Transaction, ws: &WorkspaceId, step: &Step) -> anyhow::Result<bool> {
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
struct Compactor {
    queue: std::sync::mpsc::Sender<WorkspaceId>,
    /// Workspaces queued and not yet folded, so a busy workspace is queued once.
    queued: Arc<Mutex<std::collections::HashSet<WorkspaceId>>>,
}

impl Compactor {
    fn start(path: &Path, writer: Arc<Mutex<Connection>>) -> anyhow::Result<Compactor> {
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

    fn request(&self, ws: &WorkspaceId) {
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
fn compact_bounded(
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
struct BatchRollups {
    total: std::collections::HashMap<RollupKey, Rollup>,
    delta: Vec<u8>,
}

impl BatchRollups {
    fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> anyhow::Result<BatchRollups> {
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
fn compact(tx: &rusqlite::Transaction, ws: &WorkspaceId) -> anyhow::Result<()> {
    let mut all = Groups::default();
    for g in pending_groups(tx, ws)? {
        all.extend(g);
    }
    merge_rollups(tx, ws, &all.views(Select::Deferred))?;
    tx.prepare_cached("DELETE FROM deltas WHERE workspace_id = ?1")?
        .execute(params![ws.as_str()])?;
    Ok(())
}

fn pending_groups(c: &Connection, ws: &WorkspaceId) -> anyhow::Result<Vec<Groups>> {
    let mut stmt =
        c.prepare_cached("SELECT data FROM deltas WHERE workspace_id = ?1 ORDER BY seq")?;
    let rows = stmt.query_map(params![ws.as_str()], |r| r.get::<_, Vec<u8>>(0))?;
    rows.map(|data| postcard::from_bytes(&data?).map_err(|e| anyhow!("corrupt delta of {ws}: {e}")))
        .collect()
}

/// Adds deltas to the stored rollups, inside the caller's transaction.
fn merge_rollups(
    tx: &rusqlite::Transaction,
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

impl SqliteStore {
    /// Folds a workspace's pending deltas now (benchmarks and operators; ingest folds every
    /// `COMPACT_EVERY` batches on its own).
    pub async fn compact(&self, ws: &WorkspaceId) -> StoreResult<()> {
        let ws = ws.clone();
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            compact(&tx, &ws)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub fn rollup_rows_read(&self) -> u64 {
        self.rollup_rows_read
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        let mut writer = open(path)?;
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| open(path).map(Mutex::new))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let writer = Arc::new(Mutex::new(writer));
        Ok(SqliteStore {
            _checkpointer: Arc::new(Checkpointer::start(path)?),
            compactor: Compactor::start(path, writer.clone())?,
            writer,
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
            rollup_rows_read: Arc::default(),
        })
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer
                .lock()
                .map_err(|_| anyhow!("sqlite writer lock poisoned"))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| anyhow!("sqlite task failed: {e}"))?
        .map_err(classify)
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let readers = self.readers.clone();
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % readers.len();
        tokio::task::spawn_blocking(move || {
            let conn = readers[i]
                .lock()
                .map_err(|_| anyhow!("sqlite reader lock poisoned"))?;
            f(&conn)
        })
        .await
        .map_err(|e| anyhow!("sqlite task failed: {e}"))?
        .map_err(StoreError::Unexpected)
    }
}

fn classify(e: anyhow::Error) -> StoreError {
    if let Some(r) = e.downcast_ref::<Refusal>() {
        return StoreError::Refused(*r);
    }
    match e.downcast_ref::<rusqlite::Error>() {
        Some(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict("a record with that id".into())
        }
        _ => StoreError::Unexpected(e),
    }
}

/// All rows of a query, mapped.
fn job_finished(job: &Job) -> bool {
    matches!(job.state, JobState::Done | JobState::Failed)
}

fn list<T>(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnMut(&rusqlite::Row) -> rusqlite::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let mut stmt = c.prepare_cached(sql)?;
    Ok(stmt
        .query_map(params, map)?
        .collect::<Result<Vec<_>, _>>()?)
}

/// Active keys of a workspace, not counting `except`.
fn active_keys(c: &Connection, ws: &WorkspaceId, except: Option<&KeyId>) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT count(*) FROM api_keys WHERE workspace_id = ?1 AND state = 'active' AND id != ?2",
        params![ws.as_str(), except.map_or("", KeyId::as_str)],
        |r| r.get(0),
    )
}

fn owners(c: &Connection, ws: &WorkspaceId) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT count(*) FROM members WHERE workspace_id = ?1 AND role = 'owner'",
        [ws.as_str()],
        |r| r.get(0),
    )
}

fn member_from_row(row: &rusqlite::Row) -> rusqlite::Result<Membership> {
    let bad = |what: &str| rusqlite::Error::InvalidColumnName(what.to_owned());
    Ok(Membership {
        workspace_id: WorkspaceId::parse(&row.get::<_, String>("workspace_id")?)
            .ok_or_else(|| bad("workspace_id"))?,
        user_id: UserId::parse(&row.get::<_, String>("user_id")?).ok_or_else(|| bad("user_id"))?,
        email: Email::parse(&row.get::<_, String>("email")?).map_err(|_| bad("email"))?,
        role: Role::parse(&row.get::<_, String>("role")?).ok_or_else(|| bad("role"))?,
        since_ms: row.get("since_ms")?,
    })
}

fn invitation_from_row(row: &rusqlite::Row) -> rusqlite::Result<Invitation> {
    let bad = |what: &str| rusqlite::Error::InvalidColumnName(what.to_owned());
    Ok(Invitation {
        id: InvitationId::parse(&row.get::<_, String>("id")?).ok_or_else(|| bad("id"))?,
        workspace_id: WorkspaceId::parse(&row.get::<_, String>("workspace_id")?)
            .ok_or_else(|| bad("workspace_id"))?,
        email: Email::parse(&row.get::<_, String>("email")?).map_err(|_| bad("email"))?,
        role: Role::parse(&row.get::<_, String>("role")?).ok_or_else(|| bad("role"))?,
        invited_by: UserId::parse(&row.get::<_, String>("invited_by")?)
            .ok_or_else(|| bad("invited_by"))?,
        created_ms: row.get("created_ms")?,
        expires_ms: row.get("expires_ms")?,
    })
}

fn user_from_row(row: &rusqlite::Row) -> rusqlite::Result<User> {
    let bad = |what: &str| rusqlite::Error::InvalidColumnName(what.to_owned());
    Ok(User {
        id: UserId::parse(&row.get::<_, String>("id")?).ok_or_else(|| bad("id"))?,
        email: Email::parse(&row.get::<_, String>("email")?).map_err(|_| bad("email"))?,
        created_ms: row.get("created_ms")?,
        reports_opt_out: row.get("reports_opt_out")?,
    })
}

fn key_from_row(row: &rusqlite::Row) -> rusqlite::Result<ApiKey> {
    let parse_err = |what: &str| rusqlite::Error::InvalidColumnName(what.to_owned());
    Ok(ApiKey {
        hash: KeyHash(row.get("hash")?),
        id: KeyId::parse(&row.get::<_, String>("id")?).ok_or_else(|| parse_err("id"))?,
        workspace_id: WorkspaceId::parse(&row.get::<_, String>("workspace_id")?)
            .ok_or_else(|| parse_err("workspace_id"))?,
        name: row.get("name")?,
        source: row.get("source")?,
        scope: Scope::parse(&row.get::<_, String>("scope")?).ok_or_else(|| parse_err("scope"))?,
        state: KeyState::parse(&row.get::<_, String>("state")?)
            .ok_or_else(|| parse_err("state"))?,
        prefix: row.get("prefix")?,
        created_ms: row.get("created_ms")?,
        created_by: row.get("created_by")?,
        last_used_ms: row.get("last_used_ms")?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_workspace(&self, ws: &Workspace) -> StoreResult<()> {
        let ws = ws.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO workspaces (id, name, plan, timezone, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![ws.id.as_str(), ws.name, ws.plan.as_str(), ws.timezone, ws.created_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn workspace(&self, id: &WorkspaceId) -> StoreResult<Option<Workspace>> {
        let id = id.clone();
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT name, plan, timezone, created_ms, deleting FROM workspaces WHERE id = ?1",
                    [id.as_str()],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<String>>(4)?,
                        ))
                    },
                )
                .optional()?;
            row.map(|(name, plan, timezone, created_ms, deleting)| {
                let plan = Plan::parse(&plan)
                    .ok_or_else(|| anyhow!("workspace {id} has unknown plan {plan}"))?;
                Ok(Workspace {
                    id,
                    name,
                    plan,
                    timezone,
                    created_ms,
                    deleting,
                })
            })
            .transpose()
        })
        .await
    }

    async fn set_plan(&self, id: &WorkspaceId, plan: Plan) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE workspaces SET plan = ?1 WHERE id = ?2",
                params![plan.as_str(), id.as_str()],
            )? == 1)
        })
        .await
    }

    async fn update_workspace(&self, ws: &Workspace) -> StoreResult<bool> {
        let ws = ws.clone();
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE workspaces SET name = ?1, timezone = ?2 WHERE id = ?3",
                params![ws.name, ws.timezone, ws.id.as_str()],
            )? == 1)
        })
        .await
    }

    async fn create_key(&self, key: &ApiKey, max_active: u32) -> StoreResult<()> {
        let k = key.clone();
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if active_keys(&tx, &k.workspace_id, None)? >= i64::from(max_active) {
                return Err(Refusal::KeyLimit.into());
            }
            tx.execute(
                "INSERT INTO api_keys (hash, id, workspace_id, name, source, scope, state, prefix, created_ms, created_by, last_used_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    k.hash.0,
                    k.id.as_str(),
                    k.workspace_id.as_str(),
                    k.name,
                    k.source,
                    k.scope.as_str(),
                    k.state.as_str(),
                    k.prefix,
                    k.created_ms,
                    k.created_by,
                    k.last_used_ms
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<ApiKey>> {
        let hash = hash.0.clone();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT * FROM api_keys WHERE hash = ?1",
                [hash],
                key_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn keys(&self, ws: &WorkspaceId) -> StoreResult<Vec<ApiKey>> {
        let ws = ws.clone();
        self.read(move |c| {
            list(
                c,
                "SELECT * FROM api_keys WHERE workspace_id = ?1 ORDER BY id",
                [ws.as_str()],
                key_from_row,
            )
        })
        .await
    }

    async fn set_key_state(
        &self,
        ws: &WorkspaceId,
        key: &KeyId,
        state: KeyState,
        max_active: u32,
    ) -> StoreResult<bool> {
        let (ws, key) = (ws.clone(), key.clone());
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if state == KeyState::Active
                && active_keys(&tx, &ws, Some(&key))? >= i64::from(max_active)
            {
                return Err(Refusal::KeyLimit.into());
            }
            let changed = tx.execute(
                "UPDATE api_keys SET state = ?1 WHERE workspace_id = ?2 AND id = ?3",
                params![state.as_str(), ws.as_str(), key.as_str()],
            )? == 1;
            tx.commit()?;
            Ok(changed)
        })
        .await
    }

    async fn delete_key(&self, ws: &WorkspaceId, key: &KeyId) -> StoreResult<bool> {
        let (ws, key) = (ws.clone(), key.clone());
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM api_keys WHERE workspace_id = ?1 AND id = ?2",
                params![ws.as_str(), key.as_str()],
            )? == 1)
        })
        .await
    }

    async fn touch_key(&self, key: &ApiKey, at_ms: i64) -> StoreResult<()> {
        let hash = key.hash.0.clone();
        self.write(move |c| {
            c.execute("UPDATE api_keys SET last_used_ms = max(coalesce(last_used_ms, 0), ?1) WHERE hash = ?2", params![at_ms, hash])?;
            Ok(())
        })
        .await
    }

    async fn ingest(
        &self,
        ws: &WorkspaceId,
        events: &[Event],
        quota: &Quota,
    ) -> StoreResult<IngestOutcome> {
        // Serialise outside the writer lock: the lock is the throughput bottleneck.
        let bodies = events
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!(e))?;
        let prepared = BatchRollups::of(events)?;
        let events = events.to_vec();
        let (ws, quota) = (ws.clone(), quota.clone());
        let workspace = ws.clone();
        let (outcome, pending) = self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Checked inside the write, which SQLite serialises: once a deletion is accepted
            // no batch lands behind it (DynamoDB waits `in_flight_ms` instead).
            let open: bool = tx
                .prepare_cached("SELECT deleting IS NULL FROM workspaces WHERE id = ?1")?
                .query_row([ws.as_str()], |r| r.get(0))
                .optional()?
                .unwrap_or(false);
            if !open {
                return Err(Refusal::Deleting.into());
            }
            let used: i64 = tx
                .prepare_cached("SELECT events FROM usage WHERE workspace_id = ?1 AND month = ?2")?
                .query_row(params![ws.as_str(), quota.month], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            let used = used.max(0) as u64;
            if used >= quota.limit {
                let mut find = tx.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM events WHERE workspace_id = ?1 AND idempotency_key = ?2)",
                )?;
                let stored = events
                    .iter()
                    .map(|e| match e.idempotency_key() {
                        Some(k) => find.query_row(params![ws.as_str(), k], |r| r.get(0)),
                        None => Ok(false),
                    })
                    .collect::<rusqlite::Result<Vec<bool>>>()?;
                return Ok((IngestOutcome::QuotaExceeded { used, stored }, 0));
            }
            let mut outcomes = Vec::with_capacity(events.len());
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO events (workspace_id, ts_ms, id, idempotency_key, expires_ms, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT DO NOTHING",
                )?;
                for (e, body) in events.iter().zip(&bodies) {
                    let n = insert.execute(params![ws.as_str(), e.ts_ms, e.id, e.idempotency_key(), e.expires_ms, body])?;
                    outcomes.push(if n == 1 { Stored::Accepted } else { Stored::Duplicate });
                }
            }
            let accepted = events.iter().zip(&outcomes).filter(|(_, o)| **o == Stored::Accepted).map(|(e, _)| e);
            // Prepared for the whole batch outside the lock; redone here only for duplicates.
            let pending = if outcomes.iter().all(|o| *o == Stored::Accepted) {
                add_batch(&tx, &ws, &prepared)?
            } else {
                add_batch(&tx, &ws, &BatchRollups::of(accepted)?)?
            };
            let accepted_count = outcomes.iter().filter(|o| **o == Stored::Accepted).count() as i64;
            tx.prepare_cached(
                "INSERT INTO usage (workspace_id, month, events) VALUES (?1, ?2, ?3)
                 ON CONFLICT (workspace_id, month) DO UPDATE SET events = events + excluded.events",
            )?
            .execute(params![ws.as_str(), quota.month, accepted_count])?;
            tx.commit()?;
            Ok((IngestOutcome::Stored(outcomes), pending))
        })
        .await?;
        if pending >= COMPACT_EVERY {
            self.compactor.request(&workspace);
        }
        Ok(outcome)
    }

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

    async fn create_job(&self, job: &Job) -> StoreResult<()> {
        let (job, body) = (
            job.clone(),
            serde_json::to_string(job).map_err(|e| anyhow!(e))?,
        );
        self.write(move |c| {
            c.execute(
                "INSERT INTO jobs (workspace_id, id, finished, created_ms, version, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![job.workspace.as_str(), job.id, job_finished(&job), job.created_ms, job.version as i64, body],
            )?;
            Ok(())
        })
        .await
    }

    async fn job(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<Job>> {
        let (ws, id) = (ws.clone(), id.to_owned());
        self.read(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM jobs WHERE workspace_id = ?1 AND id = ?2",
                    params![ws.as_str(), id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
        })
        .await
    }

    async fn update_job(&self, job: &mut Job) -> StoreResult<bool> {
        let mut next = job.clone();
        next.version += 1;
        let body = serde_json::to_string(&next).map_err(|e| anyhow!(e))?;
        let (n, expected) = (next.clone(), job.version);
        let saved = self
            .write(move |c| {
                let changed = c.execute(
                    "UPDATE jobs SET finished = ?3, version = ?4, body = ?5 WHERE workspace_id = ?1 AND id = ?2 AND version = ?6",
                    params![n.workspace.as_str(), n.id, job_finished(&n), n.version as i64, body, expected as i64],
                )?;
                Ok(changed == 1)
            })
            .await?;
        if saved {
            *job = next;
        }
        Ok(saved)
    }

    async fn unfinished_jobs(&self) -> StoreResult<Vec<Job>> {
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT body FROM jobs WHERE finished = 0 ORDER BY created_ms")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|body| Ok(serde_json::from_str(&body?)?)).collect()
        })
        .await
    }

    async fn recover(&self, _ws: &WorkspaceId) -> StoreResult<usize> {
        // Each batch is one transaction: there is never a half-applied batch to finish, and
        // deltas are folded inside the transaction that reaches `COMPACT_EVERY`.
        Ok(0)
    }

    async fn upsert_user(&self, user: &User) -> StoreResult<User> {
        let user = user.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO users (id, email, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT (email) DO NOTHING",
                params![user.id.as_str(), user.email.as_str(), user.created_ms],
            )?;
            Ok(c.query_row("SELECT * FROM users WHERE email = ?1", [user.email.as_str()], user_from_row)?)
        })
        .await
    }

    async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        let id = id.clone();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT * FROM users WHERE id = ?1",
                [id.as_str()],
                user_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let email = email.clone();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT * FROM users WHERE email = ?1",
                [email.as_str()],
                user_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn put_login_code(&self, code: &LoginCode) -> StoreResult<()> {
        let code = code.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO login_codes (email, hash, expires_ms, attempts) VALUES (?1, ?2, ?3, 0)
                 ON CONFLICT (email) DO UPDATE SET hash = excluded.hash, expires_ms = excluded.expires_ms, attempts = 0",
                params![code.email.as_str(), code.hash, code.expires_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn check_login_code(
        &self,
        email: &Email,
        hash: &str,
        now_ms: i64,
    ) -> StoreResult<CodeCheck> {
        let (email, hash) = (email.clone(), hash.to_owned());
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row: Option<(String, i64, u32)> = tx
                .query_row(
                    "SELECT hash, expires_ms, attempts FROM login_codes WHERE email = ?1",
                    [email.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let result = match row {
                Some((_, expires, attempts))
                    if expires <= now_ms || attempts >= CODE_MAX_ATTEMPTS =>
                {
                    CodeCheck::Missing
                }
                Some((stored, _, _)) if stored == hash => {
                    tx.execute("DELETE FROM login_codes WHERE email = ?1", [email.as_str()])?;
                    CodeCheck::Valid
                }
                Some(_) => {
                    tx.execute(
                        "UPDATE login_codes SET attempts = attempts + 1 WHERE email = ?1",
                        [email.as_str()],
                    )?;
                    CodeCheck::Wrong
                }
                None => CodeCheck::Missing,
            };
            tx.commit()?;
            Ok(result)
        })
        .await
    }

    async fn hit_rate_limit(
        &self,
        bucket: &str,
        window_start_ms: i64,
        window_ms: i64,
        hits: u64,
    ) -> StoreResult<u64> {
        let bucket = bucket.to_owned();
        let add = i64::try_from(hits).unwrap_or(i64::MAX);
        self.write(move |c| {
            c.execute("DELETE FROM rate_limits WHERE expires_ms < ?1", [window_start_ms])?;
            let hits: i64 = c.query_row(
                "INSERT INTO rate_limits (bucket, window_start, hits, expires_ms) VALUES (?1, ?2, ?4, ?3)
                 ON CONFLICT (bucket, window_start) DO UPDATE SET hits = hits + ?4 RETURNING hits",
                params![bucket, window_start_ms, window_start_ms + window_ms, add],
                |r| r.get(0),
            )?;
            Ok(hits.max(0) as u64)
        })
        .await
    }

    async fn create_session(&self, session: &Session) -> StoreResult<()> {
        let s = session.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO sessions (hash, user_id, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4)",
                params![s.hash, s.user_id.as_str(), s.created_ms, s.expires_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, hash: &str) -> StoreResult<Option<Session>> {
        let hash = hash.to_owned();
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT user_id, created_ms, expires_ms FROM sessions WHERE hash = ?1",
                    [&hash],
                    |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            row.map(|(user, created_ms, expires_ms)| {
                let user_id =
                    UserId::parse(&user).ok_or_else(|| anyhow!("bad user id in session"))?;
                Ok(Session {
                    hash,
                    user_id,
                    created_ms,
                    expires_ms,
                })
            })
            .transpose()
        })
        .await
    }

    async fn delete_session(&self, hash: &str) -> StoreResult<()> {
        let hash = hash.to_owned();
        self.write(move |c| {
            c.execute("DELETE FROM sessions WHERE hash = ?1", [hash])?;
            Ok(())
        })
        .await
    }

    async fn delete_user_sessions(&self, user: &UserId) -> StoreResult<usize> {
        let user = user.clone();
        self.write(move |c| {
            Ok(c.execute("DELETE FROM sessions WHERE user_id = ?1", [user.as_str()])?)
        })
        .await
    }

    async fn add_member(&self, m: &Membership, max_members: u32) -> StoreResult<()> {
        let m = m.clone();
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing: Option<String> = tx
                .query_row(
                    "SELECT role FROM members WHERE workspace_id = ?1 AND user_id = ?2",
                    params![m.workspace_id.as_str(), m.user_id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if existing.is_none() {
                let count: i64 = tx.query_row("SELECT count(*) FROM members WHERE workspace_id = ?1", [m.workspace_id.as_str()], |r| r.get(0))?;
                if count >= i64::from(max_members) {
                    return Err(Refusal::MemberLimit.into());
                }
            }
            if existing.as_deref() == Some("owner") && m.role != Role::Owner && owners(&tx, &m.workspace_id)? <= 1 {
                return Err(Refusal::LastOwner.into());
            }
            tx.execute(
                "INSERT INTO members (workspace_id, user_id, email, role, since_ms) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
                params![m.workspace_id.as_str(), m.user_id.as_str(), m.email.as_str(), m.role.as_str(), m.since_ms],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn member(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<Option<Membership>> {
        let (ws, user) = (ws.clone(), user.clone());
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT * FROM members WHERE workspace_id = ?1 AND user_id = ?2",
                params![ws.as_str(), user.as_str()],
                member_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn members(&self, ws: &WorkspaceId) -> StoreResult<Vec<Membership>> {
        let ws = ws.clone();
        self.read(move |c| {
            list(
                c,
                "SELECT * FROM members WHERE workspace_id = ?1 ORDER BY since_ms, user_id",
                [ws.as_str()],
                member_from_row,
            )
        })
        .await
    }

    async fn memberships(&self, user: &UserId) -> StoreResult<Vec<Membership>> {
        let user = user.clone();
        self.read(move |c| {
            list(
                c,
                "SELECT * FROM members WHERE user_id = ?1 ORDER BY since_ms, workspace_id",
                [user.as_str()],
                member_from_row,
            )
        })
        .await
    }

    async fn set_role(&self, ws: &WorkspaceId, user: &UserId, role: Role) -> StoreResult<bool> {
        let (ws, user) = (ws.clone(), user.clone());
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<String> = tx
                .query_row(
                    "SELECT role FROM members WHERE workspace_id = ?1 AND user_id = ?2",
                    params![ws.as_str(), user.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(current) = current else {
                return Ok(false);
            };
            if current == "owner" && role != Role::Owner && owners(&tx, &ws)? <= 1 {
                return Err(Refusal::LastOwner.into());
            }
            tx.execute(
                "UPDATE members SET role = ?1 WHERE workspace_id = ?2 AND user_id = ?3",
                params![role.as_str(), ws.as_str(), user.as_str()],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn remove_member(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<bool> {
        let (ws, user) = (ws.clone(), user.clone());
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<String> = tx
                .query_row(
                    "SELECT role FROM members WHERE workspace_id = ?1 AND user_id = ?2",
                    params![ws.as_str(), user.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(current) = current else {
                return Ok(false);
            };
            if current == "owner" && owners(&tx, &ws)? <= 1 {
                return Err(Refusal::LastOwner.into());
            }
            tx.execute(
                "DELETE FROM members WHERE workspace_id = ?1 AND user_id = ?2",
                params![ws.as_str(), user.as_str()],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn create_invitation(&self, inv: &Invitation) -> StoreResult<()> {
        let i = inv.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO invitations (id, workspace_id, email, role, invited_by, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![i.id.as_str(), i.workspace_id.as_str(), i.email.as_str(), i.role.as_str(), i.invited_by.as_str(), i.created_ms, i.expires_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn invitation(
        &self,
        ws: &WorkspaceId,
        id: &InvitationId,
    ) -> StoreResult<Option<Invitation>> {
        let (ws, id) = (ws.clone(), id.clone());
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT * FROM invitations WHERE workspace_id = ?1 AND id = ?2",
                params![ws.as_str(), id.as_str()],
                invitation_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn invitations(&self, ws: &WorkspaceId) -> StoreResult<Vec<Invitation>> {
        let ws = ws.clone();
        self.read(move |c| {
            list(
                c,
                "SELECT * FROM invitations WHERE workspace_id = ?1 ORDER BY created_ms, id",
                [ws.as_str()],
                invitation_from_row,
            )
        })
        .await
    }

    async fn delete_invitation(&self, ws: &WorkspaceId, id: &InvitationId) -> StoreResult<bool> {
        let (ws, id) = (ws.clone(), id.clone());
        self.write(move |c| {
            Ok(c.execute(
                "DELETE FROM invitations WHERE workspace_id = ?1 AND id = ?2",
                params![ws.as_str(), id.as_str()],
            )? == 1)
        })
        .await
    }

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

    async fn billing(&self, ws: &WorkspaceId) -> StoreResult<Option<Billing>> {
        let ws = ws.clone();
        self.read(move |c| {
            billing_row(
                c,
                "SELECT version, body FROM billing WHERE workspace_id = ?1",
                ws.as_str(),
            )
        })
        .await
    }

    async fn billing_by_customer(&self, customer_id: &str) -> StoreResult<Option<Billing>> {
        let customer = customer_id.to_owned();
        self.read(move |c| {
            billing_row(
                c,
                "SELECT version, body FROM billing WHERE customer_id = ?1",
                &customer,
            )
        })
        .await
    }

    async fn save_billing(
        &self,
        billing: &mut Billing,
        plan: Plan,
        due_ms: Option<i64>,
        event: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<BillingSave> {
        let mut next = billing.clone();
        next.version += 1;
        let event = event.map(str::to_owned);
        let saved = next.clone();
        let outcome = self
            .write(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                if let Some(id) = &event {
                    let fresh = tx.execute(
                        "INSERT INTO stripe_events (id, at_ms) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                        params![id, now_ms],
                    )?;
                    if fresh == 0 {
                        return Ok(BillingSave::Duplicate);
                    }
                }
                let current: Option<i64> = tx
                    .query_row(
                        "SELECT version FROM billing WHERE workspace_id = ?1",
                        [saved.workspace.as_str()],
                        |r| r.get(0),
                    )
                    .optional()?;
                if current.unwrap_or(0) as u64 != saved.version - 1 {
                    return Ok(BillingSave::Conflict);
                }
                tx.execute(
                    "INSERT INTO billing (workspace_id, customer_id, due_ms, version, body) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (workspace_id) DO UPDATE SET customer_id = excluded.customer_id,
                        due_ms = excluded.due_ms, version = excluded.version, body = excluded.body",
                    params![
                        saved.workspace.as_str(),
                        saved.customer_id,
                        due_ms,
                        saved.version as i64,
                        serde_json::to_string(&saved)?
                    ],
                )?;
                tx.execute(
                    "UPDATE workspaces SET plan = ?1 WHERE id = ?2",
                    params![plan.as_str(), saved.workspace.as_str()],
                )?;
                tx.commit()?;
                Ok(BillingSave::Saved)
            })
            .await?;
        if outcome == BillingSave::Saved {
            *billing = next;
        }
        Ok(outcome)
    }

    async fn record_stripe_event(&self, event: &str, now_ms: i64) -> StoreResult<bool> {
        let id = event.to_owned();
        // Ids older than `STRIPE_EVENT_TTL_MS` go in `purge_expired`.
        self.write(move |c| {
            Ok(c.execute(
                "INSERT INTO stripe_events (id, at_ms) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                params![id, now_ms],
            )? == 1)
        })
        .await
    }

    async fn stripe_event_seen(&self, event: &str) -> StoreResult<bool> {
        let id = event.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT COUNT(*) > 0 FROM stripe_events WHERE id = ?1",
                [id],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn billing_due(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<Billing>> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT version, body FROM billing WHERE due_ms IS NOT NULL AND due_ms <= ?1 ORDER BY due_ms LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (version, body) = row?;
                billing_of(version, &body)
            })
            .collect()
        })
        .await
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
            // Pending deltas still hold the deleted events: fold them first, so the rows
            // replaced below are the only place the hour is counted.
            compact(&tx, &ws)?;
            let left: Vec<Event> = {
                let mut stmt = tx.prepare(
                    "SELECT body FROM events WHERE workspace_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
                )?;
                let rows = stmt.query_map(
                    params![ws.as_str(), hour * HOUR_MS, (hour + 1) * HOUR_MS],
                    |r| r.get::<_, String>(0),
                )?;
                rows.map(|b| Ok(serde_json::from_str(&b?)?))
                    .collect::<anyhow::Result<_>>()?
            };
            tx.execute(
                "DELETE FROM rollups WHERE workspace_id = ?1 AND hour = ?2",
                params![ws.as_str(), hour],
            )?;
            merge_rollups(&tx, &ws, &rollup::fold(&left))?;
            tx.commit()?;
            Ok(deleted as u64)
        })
        .await
    }

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

    fn in_flight_ms(&self) -> i64 {
        0
    }

    async fn workspace_ids(
        &self,
        after: Option<&WorkspaceId>,
        limit: usize,
    ) -> StoreResult<Vec<WorkspaceId>> {
        let after = after.map(|w| w.as_str().to_owned());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id FROM workspaces WHERE ?1 IS NULL OR id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let ids = stmt.query_map(params![after, limit as i64], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for id in ids {
                let id = id?;
                out.push(WorkspaceId::parse(&id).ok_or_else(|| anyhow!("bad workspace id {id}"))?);
            }
            Ok(out)
        })
        .await
    }

    async fn claim_notice(&self, ws: &WorkspaceId, key: &str, now_ms: i64) -> StoreResult<bool> {
        let (ws, key) = (ws.clone(), key.to_owned());
        self.write(move |c| {
            Ok(c.execute(
                "INSERT INTO notices (workspace_id, key, at_ms) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![ws.as_str(), key, now_ms],
            )? == 1)
        })
        .await
    }

    async fn create_alert_rule(&self, rule: &AlertRule, max_rules: u32) -> StoreResult<()> {
        let (rule, body) = (
            rule.clone(),
            serde_json::to_string(rule).map_err(|e| anyhow!(e))?,
        );
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n: i64 = tx.query_row(
                "SELECT count(*) FROM alert_rules WHERE workspace_id = ?1",
                [rule.workspace.as_str()],
                |r| r.get(0),
            )?;
            if n >= i64::from(max_rules) {
                return Err(Refusal::AlertRuleLimit.into());
            }
            tx.execute(
                "INSERT INTO alert_rules (workspace_id, id, version, body) VALUES (?1, ?2, ?3, ?4)",
                params![rule.workspace.as_str(), rule.id, rule.version as i64, body],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn alert_rules(&self, ws: &WorkspaceId) -> StoreResult<Vec<AlertRule>> {
        let ws = ws.clone();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT version, body FROM alert_rules WHERE workspace_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([ws.as_str()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            rows.map(|row| {
                let (version, body) = row?;
                let mut rule: AlertRule = serde_json::from_str(&body)?;
                rule.version = version as u64;
                Ok(rule)
            })
            .collect()
        })
        .await
    }

    async fn alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<AlertRule>> {
        let id = id.to_owned();
        Ok(self.alert_rules(ws).await?.into_iter().find(|r| r.id == id))
    }

    async fn update_alert_rule(&self, rule: &mut AlertRule) -> StoreResult<bool> {
        let mut next = rule.clone();
        next.version += 1;
        let body = serde_json::to_string(&next).map_err(|e| anyhow!(e))?;
        let (n, expected) = (next.clone(), rule.version);
        let saved = self
            .write(move |c| {
                Ok(c.execute(
                    "UPDATE alert_rules SET version = ?3, body = ?4 WHERE workspace_id = ?1 AND id = ?2 AND version = ?5",
                    params![n.workspace.as_str(), n.id, n.version as i64, body, expected as i64],
                )? == 1)
            })
            .await?;
        if saved {
            *rule = next;
        }
        Ok(saved)
    }

    async fn delete_alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<bool> {
        let (ws, id) = (ws.clone(), id.to_owned());
        self.write(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "DELETE FROM alert_rules WHERE workspace_id = ?1 AND id = ?2",
                params![ws.as_str(), id],
            )?;
            tx.execute(
                "DELETE FROM alert_events WHERE workspace_id = ?1 AND rule_id = ?2",
                params![ws.as_str(), id],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn append_alert_event(&self, event: &AlertEvent) -> StoreResult<()> {
        let (e, body) = (
            event.clone(),
            serde_json::to_string(event).map_err(|e| anyhow!(e))?,
        );
        self.write(move |c| {
            c.execute(
                "INSERT INTO alert_events (workspace_id, rule_id, id, at_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.workspace.as_str(), e.rule_id, e.id, e.at_ms, body],
            )?;
            Ok(())
        })
        .await
    }

    async fn alert_events(
        &self,
        ws: &WorkspaceId,
        rule: &str,
        limit: usize,
    ) -> StoreResult<Vec<AlertEvent>> {
        let (ws, rule) = (ws.clone(), rule.to_owned());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT body FROM alert_events WHERE workspace_id = ?1 AND rule_id = ?2 ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![ws.as_str(), rule, limit as i64], |r| r.get::<_, String>(0))?;
            rows.map(|b| Ok(serde_json::from_str(&b?)?)).collect()
        })
        .await
    }

    async fn set_reports_opt_out(&self, user: &UserId, opt_out: bool) -> StoreResult<bool> {
        let user = user.clone();
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE users SET reports_opt_out = ?1 WHERE id = ?2",
                params![opt_out, user.as_str()],
            )? == 1)
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
        self.write(|c| {
            // Blocks (up to the busy timeout) until readers are on the newest snapshot, copies
            // every frame into the database (whose freed content `secure_delete` zeroed) and
            // truncates the log to nothing.
            let (busy, _, _): (i64, i64, i64) =
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            if busy != 0 {
                bail!("the write-ahead log could not be truncated: readers were busy");
            }
            Ok(())
        })
        .await
    }

    async fn purge_expired(&self, now_ms: i64) -> StoreResult<u64> {
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

/// How long a processed Stripe event id is remembered: Stripe retries a delivery for up to 3
/// days, so a month of ids is plenty to recognise one.
const STRIPE_EVENT_TTL_MS: i64 = 30 * 86_400_000;

fn billing_row(c: &Connection, sql: &str, key: &str) -> anyhow::Result<Option<Billing>> {
    let row: Option<(i64, String)> = c
        .query_row(sql, [key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    row.map(|(version, body)| billing_of(version, &body))
        .transpose()
}

fn billing_of(version: i64, body: &str) -> anyhow::Result<Billing> {
    let mut b: Billing = serde_json::from_str(body)?;
    b.version = version as u64;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{self, Context};
    use crate::domain::pricing::PriceTable;

    fn events(ids: &[&str]) -> Vec<Event> {
        let ctx = Context {
            now_ms: 1_800_000_000_000,
            source: "production",
            plan: Plan::Pro,
            prices: PriceTable::bundled(),
        };
        ids.iter()
            .map(|id| {
                let v = serde_json::json!({"id": id, "provider": "openai", "model": "gpt-4o",
                    "feature": *id, "user_id": "u1", "input_tokens": 10, "output_tokens": 5});
                let raw = serde_json::value::to_raw_value(&v).unwrap();
                event::validate(&raw, &ctx).unwrap().0
            })
            .collect()
    }

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
        let ws = WorkspaceId::generate();
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
