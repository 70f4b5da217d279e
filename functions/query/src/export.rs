//! Exports of events and breakdowns as CSV or JSON Lines.
//!
//! A small export is answered in the response. One larger than `INLINE_LIMIT_BYTES` (a Lambda
//! response carries at most 6 MB) becomes a job: it is written through the archive port and
//! `GET /v1/exports/{id}` gives a link that expires. The runner (`run`) is the same code in
//! `llmtrack serve` (a background task, resumed at start) and in the jobs Lambda (triggered by
//! the job item's stream record).

use std::time::Duration;

use crate::QueryPorts;
use crate::ReadErrors;
use anyhow::Context as _;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llmtrack_shared::domain::analytics::{self, Filters, Metric};
use llmtrack_shared::domain::event::Event;
use llmtrack_shared::domain::focus;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::rollup::{Dimension, Rollup};
use llmtrack_shared::domain::time::{HOUR_MS, rfc3339};
use llmtrack_shared::extract::Json as JsonBody;
use llmtrack_shared::ports::{DynArchive, DynClock, Job, JobState, Workspace, unfinished_jobs_of};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::log::{LoggedEvent, meta_matches, parse_meta, visible_range};
use crate::stats::{TableAsk, TableParams, TableRow};
use crate::{Pages, QueryScope, QueryState, reader};

/// Largest export answered in the response.
pub const INLINE_LIMIT_BYTES: usize = 5_000_000;
/// How long export files are kept (the archive bucket's lifecycle rule on AWS; `serve`'s upkeep
/// locally): their links last an hour, so a retried download still finds them.
pub const FILES_KEPT: Duration = Duration::from_secs(2 * 86_400);
/// Export jobs that may run at once for one workspace; past them, 429.
pub const MAX_RUNNING_EXPORTS: usize = 3;
/// Exports answered in the response that this process builds at once: each holds up to
/// `INLINE_LIMIT_BYTES` in memory (a Lambda instance builds one at a time anyway).
static INLINE_EXPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
/// Largest export job, in events: one run must fit in one Lambda invocation (15 minutes).
pub const MAX_EXPORT_EVENTS: u64 = 5_000_000;
/// How long a download link works. A new one is made each time the job is read.
pub const LINK_TTL: Duration = Duration::from_secs(3600);
pub const JOB_KIND: &str = "export";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportKind {
    Events,
    Breakdown,
    /// Cost and usage as FOCUS 1.2 rows (`domain::focus`): one per day, provider, model, key
    /// source, feature and tag values, for chargeback in finance tools.
    Focus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
    fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ExportRequest {
    pub kind: ExportKind,
    pub format: Format,
    #[serde(flatten)]
    pub scope: QueryScope,
    /// Events: only those whose metadata has this `key:value`.
    pub meta: Option<String>,
    /// Breakdown: the dimension of the rows (as `by` of `/v1/stats/breakdown`, `tag:<key>`
    /// included).
    #[schema(example = "model")]
    pub by: Option<String>,
    /// Breakdown: the metric rows are sorted by (default `cost_usd`).
    #[schema(value_type = Option<llmtrack_shared::domain::analytics::Metric>)]
    pub sort: Option<String>,
}

/// What a job needs to run: everything resolved when it was accepted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportSpec {
    pub kind: ExportKind,
    pub format: Format,
    pub from_ms: i64,
    pub to_ms: i64,
    pub filters: Vec<(Dimension, String)>,
    pub meta: Option<(String, String)>,
    pub by: Option<Dimension>,
    /// The tag key `by` is, if a tag: the column's name.
    #[serde(default)]
    pub tag: Option<String>,
    pub sort: Option<Metric>,
}

/// An export job as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportJob {
    pub id: String,
    pub state: JobState,
    pub kind: ExportKind,
    pub format: Format,
    pub created_at: String,
    /// Rows written (when done).
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    /// The download link (when done); it stops working at `link_expires_at`.
    pub url: Option<String>,
    pub link_expires_at: Option<String>,
    /// Why the job failed.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExportResult {
    key: String,
    filename: String,
    rows: u64,
    bytes: u64,
}

