//! Jobs.

use super::*;

#[async_trait]
impl Jobs for SqliteStore {
    async fn create_job(&self, job: &Job) -> StoreResult<()> {
        let (job, body) = (
            job.clone(),
            serde_json::to_string(job).map_err(|e| anyhow!(e))?,
        );
        self.write(move |c| {
            c.execute(
                "INSERT INTO jobs (workspace_id, id, finished, created_ms, version, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![job.workspace.as_str(), job.id, job_finished(&job), job.created_ms, job.version as i64, body],
            )?;
            Ok(())
        })
        .await
    }

    async fn job(&self, ws: &WorkspaceId, id: &str) -> StoreResult<Option<Job>> {
        let (ws, id) = (ws.clone(), id.to_owned());
        self.read(move |c| {
            let body: Option<String> = c
                .query_row(
                    "SELECT body FROM jobs WHERE workspace_id = ?1 AND id = ?2",
                    params![ws.as_str(), id],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(body.map(|b| serde_json::from_str(&b)).transpose()?)
        })
        .await
    }

    async fn update_job(&self, job: &mut Job) -> StoreResult<bool> {
        let mut next = job.clone();
        next.version += 1;
        let body = serde_json::to_string(&next).map_err(|e| anyhow!(e))?;
        let (n, expected) = (next.clone(), job.version);
        let saved = self
            .write(move |c| {
                let changed = c.execute(
                    "UPDATE jobs SET finished = ?3, version = ?4, body = ?5 WHERE workspace_id = ?1 AND id = ?2 AND version = ?6",
                    params![n.workspace.as_str(), n.id, job_finished(&n), n.version as i64, body, expected as i64],
                )?;
                Ok(changed == 1)
            })
            .await?;
        if saved {
            *job = next;
        }
        Ok(saved)
    }

    async fn unfinished_jobs(&self) -> StoreResult<Vec<Job>> {
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT body FROM jobs WHERE finished = 0 ORDER BY created_ms")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.map(|body| Ok(serde_json::from_str(&body?)?)).collect()
        })
        .await
    }
}
