//! API keys.

use super::*;

#[async_trait]
impl Keys for SqliteStore {
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
}
