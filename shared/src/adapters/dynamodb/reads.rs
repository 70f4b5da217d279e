//! The request log and jobs on DynamoDB.

use std::collections::HashMap;

use anyhow::Context as _;
use aws_sdk_dynamodb::types::AttributeValue as Av;

use super::accounts::Step;
use super::{DynamoStore, Item, TTL_ATTRIBUTE, err, event_pk, get_n, get_s, n, rollup_pk, s};
use crate::domain::event::Event;
use crate::domain::ids::WorkspaceId;
use crate::domain::rollup::View;
use crate::domain::time::hour_of;
use crate::ports::{Job, JobState, StoreResult};

/// Unfinished jobs, listed for a restarted worker: `JOBS` / `{created:013}#{ws}#{id}`.
pub(super) const QUEUE_PK: &str = "JOBS";

/// Jobs live in their own partition per workspace (`JOB#{ws}` / `{id}`), so a function that may
/// only create jobs can be limited to these keys (`dynamodb:LeadingKeys` in its policy), and
/// the stream that triggers the jobs Lambda can be filtered to them.
pub(super) fn job_pk(ws: &WorkspaceId) -> String {
    format!("JOB#{ws}")
}

pub(super) fn queue_sk(job: &Job) -> String {
    format!("{:013}#{}#{}", job.created_ms, job.workspace, job.id)
}

fn job_item(job: &Job) -> anyhow::Result<Item> {
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

fn finished(job: &Job) -> bool {
    matches!(job.state, JobState::Done | JobState::Failed)
}

impl DynamoStore {
    /// Newest first. Hours without events are skipped by reading the hours the workspace-wide
    /// rollup lists (one small item per busy hour) instead of querying every hour of the range.
    pub(super) async fn recent_events_impl(
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

    pub(super) async fn create_job_impl(&self, job: &Job) -> StoreResult<()> {
        self.put(job_item(job)?, Some("attribute_not_exists(pk)"))
            .await?;
        if !finished(job) {
            let queued = HashMap::from([
                ("pk".to_owned(), s(QUEUE_PK)),
                ("sk".to_owned(), s(queue_sk(job))),
            ]);
            self.put(queued, None).await?;
        }
        Ok(())
    }

    /// The job, its queue entry and (for a whole workspace) the workspace's mark, in one
    /// transaction conditional on the workspace being there and not already being deleted.
    pub(super) async fn begin_deletion_impl(
        &self,
        job: &Job,
        whole_workspace: bool,
    ) -> StoreResult<bool> {
        let (pk, sk) = (format!("WS#{}", job.workspace), "WS".to_owned());
        let cond = "attribute_exists(pk) AND attribute_not_exists(deleting)".to_owned();
        let mut steps = vec![
            if whole_workspace {
                Step::Update {
                    pk,
                    sk,
                    expr: "SET deleting = :job".into(),
                    cond: Some(cond),
                    values: vec![(":job", s(job.id.clone()))],
                }
            } else {
                Step::Check { pk, sk, cond }
            },
            Step::Put {
                item: job_item(job)?,
                cond: Some("attribute_not_exists(pk)".into()),
                values: vec![],
            },
        ];
        if !finished(job) {
            steps.push(Step::Put {
                item: HashMap::from([
                    ("pk".to_owned(), s(QUEUE_PK)),
                    ("sk".to_owned(), s(queue_sk(job))),
                ]),
                cond: None,
                values: vec![],
            });
        }
        Ok(self.transact(steps).await?.is_none())
    }

    pub(super) async fn job_impl(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<Job>> {
        let Some(item) = self.get(job_pk(ws), id).await? else {
            return Ok(None);
        };
        Ok(Some(
            serde_json::from_str(get_s(&item, "d")?).context("decoding a job")?,
        ))
    }

    pub(super) async fn update_job_impl(&self, job: &mut Job) -> StoreResult<bool> {
        let mut next = job.clone();
        next.version += 1;
        let saved = self
            .put_with(
                job_item(&next)?,
                Some("v = :v"),
                Some(HashMap::from([(":v".to_owned(), n(job.version))])),
            )
            .await?;
        if !saved {
            return Ok(false);
        }
        if finished(&next) {
            self.delete(QUEUE_PK.to_owned(), queue_sk(&next), None)
                .await?;
        }
        *job = next;
        Ok(true)
    }

    pub(super) async fn unfinished_jobs_impl(&self) -> StoreResult<Vec<Job>> {
        let mut jobs = Vec::new();
        for item in self.query_all(QUEUE_PK.to_owned(), None, None).await? {
            let sk = get_s(&item, "sk")?;
            let mut parts = sk.splitn(3, '#');
            let (_, ws, id) = (parts.next(), parts.next(), parts.next());
            let (Some(ws), Some(id)) = (ws.and_then(WorkspaceId::parse), id) else {
                continue;
            };
            if let Some(job) = self.job_impl(&ws, id).await? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }
}

/// The job a DynamoDB stream record's new image holds (the jobs Lambda is triggered by them).
pub fn job_from_image(image: &HashMap<String, Av>) -> anyhow::Result<Job> {
    let _: u64 = get_n(image, "v")?;
    serde_json::from_str(get_s(image, "d")?).context("decoding a job")
}
