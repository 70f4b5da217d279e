//! API keys on DynamoDB: the key item by hash, and the workspace's count of active keys.

use super::items::{self, KeyListingItem};
use super::*;
use crate::domain::apikey::ApiKey;
use crate::domain::apikey::KeyState;
use crate::domain::ids::KeyId;
use crate::domain::ids::WorkspaceId;
use crate::ports::Refusal;
use crate::ports::StoreError;
use crate::ports::StoreResult;
use anyhow::anyhow;

#[async_trait]
impl Keys for DynamoStore {
    async fn create_key(&self, k: &ApiKey, max_active: u32) -> StoreResult<()> {
        let listing = items::item(
            schema::key_listing(&k.workspace_id, &k.id),
            &KeyListingItem {
                hash: k.hash.0.clone(),
            },
        )?;
        let steps = vec![
            Self::count_step(
                &k.workspace_id,
                "ADD #keys :one",
                Some("attribute_exists(pk) AND #keys < :max"),
                vec![(":one", n(1)), (":max", n(max_active))],
            ),
            Step::Put {
                item: Self::key_item(k)?,
                cond: Some("attribute_not_exists(pk)".into()),
                values: vec![],
            },
            Step::Put {
                item: listing,
                cond: None,
                values: vec![],
            },
        ];
        match self.transact(steps).await? {
            None => Ok(()),
            Some(0) => Err(StoreError::Refused(Refusal::KeyLimit)),
            Some(_) => Err(StoreError::Conflict(format!("key {}", k.id))),
        }
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<ApiKey>> {
        Ok(self
            .get(schema::api_key(hash))
            .await?
            .map(Self::key_from_item)
            .transpose()?)
    }

    async fn keys(&self, ws: &WorkspaceId) -> StoreResult<Vec<ApiKey>> {
        let (pk, prefix) = schema::key_listings(ws);
        let hashes = self
            .query_prefix(pk, prefix)
            .await?
            .into_iter()
            .map(|i| {
                Ok(schema::api_key_by_hash(
                    &items::read::<KeyListingItem>(i)?.hash,
                ))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut keys = self
            .batch_get(hashes)
            .await?
            .into_iter()
            .map(Self::key_from_item)
            .collect::<anyhow::Result<Vec<_>>>()?;
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }

    async fn set_key_state(
        &self,
        ws: &WorkspaceId,
        key: &KeyId,
        state: KeyState,
        max_active: u32,
    ) -> StoreResult<bool> {
        let Some(current) = self.key_record(ws, key).await? else {
            return Ok(false);
        };
        if current.state == state {
            return Ok(true);
        }
        let counter = match state {
            KeyState::Active => Self::count_step(
                ws,
                "ADD #keys :one",
                Some("#keys < :max"),
                vec![(":one", n(1)), (":max", n(max_active))],
            ),
            KeyState::Deactivated => {
                Self::count_step(ws, "ADD #keys :minus", None, vec![(":minus", n(-1))])
            }
        };
        let flip = Step::Update {
            key: schema::api_key(&current.hash),
            expr: "SET #state = :new".into(),
            cond: Some("#state = :old".into()),
            values: vec![
                (":new", s(state.as_str())),
                (":old", s(current.state.as_str())),
            ],
        };
        match self.transact(vec![counter, flip]).await? {
            None => Ok(true),
            Some(0) => Err(StoreError::Refused(Refusal::KeyLimit)),
            Some(_) => Err(anyhow!("key {key} changed state concurrently; try again").into()),
        }
    }

    async fn delete_key(&self, ws: &WorkspaceId, key: &KeyId) -> StoreResult<bool> {
        let Some(current) = self.key_record(ws, key).await? else {
            // The listing may outlive a half-deleted key: clean it up.
            self.delete(schema::key_listing(ws, key), None).await?;
            return Ok(false);
        };
        let mut steps = vec![
            // The auth item and the listing go together, so a deleted key is refused at once.
            Step::Delete {
                key: schema::api_key(&current.hash),
                cond: Some("#state = :s".into()),
                values: vec![(":s", s(current.state.as_str()))],
            },
            Step::Delete {
                key: schema::key_listing(ws, key),
                cond: None,
                values: vec![],
            },
        ];
        if current.state == KeyState::Active {
            steps.push(Self::count_step(
                ws,
                "ADD #keys :minus",
                None,
                vec![(":minus", n(-1))],
            ));
        }
        match self.transact(steps).await? {
            None => Ok(true),
            Some(_) => Err(anyhow!("key {key} changed state concurrently; try again").into()),
        }
    }

    async fn touch_key(&self, key: &ApiKey, at_ms: i64) -> StoreResult<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(super::key(schema::api_key(&key.hash))))
            .update_expression("SET used = :t")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(used) OR used < :t)",
            )
            .expression_attribute_values(":t", n(at_ms))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| {
                if is_condition_failed(&e) {
                    Ok(())
                } else {
                    Err(err(e))
                }
            })?;
        Ok(())
    }
}
