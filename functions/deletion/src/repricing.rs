//! Repricing: admins ask what today's prices (the bundled table and the workspace's own) would
//! change in a range of stored events, and apply it. Both are jobs: a dry run only counts, an
//! applied one rewrites the events' costs and their hours' rollups. They share the deletion
//! worker because both rewrite stored history hour by hour, with the same access.
//!
//! A run walks the range a page of hours at a time. For each page it first counts what
//! repricing changes (from the events, as `Event::repriced` prices them) and saves that count
//! with the hours that change; then it reprices those hours (`Store::reprice_events_in_hour`)
//! and adds the page's count to the job's. A run stopped in between is carried on from the saved
//! page: repricing an hour again changes nothing twice, and the count was saved before, so it
//! is neither lost nor doubled. The prices are the workspace's as the request found them, saved
//! with the job: what the dry run counted is what an apply with the same prices would do.

use std::time::Instant;

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use llmtrack_shared::auth::Member;
use llmtrack_shared::domain::access::Action;
use llmtrack_shared::domain::audit::AuditEntry;
use llmtrack_shared::domain::deletion;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::domain::pricing::custom::WorkspacePrices;
use llmtrack_shared::domain::repricing::{JOB_KIND, Range, RepricingRequest, Summary, Tally};
use llmtrack_shared::domain::rollup::{Dimension, View};
use llmtrack_shared::domain::time::{HOUR_MS, rfc3339};
use llmtrack_shared::extract::Json;
use llmtrack_shared::ports::{Job, JobState, Workspace, unfinished_jobs_of};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::DeletionState;
use crate::job::{Deps, Ran, save, stalled};

/// Hours looked at per page: a day.
const HOURS_PER_PAGE: i64 = 24;
/// Events read per call while counting.
const READ_PAGE: usize = 5_000;

/// What the job was asked to do; saved with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub range: Range,
    pub dry_run: bool,
    /// A user id, or `cli`.
    pub requested_by: String,
    /// The workspace's prices when it was asked.
    pub prices: WorkspacePrices,
}

/// Where a run picks up, and what it has counted so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    /// The next hour to look at.
    #[serde(default)]
    pub next_hour: Option<i64>,
    /// The page being repriced: its end, the hours that change, and its count.
    #[serde(default)]
    pub page: Option<Page>,
    pub summary: Summary,
    /// Events rewritten so far (an applied repricing).
    #[serde(default)]
    pub rewritten: u64,
    #[serde(default)]
    pub started_ms: i64,
    #[serde(default)]
    pub finished_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    pub end: i64,
    pub hours: Vec<i64>,
    pub summary: Summary,
}

pub fn spec_of(job: &Job) -> anyhow::Result<Spec> {
    serde_json::from_value(job.spec.clone()).context("repricing job spec")
}

pub fn progress_of(job: &Job) -> Progress {
    serde_json::from_value(job.progress.clone()).unwrap_or_default()
}

