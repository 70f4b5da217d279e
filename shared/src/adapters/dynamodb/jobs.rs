//! Jobs on DynamoDB: `JOB#{ws}` / `{id}`, and the queue of unfinished ones.

use super::*;
use crate::domain::ids::WorkspaceId;
use crate::ports::Job;
use crate::ports::StoreResult;
use anyhow::Context as _;
use std::collections::HashMap;

#[async_trait]
impl Jobs for DynamoStore {
    async fn create_job(&self, job: &Job) -> StoreResult<()> {
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

    async fn job(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<Job>> {
        let Some(item) = self.get(job_pk(ws), id).await? else {
            return Ok(None);
        };
        Ok(Some(
            serde_json::from_str(get_s(&item, "d")?).context("decoding a job")?,
        ))
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
            self.delete(QUEUE_PK.to_owned(), queue_sk(&next), None)
                .await?;
        }
        *job = next;
        Ok(true)
    }

    async fn unfinished_jobs(&self) -> StoreResult<Vec<Job>> {
        let mut jobs = Vec::new();
        for item in self.query_all(QUEUE_PK.to_owned(), None, None).await? {
            let sk = get_s(&item, "sk")?;
            let mut parts = sk.splitn(3, '#');
            let (_, ws, id) = (parts.next(), parts.next(), parts.next());
            let (Some(ws), Some(id)) = (ws.and_then(WorkspaceId::parse), id) else {
                continue;
            };
            if let Some(job) = self.job(&ws, id).await? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }
}
