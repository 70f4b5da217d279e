//! Where every item kind lives in the table: its partition and sort key, built here and taken
//! apart here, nowhere else. Tables already deployed hold these exact strings, so they have one
//! definition (the item table in `mod.rs` lists them; `items` holds what each item carries).

use crate::domain::account::Email;
use crate::domain::apikey::KeyHash;
use crate::domain::event::Event;
use crate::domain::ids::{InvitationId, KeyId, UserId, WorkspaceId};
use crate::domain::rollup::View;
use crate::domain::time::hour_of;
use crate::ports::Job;

/// An item's primary key: (`pk`, `sk`).
pub(super) type Key = (String, String);

/// Sorts after every character ids and values use: `{prefix}~` ends a prefix's range.
const AFTER_ALL: char = '~';

/// The range of sort keys that start with `prefix` (`KEY#`, `MEMBER#`, ...).
pub(super) fn prefix_range(prefix: &str) -> (String, String) {
    (prefix.to_owned(), format!("{prefix}{AFTER_ALL}"))
}

// The workspace's partition: the workspace item and what hangs off it.

const WORKSPACE_SK: &str = "WS";
const KEY_PREFIX: &str = "KEY#";
pub(super) const MEMBER_PREFIX: &str = "MEMBER#";
pub(super) const INVITATION_PREFIX: &str = "INV#";
pub(super) const ALERT_PREFIX: &str = "ALERT#";
const NOTICE_PREFIX: &str = "NOTICE#";
const USAGE_PREFIX: &str = "USAGE#";
pub(super) const CONNECTION_PREFIX: &str = "CONN#";
const BILLING_SK: &str = "BILLING";

pub(super) fn workspace_pk(ws: &WorkspaceId) -> String {
    format!("WS#{ws}")
}

pub(super) fn workspace(ws: &WorkspaceId) -> Key {
    (workspace_pk(ws), WORKSPACE_SK.to_owned())
}

/// A key's listing under its workspace (the key item itself is found by hash).
pub(super) fn key_listing(ws: &WorkspaceId, key: &KeyId) -> Key {
    (workspace_pk(ws), format!("{KEY_PREFIX}{key}"))
}

pub(super) fn key_listings(ws: &WorkspaceId) -> (String, &'static str) {
    (workspace_pk(ws), KEY_PREFIX)
}

pub(super) fn usage(ws: &WorkspaceId, month: &str) -> Key {
    (workspace_pk(ws), format!("{USAGE_PREFIX}{month}"))
}

pub(super) fn member(ws: &WorkspaceId, user: &UserId) -> Key {
    (workspace_pk(ws), format!("{MEMBER_PREFIX}{user}"))
}

pub(super) fn invitation(ws: &WorkspaceId, id: &InvitationId) -> Key {
    (workspace_pk(ws), format!("{INVITATION_PREFIX}{id}"))
}

pub(super) fn invitation_id(sk: &str) -> Option<InvitationId> {
    InvitationId::parse(sk.strip_prefix(INVITATION_PREFIX)?)
}

pub(super) fn alert_rule(ws: &WorkspaceId, id: &str) -> Key {
    (workspace_pk(ws), format!("{ALERT_PREFIX}{id}"))
}

pub(super) fn connection(ws: &WorkspaceId, id: &str) -> Key {
    (workspace_pk(ws), format!("{CONNECTION_PREFIX}{id}"))
}

/// What the provider billed: one item per day and connection, in one partition per workspace.
pub(super) fn billed_pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}#BILL")
}

pub(super) fn billed_day(ws: &WorkspaceId, day: &str, connection: &str) -> Key {
    (billed_pk(ws), format!("{day}#{connection}"))
}

/// The sort keys of the days `[from_day, to_day)`: `{to_day}` sorts before every `{to_day}#…`.
pub(super) fn billed_days(from_day: &str, to_day: &str) -> (String, String) {
    (from_day.to_owned(), to_day.to_owned())
}

/// The connection a billed day's sort key names.
pub(super) fn billed_connection(sk: &str) -> Option<&str> {
    sk.split_once('#').map(|(_, c)| c)
}

pub(super) fn notice(ws: &WorkspaceId, key: &str) -> Key {
    (workspace_pk(ws), format!("{NOTICE_PREFIX}{key}"))
}

pub(super) fn billing(ws: &WorkspaceId) -> Key {
    (workspace_pk(ws), BILLING_SK.to_owned())
}

