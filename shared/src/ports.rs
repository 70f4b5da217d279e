//! Ports: the traits the functions depend on. Adapters live in `adapters/`.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::access::Role;
use crate::domain::account::{CodeCheck, Email, Invitation, LoginCode, Membership, Session, User};
use crate::domain::alert::{AlertEvent, AlertRule};
use crate::domain::apikey::{ApiKey, KeyHash, KeyState};
use crate::domain::audit::AuditEntry;
use crate::domain::billing::Billing;
use crate::domain::event::Event;
use crate::domain::ids::{InvitationId, KeyId, UserId, WorkspaceId};
use crate::domain::plan::Plan;
use crate::domain::rollup::{Rollup, RollupKey, View};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub plan: Plan,
    /// IANA timezone for day boundaries and reports.
    pub timezone: String,
    pub created_ms: i64,
    /// The whole-workspace deletion job underway, if any: from the moment it is accepted the
    /// workspace's keys stop working and its data is no longer shown.
    #[serde(default)]
    pub deleting: Option<String>,
}

/// What happened to one event of a batch in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Accepted,
    /// Its idempotency key was already stored: nothing changed.
    Duplicate,
}

/// The plan's monthly event quota, checked atomically with the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// `YYYY-MM` (UTC).
    pub month: String,
    pub limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// One entry per event, in order.
    Stored(Vec<Stored>),
    /// The month's quota was already used up: nothing was written. `stored[i]` tells whether
    /// event `i` is already stored (a retry of an acknowledged event), so it can still be
    /// answered as a duplicate.
    QuotaExceeded { used: u64, stored: Vec<bool> },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    /// A plan limit or an invariant would be broken; nothing was changed.
    #[error("{0}")]
    Refused(Refusal),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why the store refused a change that would break a rule it enforces atomically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the plan's limit of active keys is reached")]
    KeyLimit,
    #[error("the plan's limit of members is reached")]
    MemberLimit,
    #[error("a workspace must keep at least one owner")]
    LastOwner,
    #[error("the workspace is being deleted")]
    Deleting,
    #[error("the plan's limit of alert rules is reached")]
    AlertRuleLimit,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Storage for everything LLMtrack keeps. One contract, two adapters (SQLite, DynamoDB), one
