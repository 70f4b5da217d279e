//! Workspaces on DynamoDB: `WS#{id}` / `META`, and the one-time notices.

use super::*;
use crate::domain::ids::WorkspaceId;
use crate::domain::plan::Plan;
use crate::ports::StoreError;
use crate::ports::StoreResult;
use crate::ports::Workspace;
use anyhow::anyhow;
use std::collections::HashMap;

#[async_trait]
impl Workspaces for DynamoStore {
    async fn create_workspace(&self, ws: &Workspace) -> StoreResult<()> {
        // The index first: an entry whose workspace never came is skipped by its readers.
        let listed = HashMap::from([
            ("pk".to_owned(), s(WORKSPACE_INDEX_PK)),
            ("sk".to_owned(), s(ws.id.as_str())),
        ]);
        self.put(listed, None).await?;
        let item = HashMap::from([
            ("pk".to_owned(), s(format!("WS#{}", ws.id))),
            ("sk".to_owned(), s("WS")),
            ("name".to_owned(), s(&ws.name)),
            ("plan".to_owned(), s(ws.plan.as_str())),
            ("tz".to_owned(), s(&ws.timezone)),
            ("created".to_owned(), n(ws.created_ms)),
            // Counters behind the limits enforced atomically (active keys, members, owners).
            ("keys".to_owned(), n(0)),
            ("members".to_owned(), n(0)),
            ("owners".to_owned(), n(0)),
        ]);
        if self.put(item, Some("attribute_not_exists(pk)")).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!("workspace {}", ws.id)))
        }
    }

    async fn workspace(&self, id: &WorkspaceId) -> StoreResult<Option<Workspace>> {
        let Some(item) = self.get(format!("WS#{id}"), "WS").await? else {
            return Ok(None);
        };
        Ok(Some(Workspace {
            id: id.clone(),
            name: get_s(&item, "name")?.to_owned(),
            plan: Plan::parse(get_s(&item, "plan")?)
                .ok_or_else(|| anyhow!("workspace {id} has an unknown plan"))?,
            timezone: get_s(&item, "tz").unwrap_or("UTC").to_owned(),
            created_ms: get_n(&item, "created")?,
            deleting: get_s(&item, "deleting").ok().map(str::to_owned),
        }))
    }

    async fn update_workspace(&self, ws: &Workspace) -> StoreResult<bool> {
        Ok(self.update_workspace_settings(ws).await?)
    }

    async fn set_plan(&self, id: &WorkspaceId, plan: Plan) -> StoreResult<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("WS#{id}")))
            .key("sk", s("WS"))
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
            .expression_attribute_values(":pk", s(WORKSPACE_INDEX_PK))
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
            .filter_map(|i| get_s(i, "sk").ok().and_then(WorkspaceId::parse))
            .collect())
    }

    async fn claim_notice(&self, ws: &WorkspaceId, key: &str, now_ms: i64) -> StoreResult<bool> {
        let item = HashMap::from([
            ("pk".to_owned(), s(format!("WS#{ws}"))),
            ("sk".to_owned(), s(format!("NOTICE#{key}"))),
            ("at".to_owned(), n(now_ms)),
        ]);
        Ok(self.put(item, Some("attribute_not_exists(pk)")).await?)
    }
}