/// What an item of the workspace's partition is, from its sort key.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum InWorkspace<'a> {
    Workspace,
    KeyListing,
    /// The member's user id.
    Member(&'a str),
    Invitation,
    AlertRule,
    Connection,
    Usage,
    Billing,
    Other,
}

pub(super) fn in_workspace(sk: &str) -> InWorkspace<'_> {
    if sk == WORKSPACE_SK {
        InWorkspace::Workspace
    } else if sk == BILLING_SK {
        InWorkspace::Billing
    } else if sk.starts_with(KEY_PREFIX) {
        InWorkspace::KeyListing
    } else if let Some(user) = sk.strip_prefix(MEMBER_PREFIX) {
        InWorkspace::Member(user)
    } else if sk.starts_with(INVITATION_PREFIX) {
        InWorkspace::Invitation
    } else if sk.starts_with(ALERT_PREFIX) {
        InWorkspace::AlertRule
    } else if sk.starts_with(CONNECTION_PREFIX) {
        InWorkspace::Connection
    } else if sk.starts_with(USAGE_PREFIX) {
        InWorkspace::Usage
    } else {
        InWorkspace::Other
    }
}

/// Every workspace's id, one item each, in one partition: the monthly reports walk it.
pub(super) const WORKSPACE_INDEX_PK: &str = "WSIDX";

pub(super) fn workspace_index(ws: &WorkspaceId) -> Key {
    (WORKSPACE_INDEX_PK.to_owned(), ws.to_string())
}

// API keys, found by hash when a request authenticates.

pub(super) fn api_key(hash: &KeyHash) -> Key {
    api_key_by_hash(&hash.0)
}

pub(super) fn api_key_by_hash(hash: &str) -> Key {
    (format!("{KEY_PREFIX}{hash}"), "KEY".to_owned())
}

pub(super) fn hash_of_api_key(pk: &str) -> Option<KeyHash> {
    pk.strip_prefix(KEY_PREFIX).map(|h| KeyHash(h.to_owned()))
}

// Events, their id guards, and the batches that wrote them.

pub(super) fn event_pk(ws: &WorkspaceId, hour: i64) -> String {
    format!("W#{ws}#E#{hour}")
}

pub(super) fn event(ws: &WorkspaceId, e: &Event) -> Key {
    (event_pk(ws, hour_of(e.ts_ms)), event_sk(e.ts_ms, &e.id))
}

fn event_sk(ts_ms: i64, id: &str) -> String {
    format!("{}#{id}", event_time(ts_ms))
}

/// The sort-key prefix of events at `ms`: `{ms}` sorts before every `{ms}#id`, so a range
/// `[event_time(lo), event_time(hi)]` holds the events of `[lo, hi)`.
pub(super) fn event_time(ms: i64) -> String {
    format!("{ms:013}")
}

/// The timestamp an event's sort key names.
pub(super) fn event_ts(sk: &str) -> Option<i64> {
    sk.split('#').next()?.parse().ok()
}

/// The guard that makes an id sent without a timestamp recognisable on retry.
pub(super) fn guard(ws: &WorkspaceId, id: &str) -> Key {
    (format!("W#{ws}#ID#{id}"), "ID".to_owned())
}

/// Batch markers, and compaction's lock and watermark, share one partition per workspace.
pub(super) fn marker_pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}#B")
}

pub(super) fn batch_marker(ws: &WorkspaceId, batch: &str) -> Key {
    (marker_pk(ws), batch.to_owned())
}

const LOCK_SK: &str = "cmp";
const WATERMARK_SK: &str = "wm";

pub(super) fn compaction_lock(ws: &WorkspaceId) -> Key {
    (marker_pk(ws), LOCK_SK.to_owned())
}

pub(super) fn watermark(ws: &WorkspaceId) -> Key {
    (marker_pk(ws), WATERMARK_SK.to_owned())
}

/// The batch a marker-partition sort key names (None: the lock or the watermark).
pub(super) fn marked_batch(sk: &str) -> Option<&str> {
    (sk != LOCK_SK && sk != WATERMARK_SK).then_some(sk)
}

/// Ids of compaction runs, recorded in rollup items' pending sets like batch ids.
pub(super) fn compaction_run_id() -> String {
    format!("cmp_{}", ulid::Ulid::new())
}

/// Ids of the compaction locks deletions take (never recorded in rollup items).
pub(super) fn deletion_lock_id() -> String {
    format!("del_{}", ulid::Ulid::new())
}

/// The marker that says whether a writer id (a batch, or a compaction run) is still in flight.
pub(super) fn writer_marker(ws: &WorkspaceId, writer: &str) -> Key {
    if writer.starts_with("cmp_") {
        compaction_lock(ws)
    } else {
        batch_marker(ws, writer)
    }
}

