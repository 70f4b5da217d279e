//! Jobs on DynamoDB: `JOB#{ws}` / `{id}`, and the queue of unfinished ones.

use super::items::{self, Bare, JobItem};
use super::*;
use crate::domain::ids::WorkspaceId;
use crate::ports::Job;
use crate::ports::JobState;
use crate::ports::StoreResult;
use std::collections::HashMap;

#[async_trait]
impl Jobs for DynamoStore {
    async fn create_job(&self, job: &Job) -> StoreResult<()> {
        self.put(job_item(job)?, Some("attribute_not_exists(pk)"))
            .await?;
        if !finished(job) {
            self.put(queue_item(job)?, None).await?;
        }
        Ok(())
    }

    async fn job(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<Job>> {
        let Some(item) = self.get(schema::job(ws, id)).await? else {
            return Ok(None);
        };
        Ok(Some(items::read::<JobItem>(item)?.d.into_owned()))
    }

    async fn update_job(&self, job: &mut Job) -> StoreResult<bool> {
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
            self.delete(schema::queued_job(&next), None).await?;
        }
        *job = next;
        Ok(true)
    }

    async fn unfinished_jobs(&self) -> StoreResult<Vec<Job>> {
        let mut jobs = Vec::new();
        for item in self
            .query_all(schema::QUEUE_PK.to_owned(), None, None)
            .await?
        {
            let (_, sk) = items::key_of(&item)?;
            let Some((ws, id)) = schema::parse_queued_job(&sk) else {
                continue;
            };
            if let Some(job) = self.job(&ws, id).await? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }
}

pub(super) fn job_item(job: &Job) -> anyhow::Result<Item> {
    items::item(schema::job(&job.workspace, &job.id), &JobItem::new(job))
}

/// A job's entry in the queue of unfinished ones.
pub(super) fn queue_item(job: &Job) -> anyhow::Result<Item> {
    items::item(schema::queued_job(job), &Bare {})
}

pub(super) fn finished(job: &Job) -> bool {
    matches!(job.state, JobState::Done | JobState::Failed)
}
