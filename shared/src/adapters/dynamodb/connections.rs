//! Provider connections and the days their imports brought, on DynamoDB.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | connection (admin key sealed) | `WS#{ws}` | `CONN#{id}` |
//! | billed day of a connection (its rows) | `W#{ws}#BILL` | `{day}#{connection}` |
//!
//! A day's rows are one item, so replacing a day is one put: whole or not at all. A workspace
//! holds a few connections and a row per model and project a day, far inside an item's 400 KB.

use super::items::{self, JsonItem};
use super::*;
use crate::domain::reconciliation::{BilledRow, Connection};
use crate::ports::{Connections, StoreResult};

#[async_trait]
impl Connections for DynamoStore {
    async fn save_connection(&self, c: &Connection) -> StoreResult<()> {
        let item = items::item(schema::connection(&c.workspace, &c.id), &JsonItem { d: c })?;
        self.put(item, None).await?;
        Ok(())
    }

    async fn update_connection(&self, c: &Connection) -> StoreResult<bool> {
        let item = items::item(schema::connection(&c.workspace, &c.id), &JsonItem { d: c })?;
        Ok(self.put(item, Some("attribute_exists(pk)")).await?)
    }

    async fn connections(&self, ws: &WorkspaceId) -> StoreResult<Vec<Connection>> {
        Ok(self
            .query_prefix(schema::workspace_pk(ws), schema::CONNECTION_PREFIX)
            .await?
            .into_iter()
            .map(|item| Ok(items::read::<JsonItem<Connection>>(item)?.d))
            .collect::<anyhow::Result<_>>()?)
    }

    async fn connection(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<Connection>> {
        Ok(self
            .get(schema::connection(ws, id))
            .await?
            .map(|item| Ok::<_, anyhow::Error>(items::read::<JsonItem<Connection>>(item)?.d))
            .transpose()?)
    }

    async fn delete_connection(&self, ws: &WorkspaceId, id: &str) -> StoreResult<bool> {
        if self.get(schema::connection(ws, id)).await?.is_none() {
            return Ok(false);
        }
        // The figures first: a stop in between leaves the connection to delete them by.
        let mut doomed = Vec::new();
        for item in self.query_all(schema::billed_pk(ws), None, None).await? {
            let key = items::key_of(&item)?;
            if schema::billed_connection(&key.1) == Some(id) {
                doomed.push(key);
            }
        }
        self.delete_keys(doomed).await?;
        self.delete(schema::connection(ws, id), None).await?;
        Ok(true)
    }

    async fn replace_billed_days(
        &self,
        ws: &WorkspaceId,
        connection: &str,
        days: &[String],
        rows: &[BilledRow],
    ) -> StoreResult<()> {
        for day in days {
            let of_day: Vec<&BilledRow> = rows.iter().filter(|r| &r.day == day).collect();
            let item = items::item(
                schema::billed_day(ws, day, connection),
                &JsonItem { d: of_day },
            )?;
            self.put(item, None).await?;
        }
        Ok(())
    }

    async fn billed_rows(
        &self,
        ws: &WorkspaceId,
        from_day: &str,
        to_day: &str,
    ) -> StoreResult<Vec<BilledRow>> {
        let items = self
            .query_all(
                schema::billed_pk(ws),
                Some(schema::billed_days(from_day, to_day)),
                None,
            )
            .await?;
        let mut out = Vec::new();
        for item in items {
            out.extend(items::read::<JsonItem<Vec<BilledRow>>>(item)?.d);
        }
        Ok(out)
    }
}
