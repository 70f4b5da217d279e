//! The request log on DynamoDB, and the decoding of jobs from stream records.

use super::items::{self, EventBody, UsageItem};
use super::*;
use crate::domain::event::Event;
use crate::domain::ids::WorkspaceId;
use crate::domain::rollup::Rollup;
use crate::domain::rollup::RollupKey;
use crate::domain::rollup::View;
use crate::domain::time::hour_of;
use crate::ports::StoreResult;

#[async_trait]
impl Events for DynamoStore {
    async fn usage(&self, ws: &WorkspaceId, month: &str) -> StoreResult<u64> {
        let item = self.get(schema::usage(ws, month)).await?;
        Ok(item
            .map(items::read::<UsageItem>)
            .transpose()?
            .map_or(0, |u| u.n)
            .max(0) as u64)
    }

    async fn rollups(
        &self,
        ws: &WorkspaceId,
        view: &View,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<(RollupKey, Rollup)>> {
        Ok(self
            .read_rollups(ws, view, from_hour, to_hour, |_| true)
            .await?)
    }

    /// The same query as [`Events::rollups`], kept to one value on this side. A rollup item
    /// holds its value only in its sort key (`{hour:010}#{value}`), which a FilterExpression
    /// cannot name, and a filter would not lower the cost anyway (DynamoDB charges for the items
    /// it reads before filtering): this reads every value of the view for the hours asked (a
    /// month of a workspace with 500 active end-users: 372,000 `user` items, one read unit per
    /// 4 KB of them), the cost of `rollups`, and saves only the decoding and merging of the other
    /// values. Reading one item per hour instead (`BatchGetItem` of `{hour}#{value}`: one unit
    /// per hour whether the item exists or not, 744 for a month) would be cheaper for the
    /// `user` view and dearer for views of a few values; the item layout is left as it is, so
    /// the write budget per event stays as measured.
    async fn value_rollups(
        &self,
        ws: &WorkspaceId,
        view: &View,
        value: &str,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<(RollupKey, Rollup)>> {
        let mut merged = self
            .read_rollups(ws, view, from_hour, to_hour, |v| v == value)
            .await?;
        // Pending deltas bring the view's other values.
        merged.retain(|(k, _)| k.value == value);
        Ok(merged)
    }

    async fn events(
        &self,
        ws: &WorkspaceId,
        from_ms: i64,
        to_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let mut out = Vec::new();
        if from_ms >= to_ms {
            return Ok(out);
        }
        let start = after.as_ref().map_or(from_ms, |(ts, _)| (*ts).max(from_ms));
        // Each hour is one partition sorted by `{ts}#{id}`: read only the range asked for, a page
        // at a time, and stop as soon as the page of results is full.
        // `{to}` sorts before every `{to}#id`, so the range ends just before `to`.
        let (lo, hi) = (schema::event_time(start), schema::event_time(to_ms));
        for hour in hour_of(start)..=hour_of(to_ms - 1) {
            let mut exclusive_start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                    .expression_attribute_values(":pk", s(schema::event_pk(ws, hour)))
                    .expression_attribute_values(":lo", s(lo.clone()))
                    .expression_attribute_values(":hi", s(hi.clone()))
                    .limit((limit - out.len()).clamp(1, 1000) as i32 + 1)
                    .set_exclusive_start_key(exclusive_start.take())
                    .send()
                    .await
                    .map_err(err)?;
                for item in page.items.unwrap_or_default() {
                    let e = items::read::<EventBody>(item)?.d;
                    let past_cursor = after
                        .as_ref()
                        .is_none_or(|(ts, id)| (e.ts_ms, &e.id) > (*ts, id));
                    if past_cursor {
                        out.push(e);
                        if out.len() == limit {
                            return Ok(out);
                        }
                    }
                }
                match page.last_evaluated_key {
                    Some(k) => exclusive_start = Some(k),
                    None => break,
                }
            }
        }
        Ok(out)
    }

    /// Newest first. Hours without events are skipped by reading the hours the workspace-wide
    /// rollup lists (one small item per busy hour) instead of querying every hour of the range.
    async fn recent_events(
        &self,
        ws: &WorkspaceId,
        from_ms: i64,
        to_ms: i64,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let mut out = Vec::new();
        let end = before
            .as_ref()
            .map_or(to_ms, |(ts, _)| (*ts + 1).min(to_ms));
        if from_ms >= end || limit == 0 {
            return Ok(out);
        }
        let (lo, hi) = (schema::event_time(from_ms), schema::event_time(end));
        let (first_hour, last_hour) =
            schema::rollup_hours_through(hour_of(from_ms), hour_of(end - 1));
        let mut hours = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(
                ":pk",
                s(schema::rollup_pk(
                    ws,
                    &View::of(crate::domain::rollup::Dimension::Total),
                )),
            )
            .expression_attribute_values(":lo", s(first_hour))
            .expression_attribute_values(":hi", s(last_hour))
            .projection_expression("sk")
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = hours.next().await {
            let sk = items::sort_key_of(&item.map_err(err)?)?;
            let (hour, _) = schema::parse_rollup_sk(&sk)?;
            let mut pages = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", s(schema::event_pk(ws, hour)))
                .expression_attribute_values(":lo", s(lo.clone()))
                .expression_attribute_values(":hi", s(hi.clone()))
                .scan_index_forward(false)
                .limit((limit - out.len()).clamp(1, 1000) as i32 + 1)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for item in page.map_err(err)?.items.unwrap_or_default() {
                    let e = items::read::<EventBody>(item)?.d;
                    let past_cursor = before
                        .as_ref()
                        .is_none_or(|(ts, id)| (e.ts_ms, &e.id) < (*ts, id));
                    if past_cursor && e.ts_ms < to_ms {
                        out.push(e);
                        if out.len() == limit {
                            return Ok(out);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

impl DynamoStore {
    /// A view's rollup items for the hours, decoded only for the values `keep` accepts, with the
    /// deltas not yet folded merged in (deferred views).
    async fn read_rollups(
        &self,
        ws: &WorkspaceId,
        view: &View,
        from_hour: i64,
        to_hour: i64,
        keep: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Vec<(RollupKey, Rollup)>> {
        // `{to:010}` sorts before every `{to:010}#value`, so hour `to` is excluded.
        let stored = self
            .query_all(
                schema::rollup_pk(ws, view),
                Some(schema::rollup_hours(from_hour, to_hour)),
                None,
            )
            .await?;
        let mut out = Vec::with_capacity(stored.len());
        for item in stored {
            let sk = items::sort_key_of(&item)?;
            let (hour, value) = schema::parse_rollup_sk(&sk)?;
            if !keep(value) {
                continue;
            }
            let key = RollupKey {
                hour,
                view: view.clone(),
                value: value.to_owned(),
            };
            let stored = StoredRollup::read(item)?;
            out.push((key, stored.rollup, stored.pending));
        }
        if view.is_core() {
            return Ok(out.into_iter().map(|(k, r, _)| (k, r)).collect());
        }
        self.merge_pending(ws, view, from_hour, to_hour, out).await
    }
}
