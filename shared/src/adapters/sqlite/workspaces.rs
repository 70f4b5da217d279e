//! Workspaces and the one-time notices sent about them.

use super::*;
use crate::domain::budget::WorkspaceBudgets;
use crate::domain::spans::SpanLabels;
use crate::domain::tags::TagKeys;
use crate::ports::DigestSubscribers;

#[async_trait]
impl Workspaces for SqliteStore {
    async fn create_workspace(&self, ws: &Workspace) -> StoreResult<()> {
        let ws = ws.clone();
        self.write(move |c| {
            c.execute(
                "INSERT INTO workspaces (id, name, plan, timezone, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![ws.id.as_str(), ws.name, ws.plan.as_str(), ws.timezone, ws.created_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn workspace(&self, id: &WorkspaceId) -> StoreResult<Option<Workspace>> {
        let id = id.clone();
        self.read(move |c| {
            let row = c
                .query_row(
                    "SELECT name, plan, timezone, created_ms, deleting, prices, spans, budgets, digest, tags FROM workspaces WHERE id = ?1",
                    [id.as_str()],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, Option<String>>(5)?,
                            r.get::<_, Option<String>>(6)?,
                            r.get::<_, Option<String>>(7)?,
                            r.get::<_, Option<String>>(8)?,
                            r.get::<_, Option<String>>(9)?,
                        ))
                    },
                )
                .optional()?;
            row.map(|(name, plan, timezone, created_ms, deleting, prices, spans, budgets, digest, tags)| {
                let tags = match tags {
                    Some(t) => serde_json::from_str(&t)
                        .map_err(|e| anyhow!("workspace {id} has unreadable tag keys: {e}"))?,
                    None => TagKeys::default(),
                };
                let prices = match prices {
                    Some(p) => serde_json::from_str(&p)
                        .map_err(|e| anyhow!("workspace {id} has unreadable prices: {e}"))?,
                    None => WorkspacePrices::default(),
                };
                let budgets = match budgets {
                    Some(b) => serde_json::from_str(&b)
                        .map_err(|e| anyhow!("workspace {id} has unreadable budgets: {e}"))?,
                    None => WorkspaceBudgets::default(),
                };
                let digest = match digest {
                    Some(d) => serde_json::from_str(&d)
                        .map_err(|e| anyhow!("workspace {id} has unreadable digest subscribers: {e}"))?,
                    None => DigestSubscribers::default(),
                };
                let spans = match spans {
                    Some(s) => serde_json::from_str(&s)
                        .map_err(|e| anyhow!("workspace {id} has unreadable span labels: {e}"))?,
                    None => SpanLabels::default(),
                };
                let plan = Plan::parse(&plan)
                    .ok_or_else(|| anyhow!("workspace {id} has unknown plan {plan}"))?;
                Ok(Workspace {
                    id,
                    name,
                    plan,
                    timezone,
                    created_ms,
                    deleting,
                    prices,
                    budgets,
                    spans,
                    digest,
                    tags,
                })
            })
            .transpose()
        })
        .await
    }

    async fn set_plan(&self, id: &WorkspaceId, plan: Plan) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE workspaces SET plan = ?1 WHERE id = ?2",
                params![plan.as_str(), id.as_str()],
            )? == 1)
        })
        .await
    }

    async fn update_workspace(&self, ws: &Workspace) -> StoreResult<bool> {
        let ws = ws.clone();
        // The defaults are stored as NULL, so a later change of the defaults reaches them.
        let spans = (ws.spans != SpanLabels::default())
            .then(|| serde_json::to_string(&ws.spans))
            .transpose()
            .map_err(|e| anyhow!(e))?;
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE workspaces SET name = ?1, timezone = ?2, spans = ?3 WHERE id = ?4",
                params![ws.name, ws.timezone, spans, ws.id.as_str()],
            )? == 1)
        })
        .await
    }

    async fn set_prices(&self, id: &WorkspaceId, prices: &WorkspacePrices) -> StoreResult<bool> {
        self.set_versioned(id, Versioned::Prices, prices, prices.version)
            .await
    }

    async fn set_budgets(&self, id: &WorkspaceId, budgets: &WorkspaceBudgets) -> StoreResult<bool> {
        self.set_versioned(id, Versioned::Budgets, budgets, budgets.version)
            .await
    }

    async fn set_digest(&self, id: &WorkspaceId, digest: &DigestSubscribers) -> StoreResult<bool> {
        self.set_versioned(id, Versioned::Digest, digest, digest.version)
            .await
    }

    async fn set_tags(&self, id: &WorkspaceId, tags: &TagKeys) -> StoreResult<bool> {
        self.set_versioned(id, Versioned::Tags, tags, tags.version)
            .await
    }

    async fn workspace_ids(
        &self,
        after: Option<&WorkspaceId>,
        limit: usize,
    ) -> StoreResult<Vec<WorkspaceId>> {
        let after = after.map(|w| w.as_str().to_owned());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id FROM workspaces WHERE ?1 IS NULL OR id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let ids = stmt.query_map(params![after, limit as i64], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for id in ids {
                let id = id?;
                out.push(WorkspaceId::parse(&id).ok_or_else(|| anyhow!("bad workspace id {id}"))?);
            }
            Ok(out)
        })
        .await
    }

    async fn claim_notice(&self, ws: &WorkspaceId, key: &str, now_ms: i64) -> StoreResult<bool> {
        let (ws, key) = (ws.clone(), key.to_owned());
        self.write(move |c| {
            Ok(c.execute(
                "INSERT INTO notices (workspace_id, key, at_ms) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![ws.as_str(), key, now_ms],
            )? == 1)
        })
        .await
    }
}

/// The workspace's versioned JSON columns. A closed set, so no column name is ever built from
/// input.
#[derive(Clone, Copy)]
enum Versioned {
    Prices,
    Budgets,
    Digest,
    Tags,
}

impl Versioned {
    fn update(self) -> &'static str {
        match self {
            Versioned::Prices => {
                "UPDATE workspaces SET prices = ?1 WHERE id = ?2
                 AND COALESCE(json_extract(prices, '$.version'), 0) = ?3"
            }
            Versioned::Budgets => {
                "UPDATE workspaces SET budgets = ?1 WHERE id = ?2
                 AND COALESCE(json_extract(budgets, '$.version'), 0) = ?3"
            }
            Versioned::Digest => {
                "UPDATE workspaces SET digest = ?1 WHERE id = ?2
                 AND COALESCE(json_extract(digest, '$.version'), 0) = ?3"
            }
            Versioned::Tags => {
                "UPDATE workspaces SET tags = ?1 WHERE id = ?2
                 AND COALESCE(json_extract(tags, '$.version'), 0) = ?3"
            }
        }
    }
}

impl SqliteStore {
    /// Writes one of the workspace's versioned JSON columns if its stored version is still
    /// `version - 1`; false when another change came first or the workspace does not exist.
    async fn set_versioned<T: serde::Serialize>(
        &self,
        id: &WorkspaceId,
        column: Versioned,
        value: &T,
        version: u64,
    ) -> StoreResult<bool> {
        let (id, json, previous) = (
            id.clone(),
            serde_json::to_string(value).map_err(|e| anyhow!(e))?,
            version.saturating_sub(1),
        );
        self.write(move |c| {
            Ok(c.execute(column.update(), params![json, id.as_str(), previous as i64])? == 1)
        })
        .await
    }
}