/// Exports events or a breakdown: the file in the response when small, else a job (202).
#[utoipa::path(
    post,
    path = "/v1/exports",
    tag = "analytics",
    request_body = ExportRequest,
    responses(
        (status = 200, description = "The file (CSV or JSON Lines), when it is small", content_type = "text/csv"),
        (status = 202, description = "Too large for a response: a job was started", body = ExportJob),
        ReadErrors,
    ),
    security(("api_key" = []), ("session" = []))
)]
pub async fn create(
    State(s): State<QueryState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ExportRequest>,
) -> Result<Response, ApiError> {
    let ws = reader(&s, &headers, req.scope.workspace.as_deref()).await?;
    // A session's POST must come from the dashboard, like every other state-changing request.
    if !headers.contains_key(header::AUTHORIZATION)
        && llmtrack_shared::auth::has_session_cookie(&headers)
    {
        llmtrack_shared::auth::same_origin(&headers, &s.web)?;
    }
    let filters = req.scope.filters()?;
    let (from_ms, to_ms, _) = visible_range(&s, &ws, &req.scope)?;
    let spec = match req.kind {
        ExportKind::Events => ExportSpec {
            kind: req.kind,
            format: req.format,
            from_ms,
            to_ms,
            filters: filters.0.into_iter().collect(),
            meta: parse_meta(req.meta.as_deref())?,
            by: None,
            tag: None,
            sort: None,
        },
        ExportKind::Focus => ExportSpec {
            kind: req.kind,
            format: req.format,
            from_ms,
            to_ms,
            filters: filters.0.into_iter().collect(),
            meta: None,
            by: None,
            tag: None,
            sort: None,
        },
        ExportKind::Breakdown => {
            let by = req.by.clone().ok_or_else(|| {
                ApiError::bad_request(ErrorCode::MissingDimension, "a breakdown export needs `by`")
            })?;
            let t = TableAsk::parse(
                &TableParams {
                    by,
                    sort: req.sort.clone(),
                    order: None,
                    limit: None,
                },
                1,
            )?;
            let g = t.by.resolve(&ws)?;
            // Rollup hours, as the breakdown endpoint reads them.
            let first = g.first_hour(crate::first_visible_hour(&ws, s.clock.now_ms()));
            ExportSpec {
                kind: req.kind,
                format: req.format,
                from_ms: (from_ms.div_euclid(HOUR_MS).max(first)) * HOUR_MS,
                to_ms: ((to_ms - 1).div_euclid(HOUR_MS) + 1).max(first) * HOUR_MS,
                filters: filters.0.into_iter().collect(),
                meta: None,
                by: Some(g.dimension),
                tag: g.tag.map(|t| t.key),
                sort: Some(t.sort),
            }
        }
    };
    let Ok(_building) = INLINE_EXPORTS.try_acquire() else {
        return Err(ApiError::TooManyRequests {
            message: "too many exports are being built on this server; retry shortly".into(),
            retry_after_s: 5,
        });
    };
    let mut out = Output::new(spec.format, Some(INLINE_LIMIT_BYTES), header(&spec));
    match produce(&s.store, &ws, &spec, &mut out, None).await {
        Ok(_) => {
            let filename = filename(&ws, &spec, s.clock.now_ms());
            let mut response = Response::new(Body::from(out.into_bytes()));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(spec.format.content_type()),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
                headers.insert(header::CONTENT_DISPOSITION, v);
            }
            Ok(response)
        }
        Err(Produce::TooLarge) => {
            let job = start_job(&s, &ws, &spec).await?;
            Ok((
                StatusCode::ACCEPTED,
                Json(view(&s.archive, &job, s.clock.now_ms()).await?),
            )
                .into_response())
        }
        Err(Produce::Failed(e)) => Err(e),
    }
}

