//! API keys: created, looked up by hash on every keyed request, paused, revoked.

use super::StoreResult;
use crate::domain::apikey::{ApiKey, KeyHash, KeyState};
use crate::domain::ids::{KeyId, WorkspaceId};
use async_trait::async_trait;

#[async_trait]
pub trait Keys: Send + Sync + 'static {
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
}
