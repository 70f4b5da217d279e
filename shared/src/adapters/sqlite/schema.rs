//! The store's schema as numbered migrations. `PRAGMA user_version` holds the number of the last
//! migration applied and `PRAGMA application_id` marks the file as an LLMtrack store; opening a
//! store applies, in order and each in its own transaction, every migration it has not had.
//! A schema change is a new entry at the end of [`MIGRATIONS`], never an edit of an old one.
//!
//! Hand-written rather than `rusqlite_migration`: that crate's newest release (2.6) links
//! rusqlite 0.40, and two rusqlite versions cannot share one bundled SQLite.

use anyhow::{Context as _, anyhow, bail};
use rusqlite::{Connection, Transaction};

use super::merge_rollups;
use crate::domain::event::Event;
use crate::domain::ids::WorkspaceId;
use crate::domain::rollup;

/// "LLMt": set by migration 1. A file without it predates numbered migrations (or is not ours).
const APPLICATION_ID: i64 = 0x4C4C_4D74;

/// One schema step. `up` runs inside the transaction that also records its number.
struct Migration {
    what: &'static str,
    up: fn(&Transaction, &Legacy) -> anyhow::Result<()>,
}

/// Every migration, in order: the store's schema is the result of applying them all.
const MIGRATIONS: &[Migration] = &[
    Migration {
        what: "the schema of the last release before numbered migrations; stores it wrote are upgraded",
        up: baseline,
    },
    Migration {
        what: "workspace price rules",
        // JSON of `WorkspacePrices`; NULL for a workspace that never set one.
        up: |tx, _| add_column(tx, "workspaces", "prices", "TEXT"),
    },
    Migration {
        what: "rollups by canonical model, with the model names as sent",
        up: names_as_sent,
    },
    Migration {
        what: "rollups with the costs providers reported beside the computed ones",
        up: |tx, _| fold_deltas(tx, &[2]),
    },
    Migration {
        what: "which OpenTelemetry attributes name an event's feature and user",
        // JSON of `SpanLabels`; NULL for a workspace on the defaults.
        up: |tx, _| add_column(tx, "workspaces", "spans", "TEXT"),
    },
    Migration {
        what: "provider connections and the usage and cost they imported",
        up: |tx, _| {
            // `body`: JSON of `Connection` (the admin key only sealed); `rows`: JSON of the
            // day's `BilledRow`s for one connection.
            tx.execute_batch(
                "CREATE TABLE IF NOT EXISTS connections (
                    workspace_id TEXT NOT NULL,
                    id TEXT NOT NULL,
                    body TEXT NOT NULL,
                    PRIMARY KEY (workspace_id, id)
                ) WITHOUT ROWID;
                CREATE TABLE IF NOT EXISTS billed_days (
                    workspace_id TEXT NOT NULL,
                    day TEXT NOT NULL,
                    connection_id TEXT NOT NULL,
                    rows TEXT NOT NULL,
                    PRIMARY KEY (workspace_id, day, connection_id)
                ) WITHOUT ROWID;",
            )?;
            Ok(())
        },
    },
    Migration {
        what: "workspace budgets",
        // JSON of `WorkspaceBudgets`; NULL for a workspace that never set one.
        up: |tx, _| add_column(tx, "workspaces", "budgets", "TEXT"),
    },
    Migration {
        what: "weekly digest subscribers",
        // JSON of `DigestSubscribers`; NULL for a workspace nobody subscribed in.
        up: |tx, _| add_column(tx, "workspaces", "digest", "TEXT"),
    },
    Migration {
        what: "one end-user's rollups read without the others'",
        // What a budget scoped to an end-user reads (`Events::value_rollups`): a range over
        // (workspace, user, hour) instead of every end-user's row of every hour. Partial, so
        // ingest and the compactor write it only for the `user` view's rows, and only when a row
        // is created (an update changes `data`, which it does not hold); a query uses it only
        // with the literal `view = 'user'` (`events::USER_VALUE_ROLLUPS`).
        up: |tx, _| {
            tx.execute_batch(
                "CREATE INDEX IF NOT EXISTS rollups_by_user
                    ON rollups (workspace_id, view, value, hour) WHERE view = 'user'",
            )?;
            Ok(())
        },
    },
    Migration {
        what: "cost-allocation tag keys",
        // JSON of `TagKeys`; NULL for a workspace that never declared one.
        up: |tx, _| add_column(tx, "workspaces", "tags", "TEXT"),
    },
    Migration {
        what: "batch deltas that store a sketch of one latency as the latency",
        // Deltas record no format: those pending are format 4, or format 3 when the store comes
        // from a release before tags (whose migration left them as they were).
        up: |tx, _| fold_deltas(tx, &[4, 3]),
    },
];

/// Adds a column unless the table has it (a store the tests rewind to an earlier release's
/// shape keeps today's columns).
fn add_column(tx: &Transaction, table: &str, column: &str, kind: &str) -> anyhow::Result<()> {
    let has: bool = tx.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get(0),
    )?;
    if !has {
        tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
    }
    Ok(())
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// What a store from before numbered migrations holds, read before migration 1 runs.
#[derive(Debug, Default)]
struct Legacy {
    /// Its `user_version` (1 once idempotency keys were rewritten to the tagged form).
    version: i64,
    /// Rollups keyed by `dimension`, from before rollup views: rebuilt from the raw events.
    old_rollups: bool,
}

