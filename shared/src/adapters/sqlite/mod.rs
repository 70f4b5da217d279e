//! The embedded SQLite store: the local and self-hosted default.
//!
//! One writer connection (SQLite allows one writer at a time anyway) and a few readers, WAL mode so
//! readers never wait on the writer. A batch's events, rollups and quota counter commit together
//! or not at all (in one transaction shared with the batches queued beside it, each in its own
//! savepoint), which is what makes a crash mid-batch harmless here.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

mod accounts;
mod alerts;
mod audit;
mod billing;
mod connections;
mod erasure;
mod events;
mod expiry;
mod ingest;
mod jobs;
mod keys;
mod members;
mod repricing;
mod rollups;
mod schema;
mod workspaces;

use billing::*;
use ingest::*;
use rollups::*;
use schema::migrate;
pub use schema::{SCHEMA_VERSION, check_file};

use anyhow::{Context as _, anyhow};
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
use crate::domain::pricing::custom::WorkspacePrices;
use crate::domain::retention::{self, EventFate};
use crate::domain::rollup::{self, GROUPS_FORMAT, Groups, Rollup, RollupKey, Select, View};
use crate::domain::time::{HOUR_MS, month_of};
use crate::ports::{
    Accounts, AlertRules, AuditLog, BillingRecords, BillingSave, Erasure, Events, Ingest,
    IngestOutcome, Job, JobState, Jobs, Keys, Members, Purged, Quota, Refusal, Repricing, Retained,
    Retention, StoreError, StoreResult, Stored, Workspace, Workspaces,
};

const READERS: usize = 4;

#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<AtomicUsize>,
    /// Workspaces with deltas to fold, for the compactor thread.
    compactor: Compactor,
    /// The group-commit queue every ingest batch goes through.
    committer: std::sync::mpsc::Sender<Batch>,
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

    /// Copies the whole store to a new file at `to` while it keeps serving, with SQLite's online
    /// backup: one read transaction, so the copy is the store as of one moment and writers are
    /// not held up (WAL). All pages in one step: the default small steps would restart on every
    /// write a busy store makes.
    pub async fn backup_to(&self, to: &Path) -> StoreResult<()> {
        let to = to.to_owned();
        self.read(move |c| {
            let mut dst = Connection::open(&to)?;
            let backup = rusqlite::backup::Backup::new(c, &mut dst)?;
            match backup.step(-1)? {
                rusqlite::backup::StepResult::Done => Ok(()),
                other => Err(Failure::Fault(anyhow!(
                    "the backup stopped early: {other:?}"
                ))),
            }
        })
        .await
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
            committer: start_committer(writer.clone())?,
            writer,
            readers: Arc::new(readers),
            next_reader: Arc::new(AtomicUsize::new(0)),
            rollup_rows_read: Arc::default(),
        })
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Fallible<T> + Send + 'static,
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
        .map_err(StoreError::from)
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Fallible<T> + Send + 'static,
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
        .map_err(StoreError::from)
    }
}

/// How a store operation fails inside the adapter: a refusal as itself, SQLite's own error as
/// itself, anything else as a fault. Each becomes the port's [`StoreError`] by its variant, so a
/// refusal or a conflict is never wrapped in `anyhow` and looked for again.
#[derive(Debug)]
pub(super) enum Failure {
    /// A rule the store enforces (a plan limit, the last owner, a workspace being deleted).
    Refused(Refusal),
    Sqlite(rusqlite::Error),
    Fault(anyhow::Error),
}

/// What the closures given to `write` and `read` return.
pub(super) type Fallible<T> = Result<T, Failure>;

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        Failure::Refused(r)
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sqlite(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Fault(e)
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Failure::Fault(e.into())
    }
}

impl From<postcard::Error> for Failure {
    fn from(e: postcard::Error) -> Self {
        Failure::Fault(e.into())
    }
}

impl From<Failure> for StoreError {
    /// A unique or key constraint that fails is a conflict (the record exists already).
    fn from(f: Failure) -> Self {
        match f {
            Failure::Refused(r) => StoreError::Refused(r),
            Failure::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict("a record with that id".into())
            }
            Failure::Sqlite(e) => StoreError::Unexpected(e.into()),
            Failure::Fault(e) => StoreError::Unexpected(e),
        }
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
) -> Fallible<Vec<T>> {
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

/// Validated events with the given ids (each its own feature), for the adapter's unit tests.
#[cfg(test)]
fn test_events(ids: &[&str]) -> Vec<Event> {
    use crate::domain::event::{self, Context};
    use crate::domain::pricing::PriceTable;
    let ctx = Context {
        now_ms: 1_800_000_000_000,
        source: "production",
        plan: Plan::Pro,
        prices: PriceTable::bundled(),
        custom: crate::domain::pricing::custom::Rules::none(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_become_store_errors_by_their_variant() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY); INSERT INTO t VALUES ('a');")
            .unwrap();
        let taken = c.execute("INSERT INTO t VALUES ('a')", []).unwrap_err();
        assert!(matches!(
            StoreError::from(Failure::from(taken)),
            StoreError::Conflict(_)
        ));
        let broken = c.execute("INSERT INTO nowhere VALUES (1)", []).unwrap_err();
        assert!(matches!(
            StoreError::from(Failure::from(broken)),
            StoreError::Unexpected(_)
        ));
        assert!(matches!(
            StoreError::from(Failure::from(Refusal::LastOwner)),
            StoreError::Refused(Refusal::LastOwner)
        ));
        // Only the variant counts: a refusal's text inside a fault is a fault.
        assert!(matches!(
            StoreError::from(Failure::from(anyhow!(Refusal::LastOwner))),
            StoreError::Unexpected(_)
        ));
    }
}
