//! Workspaces on DynamoDB: `WS#{id}` / `WS`, the index of workspaces, and the one-time notices.

use super::items::{self, Bare, NoticeItem, WorkspaceItem};
use super::*;
use crate::domain::budget::WorkspaceBudgets;
use crate::domain::ids::WorkspaceId;
use crate::domain::plan::Plan;
use crate::domain::pricing::custom::WorkspacePrices;
use crate::domain::tags::TagKeys;
use crate::ports::DigestSubscribers;
use crate::ports::StoreError;
use crate::ports::StoreResult;
use crate::ports::Workspace;

#[async_trait]
impl Workspaces for DynamoStore {
    async fn create_workspace(&self, ws: &Workspace) -> StoreResult<()> {
        // The index first: an entry whose workspace never came is skipped by its readers.
        self.put(
            items::item(schema::workspace_index(&ws.id), &Bare {})?,
            None,
        )
        .await?;
        let item = items::item(schema::workspace(&ws.id), &WorkspaceItem::new(ws))?;
        if self.put(item, Some("attribute_not_exists(pk)")).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("workspace {}", ws.id)))
        }
    }

    async fn workspace(&self, id: &WorkspaceId) -> StoreResult<Option<Workspace>> {
        let Some(item) = self.get(schema::workspace(id)).await? else {
            return Ok(None);
        };
        Ok(Some(items::read::<WorkspaceItem>(item)?.into_workspace(id)))
    }

    async fn update_workspace(&self, ws: &Workspace) -> StoreResult<bool> {
        Ok(self.update_workspace_settings(ws).await?)
    }

    async fn set_prices(&self, id: &WorkspaceId, prices: &WorkspacePrices) -> StoreResult<bool> {
        self.set_versioned(id, "prices", "pv", prices, prices.version)
            .await
    }

    async fn set_budgets(&self, id: &WorkspaceId, budgets: &WorkspaceBudgets) -> StoreResult<bool> {
        self.set_versioned(id, "budgets", "bv", budgets, budgets.version)
            .await
    }

    async fn set_digest(&self, id: &WorkspaceId, digest: &DigestSubscribers) -> StoreResult<bool> {
        self.set_versioned(id, "digest", "dv", digest, digest.version)
            .await
    }

    async fn set_tags(&self, id: &WorkspaceId, tags: &TagKeys) -> StoreResult<bool> {
        self.set_versioned(id, "tags", "tv", tags, tags.version)
            .await
    }

    async fn set_plan(&self, id: &WorkspaceId, plan: Plan) -> StoreResult<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::workspace(id))))
            .update_expression("SET #p = :p")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#p", "plan")
            .expression_attribute_values(":p", s(plan.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(err(e).into()),
        }
    }

    async fn workspace_ids(
        &self,
        after: Option<&WorkspaceId>,
        limit: usize,
    ) -> StoreResult<Vec<WorkspaceId>> {
        let mut q = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(schema::WORKSPACE_INDEX_PK))
            .limit(limit.clamp(1, 1000) as i32);
        q = match after {
            Some(a) => q
                .key_condition_expression("pk = :pk AND sk > :after")
                .expression_attribute_values(":after", s(a.as_str())),
            None => q.key_condition_expression("pk = :pk"),
        };
        let out = q.send().await.map_err(err)?;
        Ok(out
            .items()
            .iter()
            .filter_map(|i| items::sort_key_of(i).ok())
            .filter_map(|sk| WorkspaceId::parse(&sk))
            .collect())
    }

    async fn claim_notice(&self, ws: &WorkspaceId, key: &str, now_ms: i64) -> StoreResult<bool> {
        let item = items::item(schema::notice(ws, key), &NoticeItem { at: now_ms })?;
        Ok(self.put(item, Some("attribute_not_exists(pk)")).await?)
    }
}

impl DynamoStore {
    /// Writes one of the workspace's versioned JSON attributes (price rules, budgets, digest
    /// subscribers) if its version attribute is still `version - 1`; false when another change
    /// came first or the workspace does not exist. Workspaces made before the attribute have no
    /// version attribute: version 0.
    async fn set_versioned<T: serde::Serialize>(
        &self,
        id: &WorkspaceId,
        attr: &str,
        version_attr: &str,
        value: &T,
        version: u64,
    ) -> StoreResult<bool> {
        let json = serde_json::to_string(value).map_err(|e| anyhow::anyhow!(e))?;
        let previous = version.saturating_sub(1);
        let condition = if previous == 0 {
            "attribute_exists(pk) AND (attribute_not_exists(#v) OR #v = :old)"
        } else {
            "attribute_exists(pk) AND #v = :old"
        };
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(schema::workspace(id))))
            .update_expression("SET #a = :a, #v = :v")
            .expression_attribute_names("#a", attr)
            .expression_attribute_names("#v", version_attr)
            .expression_attribute_values(":a", s(&json))
            .expression_attribute_values(":v", n(version))
            .condition_expression(condition)
            .expression_attribute_values(":old", n(previous));
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(err(e).into()),
        }
    }
}