/// An export job: its state, and a fresh download link once it is done.
#[utoipa::path(
    get,
    path = "/v1/exports/{id}",
    tag = "analytics",
    params(("id" = String, Path, description = "The export job id"), ("workspace" = Option<String>, Query, description = "With a session: which of your workspaces")),
    responses(
        (status = 200, description = "The job", body = ExportJob),
        ReadErrors,
    ),
    security(("api_key" = []), ("session" = []))
)]
pub async fn status(
    State(s): State<QueryState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    llmtrack_shared::extract::Query(q): llmtrack_shared::extract::Query<crate::WorkspaceParam>,
) -> Result<Json<ExportJob>, ApiError> {
    let ws = reader(&s, &headers, q.workspace.as_deref()).await?;
    let job = s
        .store
        .jobs
        .job(&ws.id, &id)
        .await?
        .filter(|j| j.kind == JOB_KIND)
        .ok_or_else(|| ApiError::NotFound(format!("no export `{id}` in this workspace")))?;
    Ok(Json(view(&s.archive, &job, s.clock.now_ms()).await?))
}

async fn start_job(s: &QueryState, ws: &Workspace, spec: &ExportSpec) -> Result<Job, ApiError> {
    let running = unfinished_jobs_of(s.store.jobs.as_ref(), JOB_KIND)
        .await?
        .iter()
        .filter(|j| j.workspace == ws.id)
        .count();
    if running >= MAX_RUNNING_EXPORTS {
        return Err(ApiError::TooManyRequests {
            message: format!(
                "this workspace already has {running} exports running (at most {MAX_RUNNING_EXPORTS}); retry when one has finished"
            ),
            retry_after_s: 30,
        });
    }
    let now = s.clock.now_ms();
    let job = Job::queued(
        "exp",
        &ws.id,
        JOB_KIND,
        serde_json::to_value(spec).context("encoding an export spec")?,
        serde_json::Value::Null,
        now,
    );
    s.store.jobs.create_job(&job).await?;
    if s.run_jobs_here {
        let (store, archive, clock, job) = (
            s.store.clone(),
            s.archive.clone(),
            s.clock.clone(),
            job.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = run(&store, &archive, &clock, job).await {
                tracing::error!(error = format!("{e:#}"), "export job failed");
            }
        });
    }
    Ok(job)
}

async fn view(archive: &DynArchive, job: &Job, now_ms: i64) -> Result<ExportJob, ApiError> {
    let spec: ExportSpec =
        serde_json::from_value(job.spec.clone()).context("decoding an export spec")?;
    let result: Option<ExportResult> = match (&job.state, &job.result) {
        (JobState::Done, Some(r)) => serde_json::from_value(r.clone()).ok(),
        _ => None,
    };
    let url = match &result {
        Some(r) => Some(archive.link(&r.key, &r.filename, LINK_TTL).await?),
        None => None,
    };
    let error = match (&job.state, &job.result) {
        (JobState::Failed, Some(r)) => r.get("error").and_then(|e| e.as_str()).map(str::to_owned),
        _ => None,
    };
    Ok(ExportJob {
        id: job.id.clone(),
        state: job.state,
        kind: spec.kind,
        format: spec.format,
        created_at: rfc3339(job.created_ms),
        rows: result.as_ref().map(|r| r.rows),
        bytes: result.as_ref().map(|r| r.bytes),
        link_expires_at: url
            .as_ref()
            .map(|_| rfc3339(now_ms + LINK_TTL.as_millis() as i64)),
        url,
        error,
    })
}

