//! Deleting a whole workspace on DynamoDB (`Store::purge_workspace`), and a user's own records
//! (`Store::delete_user`).
//!
//! Nothing here keeps a cursor: every call works out what is left from what is still stored,
//! in an order that keeps the way to the rest until last. The total rollup lists the hours that
//! hold events, so an hour's events go before its total item; the feature and source views list
//! the values that have views of their own, so those go after them; the workspace item goes
//! last. A call stopped anywhere is finished by the next one.
//!
//! Deletes are plain batch writes: unlike a range deletion there is nothing to keep consistent
//! (usage, rollups) with what stays, because nothing stays.

use super::items::{self, EventBody};
use super::*;
use crate::domain::ids::WorkspaceId;
use crate::ports::Purged;
use aws_sdk_dynamodb::types::DeleteRequest;
use aws_sdk_dynamodb::types::WriteRequest;
use futures_util::stream;
use std::time::Duration;

/// BatchWriteItem takes at most 25 requests.
pub(super) const BATCH: usize = 25;

impl DynamoStore {
    /// Deletes the events of one hour and the id guards of those sent without a timestamp.
    pub(super) async fn purge_hour(
        &self,
        ws: &WorkspaceId,
        hour: i64,
    ) -> anyhow::Result<(u64, u64)> {
        let stored = self
            .query_all(schema::event_pk(ws, hour), None, None)
            .await?;
        let mut keys = Vec::with_capacity(stored.len());
        let mut events: Vec<Key> = Vec::with_capacity(stored.len());
        for item in stored {
            events.push(items::key_of(&item)?);
            let e = items::read::<EventBody>(item)?.d;
            if e.idempotent_without_timestamp() {
                keys.push(schema::guard(ws, &e.id));
            }
        }
        let guards = keys.len() as u64;
        // Guards before their events: a stop in between leaves the events to find them by.
        self.delete_keys(keys).await?;
        let n = events.len() as u64;
        self.delete_keys(events).await?;
        Ok((n, guards))
    }

    /// Deletes up to `left` items of a partition, counted as `kind`. False when the budget ran
    /// out first (there may be more).
    pub(super) async fn purge_partition(
        &self,
        pk: &str,
        kind: &str,
        left: &mut usize,
        out: &mut Purged,
    ) -> anyhow::Result<bool> {
        loop {
            let first = self.first_items(pk.to_owned(), *left).await?;
            if first.is_empty() {
                return Ok(true);
            }
            let n = first.len();
            self.delete_keys(
                first
                    .iter()
                    .map(items::key_of)
                    .collect::<anyhow::Result<_>>()?,
            )
            .await?;
            out.count(kind, n as u64);
            *left = left.saturating_sub(n);
            if *left == 0 {
                return Ok(false);
            }
        }
    }

    /// The first `limit` items of a partition (keys and attributes).
    pub(super) async fn first_items(&self, pk: String, limit: usize) -> anyhow::Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut start = None;
        while out.len() < limit {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.clone()))
                .limit((limit - out.len()).min(1000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(err)?;
            out.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// Deletes items by key, 25 to a batch write and several batches at once, retrying what
    /// DynamoDB leaves unprocessed.
    pub(super) async fn delete_keys(&self, keys: Vec<Key>) -> anyhow::Result<()> {
        let batches: Vec<Vec<WriteRequest>> = keys
            .chunks(BATCH)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|(pk, sk)| {
                        Ok(WriteRequest::builder()
                            .delete_request(
                                DeleteRequest::builder()
                                    .key("pk", s(pk.clone()))
                                    .key("sk", s(sk.clone()))
                                    .build()?,
                            )
                            .build())
                    })
                    .collect::<anyhow::Result<_>>()
            })
            .collect::<anyhow::Result<_>>()?;
        stream::iter(batches)
            .map(|batch| self.write_batch(batch))
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    pub(super) async fn write_batch(&self, mut batch: Vec<WriteRequest>) -> anyhow::Result<()> {
        let mut attempt = 0u32;
        while !batch.is_empty() {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, batch)
                .send()
                .await
                .map_err(err)?;
            batch = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if batch.is_empty() {
                break;
            }
            attempt += 1;
            if attempt > 10 {
                anyhow::bail!("DynamoDB kept {} deletes unprocessed", batch.len());
            }
            let ms = (50u64 << attempt.min(5)).min(2_000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(())
    }
}