/// Runs a repricing job from its saved progress until it finishes or `deadline` passes.
pub async fn run(deps: &Deps, mut job: Job, deadline: Option<Instant>) -> anyhow::Result<Ran> {
    if matches!(job.state, JobState::Done | JobState::Failed) {
        return Ok(Ran::Finished);
    }
    let spec = spec_of(&job)?;
    let mut progress = progress_of(&job);
    if progress.started_ms == 0 {
        progress.started_ms = deps.clock.now_ms();
    }
    let out_of_time = || deadline.is_some_and(|d| Instant::now() >= d);
    let ws = job.workspace.clone();
    let (first, end) = spec.range.hours();
    if progress.next_hour.is_none() {
        // A crashed batch is finished first, so its hours are counted.
        deps.store.erasure.finish_writes(&ws).await?;
    }
    let table = PriceTable::bundled();
    let mut hour = progress.next_hour.unwrap_or(first);
    while hour < end {
        if out_of_time() {
            return save(deps, &mut job, &progress).await.map(|_| Ran::Paused);
        }
        let page_end = (hour + HOURS_PER_PAGE).min(end);
        if progress.page.as_ref().is_none_or(|p| p.end != page_end) {
            let Some(page) = count_page(deps, &ws, &spec, hour, page_end, &out_of_time).await?
            else {
                return save(deps, &mut job, &progress).await.map(|_| Ran::Paused);
            };
            progress.page = Some(page);
            if !spec.dry_run && !save(deps, &mut job, &progress).await? {
                return Ok(Ran::Overtaken);
            }
        }
        let page = progress.page.take().context("a counted page")?;
        if !spec.dry_run {
            for &h in &page.hours {
                progress.rewritten += deps
                    .store
                    .repricing
                    .reprice_events_in_hour(
                        &ws,
                        h,
                        spec.range.from_ms,
                        spec.range.to_ms,
                        table,
                        &spec.prices,
                    )
                    .await?;
            }
        }
        progress.summary.merge(&page.summary);
        hour = page_end;
        progress.next_hour = Some(hour);
        if !save(deps, &mut job, &progress).await? {
            return Ok(Ran::Overtaken);
        }
    }
    progress.finished_ms = Some(deps.clock.now_ms());
    job.state = JobState::Done;
    job.result = Some(serde_json::to_value(&progress.summary)?);
    if !save(deps, &mut job, &progress).await? {
        return Ok(Ran::Overtaken);
    }
    tracing::info!(workspace = %ws, job = %job.id, dry_run = spec.dry_run,
        rewritten = progress.rewritten, "repricing finished");
    Ok(Ran::Finished)
}

/// Counts what repricing changes in the hours `[from_hour, to_hour)` that hold events, and
/// which of them change. None when time ran out before it finished.
async fn count_page(
    deps: &Deps,
    ws: &WorkspaceId,
    spec: &Spec,
    from_hour: i64,
    to_hour: i64,
    out_of_time: &impl Fn() -> bool,
) -> anyhow::Result<Option<Page>> {
    let busy = deps
        .store
        .events
        .rollups(ws, &View::of(Dimension::Total), from_hour, to_hour)
        .await?;
    let (table, rules) = (PriceTable::bundled(), spec.prices.ready());
    let mut page = Page {
        end: to_hour,
        hours: Vec::new(),
        summary: Summary::default(),
    };
    for (key, _) in busy {
        if out_of_time() {
            return Ok(None);
        }
        let lo = spec.range.from_ms.max(key.hour * HOUR_MS);
        let hi = spec.range.to_ms.min((key.hour + 1) * HOUR_MS);
        let mut after = None;
        let mut changes = false;
        // `lo < hi` always: the range is whole hours and `busy` holds only its hours.
        loop {
            let events = deps
                .store
                .events
                .events(ws, lo, hi, after, READ_PAGE)
                .await?;
            let Some(last) = events.last() else { break };
            after = Some((last.ts_ms, last.id.clone()));
            for e in &events {
                let now = e.repriced(table, &rules);
                changes |= now.is_some();
                page.summary.count(e, now.as_ref());
            }
            if events.len() < READ_PAGE {
                break;
            }
        }
        if changes {
            page.hours.push(key.hour);
        }
    }
    Ok(Some(page))
}

/// Runs every unfinished repricing job that made no progress for `idle_ms` (0: all of them),
/// until `deadline`. Returns how many it ran.
pub async fn resume(deps: &Deps, idle_ms: i64, deadline: Option<Instant>) -> anyhow::Result<usize> {
    let jobs = stalled(deps, JOB_KIND, idle_ms).await?;
    let n = jobs.len();
    for job in jobs {
        run(deps, job, deadline).await?;
    }
    Ok(n)
}

/// One model's line of a repricing, in dollars.
#[derive(Serialize, ToSchema)]
pub struct ModelChange {
    /// The canonical model, as priced after the repricing.
    pub model: String,
    /// Events in the range.
    pub events: u64,
    /// Events whose cost changes.
    pub changed: u64,
    /// Events whose cost the client or the provider sent: left as they are.
    pub kept: u64,
    /// Events without a cost, before and after.
    pub unpriced_before: u64,
    pub unpriced_after: u64,
    pub cost_before_usd: f64,
    pub cost_after_usd: f64,
    /// `cost_after_usd - cost_before_usd`.
    pub difference_usd: f64,
}

