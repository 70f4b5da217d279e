//! The request log and jobs on DynamoDB.

use super::*;
use crate::domain::event::Event;
use crate::domain::ids::WorkspaceId;
use crate::domain::rollup::Rollup;
use crate::domain::rollup::RollupKey;
use crate::domain::rollup::View;
use crate::domain::time::hour_of;
use crate::ports::Job;
use crate::ports::JobState;
use crate::ports::StoreResult;
use anyhow::anyhow;
use std::collections::HashMap;

/// Unfinished jobs, listed for a restarted worker: `JOBS` / `{created:013}#{ws}#{id}`.
pub(super) const QUEUE_PK: &str = "JOBS";

/// Jobs live in their own partition per workspace (`JOB#{ws}` / `{id}`), so a function that may
/// only create jobs can be limited to these keys (`dynamodb:LeadingKeys` in its policy), and
/// the stream that triggers the jobs Lambda can be filtered to them.
pub(super) const JOB_PK_PREFIX: &str = "JOB#";

pub(super) fn job_pk(ws: &WorkspaceId) -> String {
    format!("{JOB_PK_PREFIX}{ws}")
}

pub(super) fn queue_sk(job: &Job) -> String {
    format!("{:013}#{}#{}", job.created_ms, job.workspace, job.id)
}

pub(super) fn job_item(job: &Job) -> anyhow::Result<Item> {
    Ok(HashMap::from([
        ("pk".to_owned(), s(job_pk(&job.workspace))),
        ("sk".to_owned(), s(job.id.clone())),
        ("kind".to_owned(), s(job.kind.clone())),
        ("v".to_owned(), n(job.version)),
        ("d".to_owned(), s(serde_json::to_string(job)?)),
    ])
    .into_iter()
    .chain(
        job.expires_ms
            .map(|at| (TTL_ATTRIBUTE.to_owned(), n(at.div_euclid(1000)))),
    )
    .collect())
}

pub(super) fn finished(job: &Job) -> bool {
    matches!(job.state, JobState::Done | JobState::Failed)
}

impl DynamoStore {}

#[async_trait]
impl Events for DynamoStore {
    async fn usage(&self, ws: &WorkspaceId, month: &str) -> StoreResult<u64> {
        let item = self
            .get(format!("WS#{ws}"), &format!("USAGE#{month}"))
            .await?;
        Ok(item
            .map(|i| get_n::<i64>(&i, "n"))
            .transpose()?
            .unwrap_or(0)
            .max(0) as u64)
    }

    async fn rollups(
        &self,
        ws: &WorkspaceId,
        view: &View,
        from_hour: i64,
        to_hour: i64,
    ) -> StoreResult<Vec<(RollupKey, Rollup)>> {
        // `{to:010}` sorts before every `{to:010}#value`, so hour `to` is excluded.
        let items = self
            .query_all(
                rollup_pk(ws, view),
                Some((format!("{from_hour:010}"), format!("{to_hour:010}"))),
                None,
            )
            .await?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let sk = get_s(&item, "sk")?;
            let (hour, value) = sk
                .split_once('#')
                .ok_or_else(|| anyhow!("bad rollup key {sk}"))?;
            let (rollup, pending) = rollups::rollup_data(&item)?;
            let key = RollupKey {
                hour: hour.parse().context("rollup hour")?,
                view: view.clone(),
                value: value.to_owned(),
            };
            out.push((key, rollup, pending));
        }
        if view.is_core() {
            return Ok(out.into_iter().map(|(k, r, _)| (k, r)).collect());
        }
        Ok(self
            .merge_pending(ws, view, from_hour, to_hour, out)
            .await?)
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
        let (lo, hi) = (format!("{start:013}"), format!("{to_ms:013}"));
        for hour in hour_of(start)..=hour_of(to_ms - 1) {
            let mut exclusive_start = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                    .expression_attribute_values(":pk", s(event_pk(ws, hour)))
                    .expression_attribute_values(":lo", s(lo.clone()))
                    .expression_attribute_values(":hi", s(hi.clone()))
                    .limit((limit - out.len()).clamp(1, 1000) as i32 + 1)
                    .set_exclusive_start_key(exclusive_start.take())
                    .send()
                    .await
                    .map_err(err)?;
                for item in page.items() {
                    let e: Event = serde_json::from_str(get_s(item, "d")?)
                        .context("decoding a stored event")?;
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
        let (lo, hi) = (format!("{from_ms:013}"), format!("{end:013}"));
        let mut hours = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(
                ":pk",
                s(rollup_pk(
                    ws,
                    &View::of(crate::domain::rollup::Dimension::Total),
                )),
            )
            .expression_attribute_values(":lo", s(format!("{:010}", hour_of(from_ms))))
            .expression_attribute_values(":hi", s(format!("{:010}~", hour_of(end - 1))))
            .projection_expression("sk")
            .scan_index_forward(false)
            .into_paginator()
            .items()
            .send();
        while let Some(item) = hours.next().await {
            let item = item.map_err(err)?;
            let sk = get_s(&item, "sk")?;
            let hour: i64 = sk.trim_end_matches('#').parse().context("rollup hour")?;
            let mut pages = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", s(event_pk(ws, hour)))
                .expression_attribute_values(":lo", s(lo.clone()))
                .expression_attribute_values(":hi", s(hi.clone()))
                .scan_index_forward(false)
                .limit((limit - out.len()).clamp(1, 1000) as i32 + 1)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                for item in page.map_err(err)?.items() {
                    let e: Event = serde_json::from_str(get_s(item, "d")?)
                        .context("decoding a stored event")?;
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