/// Runs an export job to the end: writes the file through the archive and records the result.
/// Safe to run again after a crash: it starts over and the unfinished object never appears.
pub async fn run(
    store: &QueryPorts,
    archive: &DynArchive,
    clock: &DynClock,
    mut job: Job,
) -> anyhow::Result<()> {
    if matches!(job.state, JobState::Done | JobState::Failed) {
        return Ok(());
    }
    let ws = store
        .workspaces
        .workspace(&job.workspace)
        .await?
        .filter(|w| w.deleting.is_none())
        .context("the export's workspace is gone or being deleted")?;
    let spec: ExportSpec = serde_json::from_value(job.spec.clone())?;
    job.state = JobState::Running;
    job.updated_ms = clock.now_ms();
    if !store.jobs.update_job(&mut job).await? {
        return Ok(()); // another worker took it
    }
    let filename = filename(&ws, &spec, job.created_ms);
    // Under `exports/`, where the bucket's lifecycle rule expires files after two days.
    let key = format!("exports/{}/{}.{}", ws.id, job.id, spec.format.extension());
    let mut writer = archive.writer(&key, spec.format.content_type()).await?;
    let mut out = Output::new(spec.format, None, header(&spec));
    let outcome = produce(store, &ws, &spec, &mut out, Some(&mut writer)).await;
    let result = match outcome {
        Ok(rows) => match writer.write(&out.take()).await {
            // A deletion accepted meanwhile has deleted (or is deleting) the workspace's
            // files: this one must not appear after it.
            Ok(()) if being_deleted(store, &ws.id).await? => {
                writer.abort().await.ok();
                tracing::info!(job = %job.id, "export dropped: its workspace is being deleted");
                return Ok(());
            }
            Ok(()) => {
                let bytes = writer.finish().await?;
                job.state = JobState::Done;
                serde_json::to_value(ExportResult {
                    key,
                    filename,
                    rows,
                    bytes,
                })?
            }
            Err(e) => {
                writer.abort().await.ok();
                return Err(e);
            }
        },
        Err(e) => {
            writer.abort().await.ok();
            job.state = JobState::Failed;
            let message = match e {
                Produce::Failed(ApiError::Unexpected(e)) => return Err(e),
                Produce::Failed(e) => e.to_string(),
                Produce::TooLarge => "the export is too large".to_owned(),
            };
            serde_json::json!({ "error": message })
        }
    };
    job.result = Some(result);
    job.updated_ms = clock.now_ms();
    store.jobs.update_job(&mut job).await?;
    Ok(())
}

async fn being_deleted(store: &QueryPorts, ws: &WorkspaceId) -> anyhow::Result<bool> {
    Ok(store
        .workspaces
        .workspace(ws)
        .await?
        .is_none_or(|w| w.deleting.is_some()))
}

/// Resumes every unfinished export (the local server calls this at start).
pub async fn resume(
    store: &QueryPorts,
    archive: &DynArchive,
    clock: &DynClock,
) -> anyhow::Result<usize> {
    let jobs = unfinished_jobs_of(store.jobs.as_ref(), JOB_KIND).await?;
    let n = jobs.len();
    for job in jobs {
        run(store, archive, clock, job).await?;
    }
    Ok(n)
}

fn filename(ws: &Workspace, spec: &ExportSpec, at_ms: i64) -> String {
    let kind = match spec.kind {
        ExportKind::Events => "events".to_owned(),
        ExportKind::Breakdown => match &spec.tag {
            Some(key) => format!("by-tag-{}", key.replace(['/', '.'], "-")),
            None => format!("by-{}", spec.by.map_or("total", |d| d.as_str())),
        },
        ExportKind::Focus => "focus".to_owned(),
    };
    let date = rfc3339(at_ms).get(..10).unwrap_or_default().to_owned();
    format!(
        "llmtrack-{}-{kind}-{date}.{}",
        ws.id,
        spec.format.extension()
    )
}

enum Produce {
    /// Over the inline limit: answer with a job instead.
    TooLarge,
    Failed(ApiError),
}

impl<E: Into<ApiError>> From<E> for Produce {
    fn from(e: E) -> Self {
        Produce::Failed(e.into())
    }
}

/// The encoded file, buffered; flushed to `sink` a megabyte at a time when there is one.
struct Output {
    header: Vec<String>,
    csv: Option<csv::Writer<Vec<u8>>>,
    jsonl: Vec<u8>,
    limit: Option<usize>,
    header_written: bool,
}

const FLUSH_BYTES: usize = 1 << 20;

impl Output {
    fn new(format: Format, limit: Option<usize>, header: Vec<String>) -> Output {
        Output {
            header,
            csv: (format == Format::Csv).then(|| csv::Writer::from_writer(Vec::new())),
            jsonl: Vec::new(),
            limit,
            header_written: false,
        }
    }

    fn buffered(&mut self) -> usize {
        match &mut self.csv {
            Some(w) => {
                let _ = w.flush();
                w.get_ref().len()
            }
            None => self.jsonl.len(),
        }
    }