/// Checks that the file at `path` is an LLMtrack store this build can open (ours, not newer, and
/// sound page by page), without changing it: what a restore checks before it puts a backup in
/// place. Returns its schema version.
pub fn check_file(path: &std::path::Path) -> anyhow::Result<usize> {
    use rusqlite::OpenFlags;
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", path.display()))?;
    let app: i64 = c.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if app != APPLICATION_ID {
        bail!("{} is not an LLMtrack store backup", path.display());
    }
    if version as usize > SCHEMA_VERSION {
        bail!(
            "{} has schema version {version}, written by a newer LLMtrack; this build knows \
             versions up to {SCHEMA_VERSION}",
            path.display()
        );
    }
    let check: String = c.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        bail!("{} is damaged: {check}", path.display());
    }
    Ok(version as usize)
}

/// Brings the store at `c` up to [`SCHEMA_VERSION`]. Refuses a store written by a newer build
/// (its schema may hold what this one would misread) and a file that is another program's.
pub(super) fn migrate(c: &mut Connection) -> anyhow::Result<()> {
    let app: i64 = c.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let user_version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let (applied, legacy) = match app {
        APPLICATION_ID => (user_version as usize, Legacy::default()),
        0 => (
            0,
            Legacy {
                version: user_version,
                old_rollups: c.query_row(
                    "SELECT COUNT(*) > 0 FROM pragma_table_info('rollups') WHERE name = 'dimension'",
                    [],
                    |r| r.get(0),
                )?,
            },
        ),
        other => bail!("not an LLMtrack store (its application id is {other:#x})"),
    };
    if applied > MIGRATIONS.len() {
        bail!(
            "this store has schema version {applied}, written by a newer LLMtrack; this build \
             knows versions up to {SCHEMA_VERSION}: run the newer release (or restore a backup)"
        );
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(applied) {
        let number = i + 1;
        let tx = c.transaction()?;
        (m.up)(&tx, &legacy).with_context(|| format!("schema migration {number} ({})", m.what))?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", number as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Migration 1: the schema as the last unnumbered release left it. A store that release (or an
/// earlier one) wrote gets the columns added since its tables were made, its idempotency keys in
/// the tagged form, and rollups with every view.
fn baseline(tx: &Transaction, legacy: &Legacy) -> anyhow::Result<()> {
    if legacy.old_rollups {
        // Rebuilt from the raw events below, with every view.
        tx.execute_batch("DROP TABLE rollups; DROP TABLE IF EXISTS deltas;")?;
    }
    // Columns added after their table's first release: a store created before them gets them,
    // with the default every earlier row implied.
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
    if legacy.version < 1 {
        // Idempotency keys were `{id}@{ts}`, or the id alone when sent without a timestamp: two
        // events could share one. Rewritten to the tagged form of `Event::idempotency_key`.
        // Through a control-character prefix no id holds, so no row meets another's key midway.
        tx.execute_batch(
            "UPDATE events SET idempotency_key = char(1) ||
                 CASE WHEN idempotency_key = id THEN 'i:' || id ELSE 't:' || ts_ms || ':' || id END
             WHERE idempotency_key IS NOT NULL;
             UPDATE events SET idempotency_key = substr(idempotency_key, 2)
             WHERE idempotency_key IS NOT NULL;",
        )
        .context("migrating idempotency keys")?;
    }
    if legacy.old_rollups {
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
            merge_rollups(tx, &ws, &rollup::fold(&events))?;
        }
    }
    Ok(())
}

/// Migration 3: the `model` views group by canonical model, and new views (`model_sent`, and
/// `model_sent` within each model) by the names as sent. Rollups written before knew only the
/// names as sent, under `model`: each stands for its own canonical model too (what it was
/// grouped as), so the new views start as copies of it, and those hours read as they did.
/// Pending deltas are folded, on the same reading.
fn names_as_sent(tx: &Transaction, legacy: &Legacy) -> anyhow::Result<()> {
    if legacy.old_rollups {
        // Migration 1 rebuilt them from the events, in this layout.
        return Ok(());
    }
    tx.execute_batch(
        "INSERT OR IGNORE INTO rollups (workspace_id, view, hour, value, data)
             SELECT workspace_id, 'model_sent', hour, value, data FROM rollups WHERE view = 'model';
         INSERT OR IGNORE INTO rollups (workspace_id, view, hour, value, data)
             SELECT workspace_id, 'model_sent@model:' || value, hour, value, data
             FROM rollups WHERE view = 'model';",
    )?;
    // After the copies: the deltas fold into every view, the new ones included.
    fold_deltas(tx, &[1])
}

/// Folds every pending delta into the rollups, each read in the first of `formats` it is stored
/// in (a later format has fields an earlier one ends before): a migration that changes the
/// groups' layout leaves none in the old one.
fn fold_deltas(tx: &Transaction, formats: &[u8]) -> anyhow::Result<()> {
    let deltas: Vec<(String, Vec<u8>)> = {
        let mut stmt = tx.prepare("SELECT workspace_id, data FROM deltas ORDER BY seq")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    for (ws, data) in deltas {
        let id = WorkspaceId::parse(&ws).ok_or_else(|| anyhow!("bad workspace id {ws}"))?;
        let groups = formats
            .iter()
            .find_map(|f| rollup::Groups::decode(&data, *f).ok())
            .ok_or_else(|| anyhow!("a delta of {ws} is in none of the formats {formats:?}"))?;
        merge_rollups(tx, &id, &groups.views(rollup::Select::Deferred))?;
    }
    tx.execute_batch("DELETE FROM deltas")?;
    Ok(())
}

/// (table, column, declaration) of every column added after its table was first released.
const ADDED_COLUMNS: [(&str, &str, &str); 4] = [
    ("users", "reports_opt_out", "INTEGER NOT NULL DEFAULT 0"),
    ("workspaces", "timezone", "TEXT NOT NULL DEFAULT 'UTC'"),
    ("workspaces", "deleting", "TEXT"),
    ("api_keys", "created_by", "TEXT"),
];

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
