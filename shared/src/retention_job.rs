//! The retention pass that follows a plan change: it re-applies the new plan's rules
//! (`domain::retention`) to everything a workspace already stores, a day of hours per page, so
//! an upgrade keeps the events still held for the longer window and a downgrade deletes what
//! falls outside the shorter one. Queries follow the new window at once; this makes the store
//! agree with them.
//!
//! It runs as a job (`Store::create_job`): on AWS the jobs Lambda picks it up from the table's
//! stream, locally `llmtrack serve` runs it in the background and resumes it after a restart.
//! Each page is saved as progress, and every page is idempotent, so a run stopped at any point
//! simply continues.

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::domain::ids::WorkspaceId;
use crate::domain::plan::Plan;
use crate::domain::time::hour_of;
use crate::ports::{DynClock, Job, JobState, Jobs, Retained, unfinished_jobs_of};

pub const JOB_KIND: &str = "retention";

/// Rollups are kept up to a month and a week past their window (see `domain::retention`), so the
/// pass reaches that far back too.
const REACH_MS: i64 = 62 * 86_400_000;
const HOURS_PER_PAGE: i64 = 24;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Spec {
    /// The plan whose rules the pass applies; if the workspace is on another one by the time
    /// a page runs, a newer pass took over and this one stops.
    plan: Plan,
    from_hour: i64,
    to_hour: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    next_hour: Option<i64>,
    #[serde(default)]
    retained: Retained,
}

crate::store_ports! {
    /// What a retention pass reads and writes.
    pub struct RetentionPorts {
        workspaces: Workspaces,
        jobs: Jobs,
        retention: Retention,
    }
}

/// Queues the pass for a workspace that just moved from plan `from` to plan `to`.
pub async fn start(
    jobs: &dyn Jobs,
    ws: &WorkspaceId,
    from: Plan,
    to: Plan,
    now_ms: i64,
) -> anyhow::Result<Job> {
    let reach = from.history_ms().max(to.history_ms()) + REACH_MS;
    let spec = Spec {
        plan: to,
        from_hour: hour_of(now_ms - reach),
        // Events may be stamped up to 5 minutes ahead.
        to_hour: hour_of(now_ms) + 2,
    };
    let job = Job::queued(
        "ret",
        ws,
        JOB_KIND,
        serde_json::to_value(&spec)?,
        serde_json::to_value(Progress::default())?,
        now_ms,
    );
    jobs.create_job(&job).await?;
    Ok(job)
}

/// Runs a pass to its end from wherever its progress says. Returns without doing anything if
/// another worker saved the job in between (it carries on).
pub async fn run(store: &RetentionPorts, clock: &DynClock, mut job: Job) -> anyhow::Result<()> {
    if matches!(job.state, JobState::Done | JobState::Failed) {
        return Ok(());
    }
    let spec: Spec = serde_json::from_value(job.spec.clone()).context("retention job spec")?;
    let mut progress: Progress = serde_json::from_value(job.progress.clone()).unwrap_or_default();
    let mut hour = progress.next_hour.unwrap_or(spec.from_hour);
    while hour < spec.to_hour {
        // A workspace being deleted keeps no plan: its deletion takes over.
        let current = store
            .workspaces
            .workspace(&job.workspace)
            .await?
            .filter(|w| w.deleting.is_none())
            .map(|w| w.plan);
        if current != Some(spec.plan) {
            job.result = Some(serde_json::json!({ "superseded": true }));
            break;
        }
        let end = (hour + HOURS_PER_PAGE).min(spec.to_hour);
        let page = store
            .retention
            .apply_retention(
                &job.workspace,
                hour,
                end,
                spec.plan.history_ms(),
                clock.now_ms(),
            )
            .await?;
        progress.retained += page;
        progress.next_hour = Some(end);
        hour = end;
        job.state = JobState::Running;
        job.progress = serde_json::to_value(&progress)?;
        job.updated_ms = clock.now_ms();
        if !store.jobs.update_job(&mut job).await? {
            return Ok(());
        }
    }
    job.state = JobState::Done;
    if job.result.is_none() {
        job.result = Some(serde_json::to_value(progress.retained)?);
    }
    job.updated_ms = clock.now_ms();
    store.jobs.update_job(&mut job).await?;
    tracing::info!(workspace = %job.workspace, job = %job.id, "retention pass finished");
    Ok(())
}

/// Runs the passes that made no progress for `idle_ms`: on AWS, one whose jobs Lambda ran out
/// of time and retries (the billing sweep calls this every 15 minutes).
pub async fn resume_stalled(
    store: &RetentionPorts,
    clock: &DynClock,
    idle_ms: i64,
) -> anyhow::Result<usize> {
    let now = clock.now_ms();
    run_unfinished(store, clock, |j| now - j.updated_ms >= idle_ms).await
}

/// Runs every unfinished pass (a restarted local server).
pub async fn resume(store: &RetentionPorts, clock: &DynClock) -> anyhow::Result<usize> {
    run_unfinished(store, clock, |_| true).await
}

async fn run_unfinished(
    store: &RetentionPorts,
    clock: &DynClock,
    pick: impl Fn(&Job) -> bool,
) -> anyhow::Result<usize> {
    let jobs: Vec<Job> = unfinished_jobs_of(store.jobs.as_ref(), JOB_KIND)
        .await?
        .into_iter()
        .filter(|j| pick(j))
        .collect();
    let n = jobs.len();
    for job in jobs {
        run(store, clock, job).await?;
    }
    Ok(n)
}