    fn take(&mut self) -> Vec<u8> {
        match &mut self.csv {
            Some(w) => {
                if !self.header_written {
                    let _ = w.write_record(&self.header);
                    self.header_written = true;
                }
                let _ = w.flush();
                std::mem::replace(
                    w,
                    csv::WriterBuilder::new()
                        .has_headers(false)
                        .from_writer(Vec::new()),
                )
                .into_inner()
                .unwrap_or_default()
            }
            None => std::mem::take(&mut self.jsonl),
        }
    }

    fn into_bytes(mut self) -> Vec<u8> {
        self.take()
    }

    fn row(&mut self, cells: Vec<String>, json: impl Serialize) -> anyhow::Result<()> {
        match &mut self.csv {
            Some(w) => {
                if !self.header_written {
                    w.write_record(&self.header)?;
                    self.header_written = true;
                }
                w.write_record(cells)?;
            }
            None => {
                serde_json::to_writer(&mut self.jsonl, &json)?;
                self.jsonl.push(b'\n');
            }
        }
        Ok(())
    }

    /// After a row: hand a full buffer to the sink, or report that an inline export is over
    /// its limit.
    async fn spill(
        &mut self,
        sink: &mut Option<&mut Box<dyn llmtrack_shared::ports::ArchiveWriter>>,
    ) -> Result<(), Produce> {
        let size = self.buffered();
        if let Some(limit) = self.limit
            && size > limit
        {
            return Err(Produce::TooLarge);
        }
        if size >= FLUSH_BYTES
            && let Some(w) = sink
        {
            w.write(&self.take()).await?;
        }
        Ok(())
    }
}

/// Spreadsheets run cells that start with these as formulas: prefix them so a user-controlled
/// name cannot execute in the reader's spreadsheet.
fn cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

const EVENT_HEADER: [&str; 17] = [
    "id",
    "timestamp",
    "provider",
    "model",
    "feature",
    "user_id",
    "source",
    "status",
    "error_type",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "latency_ms",
    "metadata",
];

fn event_cells(e: &Event, l: &LoggedEvent) -> Vec<String> {
    vec![
        cell(&l.id),
        l.timestamp.clone(),
        cell(&l.provider),
        cell(&l.model),
        cell(l.feature.as_deref().unwrap_or("")),
        cell(l.user_id.as_deref().unwrap_or("")),
        cell(&l.source),
        l.status.clone(),
        cell(l.error_type.as_deref().unwrap_or("")),
        e.tokens.input.to_string(),
        e.tokens.output.to_string(),
        e.tokens.cached_input.to_string(),
        e.tokens.cache_write.to_string(),
        e.tokens.reasoning.to_string(),
        num(l.cost_usd),
        num(l.latency_ms),
        if l.metadata.is_empty() {
            String::new()
        } else {
            cell(&serde_json::Value::Object(l.metadata.clone()).to_string())
        },
    ]
}

fn header(spec: &ExportSpec) -> Vec<String> {
    match (spec.kind, spec.by) {
        (ExportKind::Events, _) => EVENT_HEADER.map(str::to_owned).to_vec(),
        (ExportKind::Breakdown, by) => {
            let first = match &spec.tag {
                Some(key) => format!("tag:{key}"),
                None => by.unwrap_or(Dimension::Model).as_str().to_owned(),
            };
            std::iter::once(first)
                .chain(Metric::ALL.iter().map(|m| m.as_str().to_owned()))
                .collect()
        }
        (ExportKind::Focus, _) => focus::HEADER.map(str::to_owned).to_vec(),
    }
}

/// FOCUS rows an export sums in memory: a day of 100 models × 10 sources × 100 features is
/// 100 thousand; past this the range is too wide to sum at once.
pub const MAX_FOCUS_ROWS: usize = 500_000;

/// FOCUS columns holding numbers: written as they are (the others go through [`cell`]).
fn focus_numeric(column: &str) -> bool {
    column.ends_with("Cost")
        || column.ends_with("Quantity")
        || column.starts_with("x_") && column != "x_Feature"
}

