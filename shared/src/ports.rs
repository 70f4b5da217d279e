//! Ports: the traits the functions depend on. Adapters live in `adapters/`.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::apikey::{ApiKey, KeyHash, KeyState};
use crate::domain::event::Event;
use crate::domain::ids::{KeyId, WorkspaceId};
use crate::domain::plan::Plan;
use crate::domain::rollup::{Dimension, Rollup, RollupKey};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub plan: Plan,
    pub created_ms: i64,
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
    /// The month's quota was already used up: nothing was written.
    QuotaExceeded { used: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
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

    async fn create_key(&self, key: &ApiKey) -> StoreResult<()>;
    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<ApiKey>>;
    async fn keys(&self, ws: &WorkspaceId) -> StoreResult<Vec<ApiKey>>;
    /// Returns false when the key is not in that workspace.
    async fn set_key_state(
        &self,
        ws: &WorkspaceId,
        key: &KeyId,
        state: KeyState,
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

    /// Rollups of one dimension for hours in `[from_hour, to_hour)`.
    async fn rollups(
        &self,
        ws: &WorkspaceId,
        dimension: Dimension,
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

    /// Finishes any batch a crashed writer left half-applied. Returns how many it finished.
    async fn recover(&self, ws: &WorkspaceId) -> StoreResult<usize>;
}

pub type DynStore = Arc<dyn Store>;

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