// Rollups and the deltas not yet folded into them.

pub(super) fn rollup_pk(ws: &WorkspaceId, view: &View) -> String {
    format!("W#{ws}#R#{}", view.encode())
}

pub(super) fn rollup(ws: &WorkspaceId, view: &View, hour: i64, value: &str) -> Key {
    (rollup_pk(ws, view), rollup_sk(hour, value))
}

pub(super) fn rollup_sk(hour: i64, value: &str) -> String {
    format!("{}#{value}", rollup_hour(hour))
}

/// The sort-key prefix of an hour's rollups: `{hour}` sorts before every `{hour}#value`.
pub(super) fn rollup_hour(hour: i64) -> String {
    format!("{hour:010}")
}

/// The sort keys of the rollups of hours `[from, to)`.
pub(super) fn rollup_hours(from: i64, to: i64) -> (String, String) {
    (rollup_hour(from), rollup_hour(to))
}

/// The sort keys of the rollups of hours `[from, to]`.
pub(super) fn rollup_hours_through(from: i64, to: i64) -> (String, String) {
    (rollup_hour(from), format!("{}{AFTER_ALL}", rollup_hour(to)))
}

/// A rollup's hour and value, from its sort key.
pub(super) fn parse_rollup_sk(sk: &str) -> anyhow::Result<(i64, &str)> {
    sk.split_once('#')
        .and_then(|(hour, value)| Some((hour.parse().ok()?, value)))
        .ok_or_else(|| anyhow::anyhow!("bad rollup key {sk}"))
}

pub(super) fn delta_pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}#D")
}

pub(super) fn delta(ws: &WorkspaceId, batch: &str, chunk: usize) -> Key {
    (delta_pk(ws), format!("{batch}#{chunk:03}"))
}

/// The sort-key prefix of a batch's delta items.
pub(super) fn deltas_of(batch: &str) -> String {
    format!("{batch}#")
}

/// Sorts after every delta item of `batch`.
pub(super) fn after_deltas_of(batch: &str) -> String {
    format!("{batch}#{AFTER_ALL}")
}

/// Sorts after every delta item.
pub(super) fn after_all_deltas() -> String {
    AFTER_ALL.to_string()
}

/// The batch a delta item's sort key names.
pub(super) fn delta_batch(sk: &str) -> &str {
    sk.rsplit_once('#').map_or(sk, |(b, _)| b)
}

// Jobs.

/// Jobs live in their own partition per workspace (`JOB#{ws}` / `{id}`), so a function that may
/// only create jobs can be limited to these keys (`dynamodb:LeadingKeys` in its policy), and
/// the stream that triggers the jobs Lambda can be filtered to them.
pub(super) fn job_pk(ws: &WorkspaceId) -> String {
    format!("{JOB_PK_PREFIX}{ws}")
}

const JOB_PK_PREFIX: &str = "JOB#";

/// Whether a partition key is a job's (what the stream-invoked Lambdas look for).
#[cfg(feature = "streams")]
pub(super) fn is_job_pk(pk: &str) -> bool {
    pk.starts_with(JOB_PK_PREFIX)
}

pub(super) fn job(ws: &WorkspaceId, id: &str) -> Key {
    (job_pk(ws), id.to_owned())
}

/// Unfinished jobs, listed for a restarted worker: `JOBS` / `{created:013}#{ws}#{id}`.
pub(super) const QUEUE_PK: &str = "JOBS";

pub(super) fn queued_job(job: &Job) -> Key {
    (
        QUEUE_PK.to_owned(),
        format!("{:013}#{}#{}", job.created_ms, job.workspace, job.id),
    )
}

/// The workspace and job id a queue entry's sort key names.
pub(super) fn parse_queued_job(sk: &str) -> Option<(WorkspaceId, &str)> {
    let mut parts = sk.splitn(3, '#');
    let (_, ws, id) = (parts.next(), parts.next()?, parts.next()?);
    Some((WorkspaceId::parse(ws)?, id))
}

// People: users, sign-in, sessions, memberships.

const USER_SK: &str = "USER";
const SESSION_PREFIX: &str = "SESS#";

pub(super) fn user_pk(user: &UserId) -> String {
    format!("USER#{user}")
}

pub(super) fn user(user: &UserId) -> Key {
    (user_pk(user), USER_SK.to_owned())
}

pub(super) fn user_by_email(email: &Email) -> Key {
    (format!("EMAIL#{}", email.as_str()), "EMAIL".to_owned())
}

