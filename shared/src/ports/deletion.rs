//! Deleting data for real: a range of events, a whole workspace, a person.

use super::{Job, StoreResult};
use crate::domain::ids::{UserId, WorkspaceId};
use async_trait::async_trait;

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

#[async_trait]
pub trait Erasure: Send + Sync + 'static {
    /// Finishes any batch a crashed writer left half-applied in the workspace, so that what a
    /// deletion then lists (the hours with events) is complete. Nothing to do where a batch is
    /// one transaction (SQLite).
    async fn finish_writes(&self, ws: &WorkspaceId) -> StoreResult<()>;

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
}