impl ModelChange {
    fn of(model: &str, t: &Tally) -> ModelChange {
        let usd = |pico: i64| pico as f64 / 1e12;
        ModelChange {
            model: model.to_owned(),
            events: t.events,
            changed: t.changed,
            kept: t.kept,
            unpriced_before: t.unpriced_before,
            unpriced_after: t.unpriced_after,
            cost_before_usd: usd(t.cost_before_pico),
            cost_after_usd: usd(t.cost_after_pico),
            difference_usd: usd(t.cost_after_pico - t.cost_before_pico),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct RepricingView {
    pub id: String,
    pub workspace: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: JobState,
    /// A dry run counts; it changes nothing.
    pub dry_run: bool,
    /// The range repriced: whole hours, `to` exclusive.
    pub from: String,
    pub to: String,
    /// Hours looked at so far, of how many.
    pub hours_done: i64,
    pub hours_total: i64,
    /// What changes, by canonical model, most cost first (so far, until `state` is `done`).
    pub models: Vec<ModelChange>,
    /// All models together (`model` is `*`).
    pub total: ModelChange,
    /// Events rewritten although their cost stays: the price that priced them is now named
    /// differently (a newer check date of the same prices, another rule with the same rates).
    pub relabelled: u64,
    /// Events rewritten (applied repricings only).
    pub rewritten: u64,
    /// How many of the workspace's price rules it priced with.
    pub price_rules: usize,
    pub created_at: String,
    pub finished_at: Option<String>,
}

pub fn view(job: &Job) -> anyhow::Result<RepricingView> {
    let spec = spec_of(job)?;
    let progress = progress_of(job);
    let (first, end) = spec.range.hours();
    let next = progress.next_hour.unwrap_or(first).clamp(first, end);
    let mut models: Vec<ModelChange> = progress
        .summary
        .models
        .iter()
        .map(|(m, t)| ModelChange::of(m, t))
        .collect();
    models.sort_by(|a, b| {
        b.cost_after_usd
            .max(b.cost_before_usd)
            .total_cmp(&a.cost_after_usd.max(a.cost_before_usd))
            .then_with(|| a.model.cmp(&b.model))
    });
    Ok(RepricingView {
        id: job.id.clone(),
        workspace: job.workspace.to_string(),
        state: job.state,
        dry_run: spec.dry_run,
        from: rfc3339(spec.range.from_ms),
        to: rfc3339(spec.range.to_ms),
        hours_done: next - first,
        hours_total: end - first,
        models,
        total: ModelChange::of("*", &progress.summary.total()),
        relabelled: progress.summary.relabelled,
        rewritten: progress.rewritten,
        price_rules: spec.prices.rules.len(),
        created_at: rfc3339(job.created_ms),
        finished_at: progress.finished_ms.map(rfc3339),
    })
}

/// Reprice a range of the workspace's events with today's prices: the bundled table and the
/// workspace's own. `dry_run` (the default) counts what would change, by model, before and
/// after; `dry_run: false` rewrites the events' costs and the affected rollups. Costs sent by
/// the client or the provider stay. Admins only; one applied repricing at a time.
#[utoipa::path(post, path = "/v1/workspaces/{id}/repricing", tag = "pricing",
    params(("id" = String, Path, description = "The workspace")), request_body = RepricingRequest,
    responses((status = 202, body = RepricingView, description = "Accepted: the job runs in the background"),
        (status = 400, description = "A range that cannot be repriced (`invalid_repricing`)"),
        (status = 401, description = "No session"), (status = 403, description = "Not an admin"),
        (status = 404, description = "No such workspace among yours"),
        (status = 409, description = "Applying while a repricing or a deletion of the workspace runs")))]
pub(crate) async fn create_repricing(
    State(s): State<DeletionState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<RepricingRequest>,
) -> Result<Response, ApiError> {
    let Member {
        who, workspace: ws, ..
    } = s.gate.member(&headers, &id, Action::ManageSettings).await?;
    let requester = Requester {
        id: who.user.id.as_str(),
        email: Some(who.user.email.as_str()),
    };
    let job = start(&s.deps, &ws, &req, requester)
        .await
        .map_err(|e| match e {
            StartError::Invalid(message) => {
                ApiError::bad_request(ErrorCode::InvalidRepricing, message)
            }
            StartError::Busy(message) => ApiError::Conflict(message),
            StartError::Unexpected(e) => ApiError::Unexpected(e),
        })?;
    let body = view(&job)?;
    s.spawn(job);
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// Who asked for a repricing: a member, or the operator at the command line (`cli`).
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub id: &'a str,
    pub email: Option<&'a str>,
}

/// Why a repricing was not started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The range cannot be repriced: `field: why`.
    #[error("{0}")]
    Invalid(String),
    /// An apply while another rewrite of the workspace's history runs.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<llmtrack_shared::ports::StoreError> for StartError {
    fn from(e: llmtrack_shared::ports::StoreError) -> Self {
        StartError::Unexpected(e.into())
    }
}