/// conformance suite (`tests/conformance`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn create_workspace(&self, ws: &Workspace) -> StoreResult<()>;
    async fn workspace(&self, id: &WorkspaceId) -> StoreResult<Option<Workspace>>;
    /// Returns false when the workspace does not exist.
    async fn set_plan(&self, id: &WorkspaceId, plan: Plan) -> StoreResult<bool>;

    async fn update_workspace(&self, ws: &Workspace) -> StoreResult<bool>;

    /// Creates an active key unless the workspace already has `max_active` active keys.
    async fn create_key(&self, key: &ApiKey, max_active: u32) -> StoreResult<()>;
    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<ApiKey>>;
    async fn keys(&self, ws: &WorkspaceId) -> StoreResult<Vec<ApiKey>>;
    /// Returns false when the key is not in that workspace.
    /// Reactivation counts against `max_active` like creation. False when the key is not there.
    async fn set_key_state(
        &self,
        ws: &WorkspaceId,
        key: &KeyId,
        state: KeyState,
        max_active: u32,
    ) -> StoreResult<bool>;
    async fn delete_key(&self, ws: &WorkspaceId, key: &KeyId) -> StoreResult<bool>;
    async fn touch_key(&self, key: &ApiKey, at_ms: i64) -> StoreResult<()>;

    /// Stores a batch of validated events exactly once each and folds the new ones into the
    /// rollups. If the month's quota is used up, stores nothing.
    async fn ingest(
        &self,
        ws: &WorkspaceId,
        events: &[Event],
        quota: &Quota,
    ) -> StoreResult<IngestOutcome>;
    /// Events counted against the month's quota.
    async fn usage(&self, ws: &WorkspaceId, month: &str) -> StoreResult<u64>;

    /// Rollups of one view for hours in `[from_hour, to_hour)`, sorted by key.
    async fn rollups(
        &self,
        ws: &WorkspaceId,
        view: &View,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<(RollupKey, Rollup)>>;
    /// Raw events with `from_ms <= ts < to_ms`, oldest first, at most `limit` after `after`
    /// (the last `(ts_ms, id)` of the previous page).
    async fn events(
        &self,
        ws: &WorkspaceId,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Event>>;

    /// Raw events with `from_ms <= ts < to_ms`, newest first, at most `limit` before `before`
    /// (the last `(ts_ms, id)` of the previous page): the request log.
    async fn recent_events(
        &self,
        ws: &WorkspaceId,
        from_ms: i64,
        to_ms: i64,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Event>>;

    /// Background work of the write path: finishes any batch a crashed writer left
    /// half-applied, and folds pending deltas where the store defers them. Returns how many
    /// crashed batches it finished.
    async fn recover(&self, ws: &WorkspaceId) -> StoreResult<usize>;

    // Jobs (exports, and other work too long for one request).

    async fn create_job(&self, job: &Job) -> StoreResult<()>;
    async fn job(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<Job>>;
    /// Saves a job's new state if nobody saved it since `job.version` was read; bumps the
    /// version. False when another worker got there first.
    async fn update_job(&self, job: &mut Job) -> StoreResult<bool>;
    /// Jobs not yet finished, oldest first (a restarted local server resumes them).
    async fn unfinished_jobs(&self) -> StoreResult<Vec<Job>>;

    // People and sign-in.

    /// Creates the user unless the email already has one; returns the user of that email.
    async fn upsert_user(&self, user: &User) -> StoreResult<User>;
    async fn user(&self, id: &UserId) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;
    /// Replaces any earlier code for the email.
    async fn put_login_code(&self, code: &LoginCode) -> StoreResult<()>;
    /// Checks a code hash at `now_ms`: a match uses the code up; a miss counts an attempt and voids
    /// the code after `CODE_MAX_ATTEMPTS`.
    async fn check_login_code(
        &self,
        email: &Email,
        hash: &str,
        now_ms: i64,
    ) -> StoreResult<CodeCheck>;
    /// Counts `hits` (0 to only look) in a fixed window and returns the window's count so far.
    async fn hit_rate_limit(
        &self,
        bucket: &str,
        window_start_ms: i64,
        window_ms: i64,
        hits: u64,
    ) -> StoreResult<u64>;

    async fn create_session(&self, session: &Session) -> StoreResult<()>;
    async fn session(&self, hash: &str) -> StoreResult<Option<Session>>;
    async fn delete_session(&self, hash: &str) -> StoreResult<()>;
    /// Sign-out everywhere; returns how many sessions ended.
    async fn delete_user_sessions(&self, user: &UserId) -> StoreResult<usize>;

    // Members and invitations.

    /// Adds a member unless the workspace already has `max_members` (the creator's first
    /// membership passes `u32::MAX`). Replaces an existing membership's role.
    async fn add_member(&self, m: &Membership, max_members: u32) -> StoreResult<()>;
    async fn member(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<Option<Membership>>;
    async fn members(&self, ws: &WorkspaceId) -> StoreResult<Vec<Membership>>;
    async fn memberships(&self, user: &UserId) -> StoreResult<Vec<Membership>>;
    /// Changes a role, refusing to leave the workspace without an owner. False when not a member.
    async fn set_role(&self, ws: &WorkspaceId, user: &UserId, role: Role) -> StoreResult<bool>;
    /// Removes a member, refusing to remove the last owner. False when not a member.
    async fn remove_member(&self, ws: &WorkspaceId, user: &UserId) -> StoreResult<bool>;

    async fn create_invitation(&self, inv: &Invitation) -> StoreResult<()>;
    async fn invitation(
        &self,
        ws: &WorkspaceId,
        id: &InvitationId,
    ) -> StoreResult<Option<Invitation>>;
    async fn invitations(&self, ws: &WorkspaceId) -> StoreResult<Vec<Invitation>>;
    async fn delete_invitation(&self, ws: &WorkspaceId, id: &InvitationId) -> StoreResult<bool>;

    // Billing (Stripe).

    async fn billing(&self, ws: &WorkspaceId) -> StoreResult<Option<Billing>>;
    /// The record of the workspace whose Stripe customer this is.
    async fn billing_by_customer(&self, customer_id: &str) -> StoreResult<Option<Billing>>;
    /// Saves a billing record and the plan it entitles the workspace to, in one atomic write,
    /// if nobody saved the record since `billing.version` was read (version 0: never saved);
    /// bumps the version. `due_ms` is when the entitlement next changes on its own (the sweep
    /// finds it then). With `event`, also records that Stripe event id as processed, and saves
    /// nothing if it already was.
    async fn save_billing(
        &self,
        billing: &mut Billing,
        plan: Plan,
        due_ms: Option<i64>,
        event: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<BillingSave>;
    /// Records a Stripe event id that changed no record; false if it was already recorded.
    async fn record_stripe_event(&self, event: &str, now_ms: i64) -> StoreResult<bool>;
    async fn stripe_event_seen(&self, event: &str) -> StoreResult<bool>;
    /// Records whose entitlement changes at or before `now_ms` (end of a grace period, or of a
    /// cancelled paid period), oldest first.
    async fn billing_due(&self, now_ms: i64, limit: usize) -> StoreResult<Vec<Billing>>;

    // Deletion.

    /// Deletes a workspace's events of one hour with `from_ms <= ts < to_ms` (of one source
    /// label only, when given), taking them off their month's usage in the same atomic writes,
    /// then recomputes that hour's rollups, every view, from the events left (pending deltas of
    /// the hour included). Returns how many events it deleted. Safe to repeat: a run stopped at
    /// any point is finished by running it again, and a repeat deletes nothing more.
    async fn delete_events_in_hour(
        &self,
        ws: &WorkspaceId,
        hour: i64,
        from_ms: i64,
        to_ms: i64,
        source: Option<&str>,
    ) -> StoreResult<u64>;

    /// Accepts a deletion job: saves it and, with `whole_workspace`, marks the workspace as being
    /// deleted by it, in one atomic write. False, saving nothing, when the workspace is gone or
    /// already being deleted.
    async fn begin_deletion(&self, job: &Job, whole_workspace: bool) -> StoreResult<bool>;
    /// How long after a workspace is marked as being deleted a write that began before the mark
    /// may still land: a whole-workspace deletion waits this long before it purges. 0 where
    /// the mark is checked inside the write itself.
    fn in_flight_ms(&self) -> i64;
    /// Deletes the next part of everything a workspace has (events and their id guards,
    /// rollups of every view, pending deltas, usage, keys, members, invitations, the audit log,
    /// billing records, jobs), about `budget` items per call, the workspace record last. Its
    /// deletion jobs stay: they are the security record that a deletion took place. Safe to
    /// stop at any point and call again; `done` once nothing is left.
    async fn purge_workspace(&self, ws: &WorkspaceId, budget: usize) -> StoreResult<Purged>;
    /// Deletes a user's own records: sign-in code, sessions, memberships seen from their side,
    /// and the user (by id and by email). Memberships must already be gone from the
    /// workspaces' side. Returns how many records of each kind it deleted.
    async fn delete_user(&self, user: &UserId) -> StoreResult<Purged>;
    /// Makes what was deleted unrecoverable from the store's own files, once a deletion has
    /// finished. SQLite zeroes deleted rows as it goes (`secure_delete`), but copies of their
    /// pages stay in the write-ahead log until it is checkpointed and truncated, which this does.
    /// DynamoDB: nothing to do (a deleted item is gone; backups age out, see DELETION.md).
    async fn scrub(&self) -> StoreResult<()>;

    // Retention.

    /// Re-applies a plan keeping `history_ms` to a workspace's events and rollups of the hours in
    /// `[from_hour, to_hour)` (see `domain::retention`): each event gets the fate
    /// `event_fate` gives it, each rollup the expiry `rollup_expiry_ms` gives it, and what has
    /// expired is deleted.
    async fn apply_retention(
        &self,
        ws: &WorkspaceId,
        from_hour: i64,
        to_hour: i64,
        history_ms: i64,
        now_ms: i64,
    ) -> StoreResult<Retained>;
    /// Deletes everything whose time has passed (events, rollups by their workspace's plan, and
    /// spent records). DynamoDB's TTL does this on its own, so there it does nothing.
    async fn purge_expired(&self, now_ms: i64) -> StoreResult<u64>;

    // Monthly reports.

    /// Workspace ids after `after`, in id order, at most `limit`: the reports job walks them.
    async fn workspace_ids(
        &self,
        after: Option<&WorkspaceId>,
        limit: usize,
    ) -> StoreResult<Vec<WorkspaceId>>;
    /// Records that a one-time notice went out for a workspace (`report:2026-11`,
    /// `usage:2026-11:80`); false, recording nothing, if it already had. What is sent only
    /// once (a month's report, a plan usage alert) is claimed here first.
    async fn claim_notice(&self, ws: &WorkspaceId, key: &str, now_ms: i64) -> StoreResult<bool>;

    // Alert rules.

    /// Saves a new rule unless the workspace already has `max_rules`.
    async fn create_alert_rule(&self, rule: &AlertRule, max_rules: u32) -> StoreResult<()>;
    async fn alert_rules(&self, ws: &WorkspaceId) -> StoreResult<Vec<AlertRule>>;
    async fn alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<AlertRule>>;
    /// Saves a rule's new settings or state if nobody saved it since `rule.version` was read;
    /// bumps the version. False when someone did (or the rule is gone).
    async fn update_alert_rule(&self, rule: &mut AlertRule) -> StoreResult<bool>;
    async fn delete_alert_rule(&self, ws: &WorkspaceId, id: &str) -> StoreResult<bool>;
    async fn append_alert_event(&self, event: &AlertEvent) -> StoreResult<()>;
    /// A rule's history, newest first.
    async fn alert_events(
        &self,
        ws: &WorkspaceId,
        rule: &str,
        limit: usize,
    ) -> StoreResult<Vec<AlertEvent>>;
    /// Turns a person's monthly report emails off or on. False when the user does not exist.
    async fn set_reports_opt_out(&self, user: &UserId, opt_out: bool) -> StoreResult<bool>;

    // The audit log.

    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Newest first, entries with ids below `before`.
    async fn audit(
        &self,
        ws: &WorkspaceId,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<AuditEntry>>;
}

pub type DynStore = Arc<dyn Store>;

/// Unfinished jobs of one kind, oldest first: what a restarted runner resumes.
pub async fn unfinished_jobs_of(store: &dyn Store, kind: &str) -> StoreResult<Vec<Job>> {
    Ok(store
        .unfinished_jobs()
        .await?
        .into_iter()
        .filter(|j| j.kind == kind)
        .collect())
}

/// What a call of `purge_workspace` or `delete_user` deleted, by kind of item (`events`,
/// `rollups`, `keys`...), and whether it has finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    pub deleted: std::collections::BTreeMap<String, u64>,
    pub done: bool,
}

impl Purged {
    pub fn count(&mut self, kind: &str, n: u64) {
        if n > 0 {
            *self.deleted.entry(kind.to_owned()).or_default() += n;
        }
    }

    /// Items deleted, all kinds together.
    pub fn total(&self) -> u64 {
        self.deleted.values().sum()
    }
}

/// Every workspace's id, read a page at a time: what the monthly reports and the alert
/// evaluator walk.
pub async fn all_workspace_ids(store: &dyn Store) -> StoreResult<Vec<WorkspaceId>> {
    let mut out: Vec<WorkspaceId> = Vec::new();
    loop {
        let page = store.workspace_ids(out.last(), 1_000).await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingSave {
    Saved,
    /// Someone saved the record since it was read: read it again and re-apply.
    Conflict,
    /// The event was already processed: nothing was saved.
    Duplicate,
}

/// What one retention pass changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retained {
    pub events_kept: u64,
    pub events_deleted: u64,
    pub rollups_kept: u64,
    pub rollups_deleted: u64,
}

impl std::ops::AddAssign for Retained {
    fn add_assign(&mut self, o: Retained) {
        self.events_kept += o.events_kept;
        self.events_deleted += o.events_deleted;
        self.rollups_kept += o.rollups_kept;
        self.rollups_deleted += o.rollups_deleted;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

/// Work that outlives a request. `spec` says what to do (its shape belongs to `kind`'s runner),
/// `progress` is where a resumed run picks up, `result` what a finished one produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub workspace: WorkspaceId,
    pub kind: String,
    pub state: JobState,
    pub spec: serde_json::Value,
    pub progress: serde_json::Value,
    pub result: Option<serde_json::Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Optimistic concurrency: incremented by every update.
    pub version: u64,
    /// When the store may forget the job (the deletion record of the security log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<i64>,
}

impl Job {
    /// A new job of `kind`, queued at `now_ms`, its id `{prefix}_{ulid}`.
    pub fn queued(
        prefix: &str,
        workspace: &WorkspaceId,
        kind: &str,
        spec: serde_json::Value,
        progress: serde_json::Value,
        now_ms: i64,
    ) -> Job {
        Job {
            id: format!(
                "{prefix}_{}",
                ulid::Ulid::new().to_string().to_ascii_lowercase()
            ),
            workspace: workspace.clone(),
            kind: kind.to_owned(),
            state: JobState::Queued,
            spec,
            progress,
            result: None,
            created_ms: now_ms,
            updated_ms: now_ms,
            version: 0,
            expires_ms: None,
        }
    }
}

/// The clock is a port so tests can move time.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

pub type DynClock = Arc<dyn Clock>;

/// An email to send: always a plain-text part, optionally HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// The workspace the mail tells about (its data may be in it), if any: a mailer that keeps
    /// copies forgets them when the workspace is deleted.
    pub about: Option<WorkspaceId>,
}

/// The mail port: SES on AWS, an outbox folder of `.eml` files locally.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, mail: &Mail) -> anyhow::Result<()>;
    /// Deletes the copies this mailer keeps of mail about a deleted workspace; returns how
    /// many. Sent mail is its recipients' and cannot be recalled: SES keeps none, so this does
    /// nothing there; the local outbox deletes its files.
    async fn forget(&self, _ws: &WorkspaceId) -> anyhow::Result<usize> {
        Ok(0)
    }
}

pub type DynMailer = Arc<dyn Mailer>;

/// The archive port: where monthly reports and large exports are kept. S3 on AWS, a folder
/// (`DATA_DIR/archive`) locally. Keys are `/`-separated paths `{area}/{workspace}/…`
/// (`exports/ws_…/exp_….csv`): an area has its own lifecycle rule on S3, and deleting a
/// workspace's prefix in each area removes everything it had.
#[async_trait]
pub trait Archive: Send + Sync + 'static {
    /// Stores a whole object (reports: small).
    async fn put(&self, key: &str, content_type: &str, body: Vec<u8>) -> anyhow::Result<()> {
        self.put_tagged(key, content_type, body, &[]).await
    }
    /// Stores a whole object with tags that choose its lifecycle rule on S3 (a report's
    /// `plan`, so it is kept as long as the plan keeps reports). The folder keeps no tags.
    async fn put_tagged(
        &self,
        key: &str,
        content_type: &str,
        body: Vec<u8>,
        tags: &[(&str, &str)],
    ) -> anyhow::Result<()>;
    /// Starts a large object written in pieces (exports); nothing is visible under `key` until
    /// `finish` succeeds, and `abort` leaves nothing behind.
    async fn writer(&self, key: &str, content_type: &str)
    -> anyhow::Result<Box<dyn ArchiveWriter>>;
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Keys under a prefix, sorted.
    async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>>;
    /// Deletes every object under a prefix; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<usize>;
    /// A URL that downloads the object as `filename` until `expires_in` has passed, then stops
    /// working (a presigned GET on S3, an HMAC-signed local URL on `llmtrack serve`).
    async fn link(
        &self,
        key: &str,
        filename: &str,
        expires_in: std::time::Duration,
    ) -> anyhow::Result<String>;
}

#[async_trait]
pub trait ArchiveWriter: Send {
    async fn write(&mut self, chunk: &[u8]) -> anyhow::Result<()>;
    /// Makes the object visible; returns its size in bytes.
    async fn finish(self: Box<Self>) -> anyhow::Result<u64>;
    async fn abort(self: Box<Self>) -> anyhow::Result<()>;
}

pub type DynArchive = Arc<dyn Archive>;
