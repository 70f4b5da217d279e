//! The deletion worker Lambda: runs deletion and repricing jobs (both rewrite stored history).
//! The table's stream invokes it when such a job is saved (the template filters the stream to
//! them); it works until a minute before its timeout and saves its progress, and that save is
//! itself a stream record that invokes it again, so a long job carries on invocation after
//! invocation. A schedule every 15 minutes
//! carries on any job that made no progress for that long (a run that failed past its retries).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lambda_http::lambda_runtime::{self, LambdaEvent, service_fn};
use llmtrack_deletion::{lambda_deps, resume_jobs, run_job, with_stripe};
use llmtrack_shared::adapters::dynamodb::stream;
use llmtrack_shared::domain::{deletion, repricing};
use llmtrack_shared::ports::Job;
use serde_json::Value;

/// Time left for the last page and the save after it.
const MARGIN: Duration = Duration::from_secs(60);
/// A job without progress for this long is carried on by the schedule.
const STALLED_MS: i64 = 15 * 60_000;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    llmtrack_shared::telemetry::init();
    let store = llmtrack_shared::adapters::dynamodb::DynamoStore::for_lambda().await?;
    let deps = with_stripe(lambda_deps(&store).await?)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let deps = deps.clone();
        async move {
            let left = Duration::from_millis(
                (event.context.deadline as i64 - chrono_now_ms()).max(0) as u64,
            );
            let deadline = Instant::now() + left.saturating_sub(MARGIN);
            // The schedule's event has no records; the stream's has nothing else.
            if event.payload.get("Records").is_none() {
                let n = resume_jobs(&deps, STALLED_MS, Some(deadline)).await?;
                tracing::info!(resumed = n, "deletion and repricing sweep done");
                return Ok::<(), lambda_runtime::Error>(());
            }
            let records: stream::Event = serde_json::from_value(event.payload)?;
            // One run per job, from its latest saved state, however many saves the batch holds.
            let jobs: BTreeMap<(String, String), Job> = stream::jobs_in(&records)?
                .into_iter()
                .filter(|j| j.kind == deletion::JOB_KIND || j.kind == repricing::JOB_KIND)
                .map(|j| ((j.workspace.to_string(), j.id.clone()), j))
                .collect();
            for job in jobs.into_values() {
                let Some(current) = deps.store.jobs.job(&job.workspace, &job.id).await? else {
                    continue;
                };
                run_job(&deps, current, Some(deadline)).await?;
            }
            Ok(())
        }
    }))
    .await
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