/// Writes the export's rows into `out` (and through `sink`, for jobs). Returns the row count.
async fn produce(
    store: &QueryPorts,
    ws: &Workspace,
    spec: &ExportSpec,
    out: &mut Output,
    mut sink: Option<&mut Box<dyn llmtrack_shared::ports::ArchiveWriter>>,
) -> Result<u64, Produce> {
    let filters = Filters(spec.filters.iter().cloned().collect());
    let mut rows = 0u64;
    match spec.kind {
        ExportKind::Events => {
            let mut pages = Pages::new(store, &ws.id, spec.from_ms, spec.to_ms);
            while let Some(page) = pages.next().await? {
                for e in page
                    .iter()
                    .filter(|e| filters.matches(e) && meta_matches(e, &spec.meta))
                {
                    let l = LoggedEvent::from(e);
                    out.row(event_cells(e, &l), &l)?;
                    rows += 1;
                    if rows > MAX_EXPORT_EVENTS {
                        return Err(Produce::Failed(ApiError::bad_request(
                            ErrorCode::ExportTooLarge,
                            format!(
                                "an export holds at most {MAX_EXPORT_EVENTS} events: narrow the range or add filters"
                            ),
                        )));
                    }
                }
                out.spill(&mut sink).await?;
            }
        }
        ExportKind::Focus => {
            let mut sums = focus::Rows::default();
            let mut scanned = 0u64;
            let mut pages = Pages::new(store, &ws.id, spec.from_ms, spec.to_ms);
            while let Some(page) = pages.next().await? {
                for e in page.iter().filter(|e| filters.matches(e)) {
                    scanned += 1;
                    if scanned > MAX_EXPORT_EVENTS || !sums.add(e, &ws.tags, MAX_FOCUS_ROWS) {
                        return Err(Produce::Failed(ApiError::bad_request(
                            ErrorCode::ExportTooLarge,
                            format!(
                                "a FOCUS export sums at most {MAX_EXPORT_EVENTS} events into at most {MAX_FOCUS_ROWS} rows: narrow the range or add filters"
                            ),
                        )));
                    }
                }
            }
            let account = focus::Account {
                id: ws.id.as_str(),
                name: &ws.name,
            };
            for (k, r) in &sums.rows {
                let cells: Vec<String> = focus::HEADER
                    .iter()
                    .zip(focus::cells(&account, k, r))
                    .map(|(column, v)| if focus_numeric(column) { v } else { cell(&v) })
                    .collect();
                let json: serde_json::Map<String, serde_json::Value> = focus::HEADER
                    .iter()
                    .zip(&cells)
                    .map(|(column, v)| {
                        let v = match (focus_numeric(column), v.parse::<f64>()) {
                            (true, Ok(n)) => serde_json::json!(n),
                            _ if v.is_empty() => serde_json::Value::Null,
                            _ if *column == "Tags" => serde_json::from_str(v).unwrap_or_default(),
                            _ => serde_json::Value::String(v.clone()),
                        };
                        ((*column).to_owned(), v)
                    })
                    .collect();
                out.row(cells, &json)?;
                rows += 1;
                out.spill(&mut sink).await?;
            }
        }
        ExportKind::Breakdown => {
            let by = spec.by.unwrap_or(Dimension::Model);
            let (table, _) = crate::rows_of(
                store,
                &ws.id,
                &filters,
                by,
                spec.from_ms / HOUR_MS,
                spec.to_ms / HOUR_MS,
            )
            .await?;
            let ranked: Vec<(String, Rollup)> = analytics::ranked(
                analytics::by_value(&table),
                spec.sort.unwrap_or(Metric::CostUsd),
                true,
            );
            for (value, r) in ranked {
                let cells = std::iter::once(cell(&value))
                    .chain(Metric::ALL.iter().map(|m| num(m.value(&r))))
                    .collect();
                let json = TableRow {
                    value,
                    metrics: crate::stats::Metrics::of(&r),
                };
                out.row(cells, &json)?;
                rows += 1;
                out.spill(&mut sink).await?;
            }
        }
    }
    Ok(rows)
}