pub(super) fn login_code(email: &Email) -> Key {
    (format!("CODE#{}", email.as_str()), "CODE".to_owned())
}

pub(super) fn rate_limit(bucket: &str, window_start_ms: i64) -> Key {
    (format!("RL#{bucket}"), window_start_ms.to_string())
}

pub(super) fn session(hash: &str) -> Key {
    (format!("{SESSION_PREFIX}{hash}"), "SESS".to_owned())
}

/// A session listed under its user, so signing out everywhere finds them all.
pub(super) fn user_session(user: &UserId, hash: &str) -> Key {
    (user_pk(user), format!("{SESSION_PREFIX}{hash}"))
}

pub(super) fn user_sessions(user: &UserId) -> (String, &'static str) {
    (user_pk(user), SESSION_PREFIX)
}

/// A membership listed under its user.
pub(super) fn membership(user: &UserId, ws: &WorkspaceId) -> Key {
    (user_pk(user), format!("{MEMBER_PREFIX}{ws}"))
}

/// What an item of a user's partition is, from its sort key.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum InUser<'a> {
    User,
    /// The session's hash.
    Session(&'a str),
    Membership,
    Other,
}

pub(super) fn in_user(sk: &str) -> InUser<'_> {
    if sk == USER_SK {
        InUser::User
    } else if let Some(hash) = sk.strip_prefix(SESSION_PREFIX) {
        InUser::Session(hash)
    } else if sk.starts_with(MEMBER_PREFIX) {
        InUser::Membership
    } else {
        InUser::Other
    }
}

// The audit log, alert history.

pub(super) fn audit_pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}#AUDIT")
}

pub(super) fn audit(ws: &WorkspaceId, id: &str) -> Key {
    (audit_pk(ws), id.to_owned())
}

pub(super) fn alert_log_pk(ws: &WorkspaceId) -> String {
    format!("W#{ws}#ALERTLOG")
}

pub(super) fn alert_event(ws: &WorkspaceId, rule: &str, id: &str) -> Key {
    (alert_log_pk(ws), format!("{}{id}", alert_events_of(rule)))
}

/// The sort-key prefix of a rule's history.
pub(super) fn alert_events_of(rule: &str) -> String {
    format!("{rule}#")
}

// Billing.

pub(super) fn customer(customer_id: &str) -> Key {
    (format!("CUS#{customer_id}"), "CUS".to_owned())
}

/// Records with a pending change of entitlement, in due order (one partition: they are few).
const DUE_PK: &str = "BILLDUE";

pub(super) fn due(due_ms: i64, ws: &WorkspaceId) -> Key {
    (DUE_PK.to_owned(), format!("{due_ms:013}#{ws}"))
}

/// The due index's partition, and the sort key after every entry due at `now_ms`.
pub(super) fn due_until(now_ms: i64) -> (&'static str, String) {
    (DUE_PK, format!("{now_ms:013}#{AFTER_ALL}"))
}

/// When a due index entry is due, from its sort key.
pub(super) fn parse_due(sk: &str) -> anyhow::Result<i64> {
    sk.split_once('#')
        .and_then(|(due, _)| due.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad due index key {sk}"))
}

pub(super) fn stripe_event(event: &str) -> Key {
    (format!("STRIPE#{event}"), "EVT".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_taken_apart_as_they_are_built() {
        let ws = WorkspaceId::generate(1_800_000_000_000);
        let (_, sk) = rollup(
            &ws,
            &View::of(crate::domain::rollup::Dimension::Model),
            7,
            "a#b",
        );
        assert_eq!(parse_rollup_sk(&sk).unwrap(), (7, "a#b"));
        assert_eq!(parse_due(&due(42, &ws).1).unwrap(), 42);
        assert_eq!(delta_batch(&delta(&ws, "01B", 3).1), "01B");
        let id = InvitationId::generate(1_800_000_000_000);
        assert_eq!(invitation_id(&invitation(&ws, &id).1), Some(id));
        let user_id = UserId::generate(1_800_000_000_000);
        assert_eq!(
            in_workspace(&member(&ws, &user_id).1),
            InWorkspace::Member(user_id.as_str())
        );
        assert_eq!(
            in_user(&user_session(&user_id, "h").1),
            InUser::Session("h")
        );
        assert_eq!(marked_batch(&compaction_lock(&ws).1), None);
        assert_eq!(
            writer_marker(&ws, &compaction_run_id()),
            compaction_lock(&ws)
        );
    }
}