/// Checks a repricing request and queues its job (audited when it applies), for the API and
/// the command line alike. The caller runs the job.
pub async fn start(
    deps: &Deps,
    ws: &Workspace,
    req: &RepricingRequest,
    by: Requester<'_>,
) -> Result<Job, StartError> {
    let now = deps.clock.now_ms();
    let range = req
        .check(now, ws.plan.history_ms())
        .map_err(|e| StartError::Invalid(format!("{}: {}", e.field, e.message)))?;
    // Two rewrites of the same hours at once would each rebuild its rollups from events the
    // other is changing. A dry run writes nothing: it may run beside anything.
    let kinds: &[&str] = if req.dry_run {
        &[]
    } else {
        &[JOB_KIND, deletion::JOB_KIND]
    };
    for &kind in kinds {
        if let Some(running) = unfinished_jobs_of(deps.store.jobs.as_ref(), kind)
            .await?
            .into_iter()
            .find(|j| {
                j.workspace == ws.id && (kind != JOB_KIND || spec_of(j).is_ok_and(|s| !s.dry_run))
            })
        {
            return Err(StartError::Busy(format!(
                "{kind} `{}` of this workspace is still running; wait for it to finish",
                running.id
            )));
        }
    }
    let spec = Spec {
        range,
        dry_run: req.dry_run,
        requested_by: by.id.to_owned(),
        prices: ws.prices.clone(),
    };
    let job = Job::queued(
        "rep",
        &ws.id,
        JOB_KIND,
        serde_json::to_value(&spec).map_err(anyhow::Error::from)?,
        serde_json::to_value(Progress::default()).map_err(anyhow::Error::from)?,
        now,
    );
    if !spec.dry_run {
        let entry = AuditEntry::new(
            &ws.id,
            now,
            by.id,
            by.email,
            "data.reprice",
            Some(job.id.clone()),
            None,
        );
        deps.store.audit_log.append_audit(&entry).await?;
    }
    deps.store.jobs.create_job(&job).await?;
    tracing::info!(workspace = %ws.id, job = %job.id, dry_run = spec.dry_run, "repricing accepted");
    Ok(job)
}

/// A repricing job: its state, and what it changes (or would), by model, so far.
#[utoipa::path(get, path = "/v1/workspaces/{id}/repricing/{job}", tag = "pricing",
    params(("id" = String, Path, description = "The workspace"), ("job" = String, Path, description = "The repricing job")),
    responses((status = 200, body = RepricingView),
        (status = 401, description = "No session"),
        (status = 404, description = "No such repricing among yours")))]
pub(crate) async fn get_repricing(
    State(s): State<DeletionState>,
    headers: HeaderMap,
    Path((id, job_id)): Path<(String, String)>,
) -> Result<axum::Json<RepricingView>, ApiError> {
    let Member { workspace: ws, .. } = s.gate.member(&headers, &id, Action::Read).await?;
    let job = s
        .deps
        .store
        .jobs
        .job(&ws.id, &job_id)
        .await?
        .filter(|j| j.kind == JOB_KIND)
        .ok_or_else(|| ApiError::NotFound(format!("repricing `{job_id}` not found")))?;
    Ok(axum::Json(view(&job)?))
}
