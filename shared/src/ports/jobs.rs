//! Work that outlives a request (exports, deletions, retention passes), saved so a restart resumes it.

use super::StoreResult;
use crate::domain::ids::WorkspaceId;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

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
            id: crate::domain::ids::prefixed(prefix, now_ms),
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

#[async_trait]
pub trait Jobs: Send + Sync + 'static {
    async fn create_job(&self, job: &Job) -> StoreResult<()>;

    async fn job(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<Job>>;

    /// Saves a job's new state if nobody saved it since `job.version` was read; bumps the
    /// version. False when another worker got there first.
    async fn update_job(&self, job: &mut Job) -> StoreResult<bool>;

    /// Jobs not yet finished, oldest first (a restarted local server resumes them).
    async fn unfinished_jobs(&self) -> StoreResult<Vec<Job>>;
}

/// Unfinished jobs of one kind, oldest first: what a restarted runner resumes.
pub async fn unfinished_jobs_of(store: &dyn Jobs, kind: &str) -> StoreResult<Vec<Job>> {
    Ok(store
        .unfinished_jobs()
        .await?
        .into_iter()
        .filter(|j| j.kind == kind)
        .collect())
}
