//! Workspaces: their records, plans and settings, and the one-time notices sent about them.

use super::StoreResult;
use crate::domain::budget::WorkspaceBudgets;
use crate::domain::ids::{UserId, WorkspaceId};
use crate::domain::plan::Plan;
use crate::domain::pricing::custom::WorkspacePrices;
use crate::domain::spans::SpanLabels;
use crate::domain::tags::TagKeys;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

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
    /// Its own prices, which come before the bundled table's (`domain::pricing::custom`).
    #[serde(default)]
    pub prices: WorkspacePrices,
    /// Its budgets (`domain::budget`), versioned like its prices.
    #[serde(default)]
    pub budgets: WorkspaceBudgets,
    /// Which OpenTelemetry attributes name `feature` and `user_id` (`domain::spans`).
    #[serde(default)]
    pub spans: SpanLabels,
    /// The members who asked for the weekly digest email, versioned like the budgets.
    #[serde(default)]
    pub digest: DigestSubscribers,
    /// Its cost-allocation tag keys and the values each keeps (`domain::tags`), versioned.
    #[serde(default)]
    pub tags: TagKeys,
}

/// Who gets a workspace's weekly digest email (opt-in, so empty by default). `version` goes up
/// by one with each change, which is conditioned on the one before (`Workspaces::set_digest`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestSubscribers {
    #[serde(default)]
    pub version: u64,
    #[serde(default)]
    pub users: Vec<UserId>,
}

impl DigestSubscribers {
    pub fn contains(&self, user: &UserId) -> bool {
        self.users.contains(user)
    }

    /// The next version with `user` in (`on`) or out; `None` when that changes nothing.
    pub fn with(&self, user: &UserId, on: bool) -> Option<DigestSubscribers> {
        if self.contains(user) == on {
            return None;
        }
        let mut users = self.users.clone();
        if on {
            users.push(user.clone());
        } else {
            users.retain(|u| u != user);
        }
        Some(DigestSubscribers {
            version: self.version + 1,
            users,
        })
    }
}

#[async_trait]
pub trait Workspaces: Send + Sync + 'static {
    async fn create_workspace(&self, ws: &Workspace) -> StoreResult<()>;

    async fn workspace(&self, id: &WorkspaceId) -> StoreResult<Option<Workspace>>;

    /// Returns false when the workspace does not exist.
    async fn set_plan(&self, id: &WorkspaceId, plan: Plan) -> StoreResult<bool>;

    async fn update_workspace(&self, ws: &Workspace) -> StoreResult<bool>;

    /// Replaces the workspace's price rules if they are still at `prices.version - 1`; false
    /// (changing nothing) when another change came first or the workspace does not exist.
    async fn set_prices(&self, id: &WorkspaceId, prices: &WorkspacePrices) -> StoreResult<bool>;

    /// Replaces the workspace's budgets if they are still at `budgets.version - 1`; false
    /// (changing nothing) when another change came first or the workspace does not exist.
    async fn set_budgets(&self, id: &WorkspaceId, budgets: &WorkspaceBudgets) -> StoreResult<bool>;

    /// Replaces the digest's subscribers if they are still at `digest.version - 1`; false
    /// (changing nothing) when another change came first or the workspace does not exist.
    async fn set_digest(&self, id: &WorkspaceId, digest: &DigestSubscribers) -> StoreResult<bool>;

    /// Replaces the tag keys if they are still at `tags.version - 1`; false (changing nothing)
    /// when another change came first or the workspace does not exist.
    async fn set_tags(&self, id: &WorkspaceId, tags: &TagKeys) -> StoreResult<bool>;

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
}

/// Every workspace's id, read a page at a time: what the monthly reports and the alert
/// evaluator walk.
pub async fn all_workspace_ids(store: &dyn Workspaces) -> StoreResult<Vec<WorkspaceId>> {
    let mut out: Vec<WorkspaceId> = Vec::new();
    loop {
        let page = store.workspace_ids(out.last(), 1_000).await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}
