//! The reports function: each workspace's monthly report, built from its rollups
//! (`domain::report`), archived as JSON, CSV and a self-contained HTML page under
//! `reports/{workspace}/`, and emailed once to the owners and admins who have not opted out.
//! A schedule runs the month just ended on the first of each month (UTC); `llmtrack jobs run
//! reports` runs any past month on demand. Re-running a month replaces its files and sends no
//! second email. `GET /v1/workspaces/{id}/reports` lists a workspace's reports with links that
//! expire.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse as _;
use llmtrack_shared::auth::Gate;
use llmtrack_shared::domain::access::{Action, Role};
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::report::{self, FORECAST_HISTORY_DAYS, Month, MonthlyReport};
use llmtrack_shared::domain::rollup::{Dimension, View};
use llmtrack_shared::{ApiError, ErrorCode};

use llmtrack_shared::ports::{DynArchive, DynClock, DynMailer, Mail, Workspace, all_workspace_ids};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod digest;
pub mod render;

/// The Lambda functions' parts: DynamoDB, S3 and SES.
#[cfg(feature = "lambda")]
pub async fn lambda_deps(store: &llmtrack_shared::ports::DynStore) -> anyhow::Result<Deps> {
    use std::sync::Arc;

    use llmtrack_shared::adapters::s3::S3Archive;
    use llmtrack_shared::adapters::ses::Ses;
    use llmtrack_shared::config::{MailConfig, WebConfig, required};
    Ok(Deps {
        store: ReportsPorts::of(store),
        clock: Arc::new(llmtrack_shared::ports::SystemClock),
        archive: Arc::new(S3Archive::from_env(&required("ARCHIVE_BUCKET")?).await),
        mailer: Arc::new(Ses::from_env(&MailConfig::from_env()?.from).await),
        public_url: WebConfig::from_env()?.public_url,
    })
}

/// The formats each report is archived in: (extension, content type).
pub const FORMATS: [(&str, &str); 3] = [
    ("json", "application/json"),
    ("csv", "text/csv; charset=utf-8"),
    ("html", "text/html; charset=utf-8"),
];

/// How long a download link works.
const LINK_TTL: Duration = Duration::from_secs(15 * 60);

llmtrack_shared::store_ports! {
    /// What the reports read (rollups, members and their addresses) and the notice they claim.
    pub struct ReportsPorts {
        workspaces: Workspaces,
        events: Events,
        members: Members,
        accounts: Accounts,
    }
}

#[derive(Clone)]
pub struct Deps {
    pub store: ReportsPorts,
    pub clock: DynClock,
    pub archive: DynArchive,
    pub mailer: DynMailer,
    /// The dashboard's origin, for the links in the emails.
    pub public_url: String,
}

/// The archive key of a workspace's report of a month in one format.
pub fn key(ws: &WorkspaceId, month: Month, ext: &str) -> String {
    format!("reports/{ws}/{month}.{ext}")
}

/// Why a month cannot be reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonthError {
    #[error("`month` must be YYYY-MM, got `{0}`")]
    Malformed(String),
    #[error("{0} has not ended yet: a month is reported once it is over")]
    NotOver(String),
}

/// A month that is over at `now_ms`.
pub fn past_month(s: &str, now_ms: i64) -> Result<Month, MonthError> {
    let m = Month::parse(s).ok_or_else(|| MonthError::Malformed(s.to_owned()))?;
    if m.end_ms() > now_ms {
        return Err(MonthError::NotOver(m.to_string()));
    }
    Ok(m)
}

/// Builds a workspace's report of a month from its rollups.
pub async fn build(deps: &Deps, ws: &Workspace, month: Month) -> anyhow::Result<MonthlyReport> {
    let (first, end) = month.hours();
    let store = &deps.store.events;
    let total = store
        .rollups(
            &ws.id,
            &View::of(Dimension::Total),
            first - FORECAST_HISTORY_DAYS * 24,
            end,
        )
        .await?;
    let (pf, pe) = month.previous().hours();
    let previous = store
        .rollups(&ws.id, &View::of(Dimension::Total), pf, pe)
        .await?;
    let mut by = BTreeMap::new();
    for d in [
        Dimension::Model,
        Dimension::Provider,
        Dimension::Feature,
        Dimension::Source,
        Dimension::User,
    ] {
        by.insert(d, store.rollups(&ws.id, &View::of(d), first, end).await?);
    }
    Ok(report::build(
        ws.id.as_str(),
        &ws.name,
        month,
        &report::Rollups {
            total: &total,
            previous: &previous,
            by: &by,
        },
    ))
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ran {
    pub reports: usize,
    pub emails: usize,
    /// The workspaces a run left out or did not mail, and why (an operator running it by hand
    /// should not have to guess why a report did not come).
    pub notes: Vec<(WorkspaceId, Note)>,
}

impl Ran {
    fn add(&mut self, other: Ran) {
        self.reports += other.reports;
        self.emails += other.emails;
        self.notes.extend(other.notes);
    }
}

/// Why a workspace got no report, or no email, for a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Note {
    /// Being deleted: nothing more is made from its data.
    Deleting,
    /// Created after the month, with no events backdated into it: no report.
    CreatedAfter,
    /// No events in the month: the report is archived, not mailed.
    Quiet,
    /// Mailed by an earlier run: archived again, not mailed twice.
    AlreadyMailed,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Note::Deleting => "skipped: the workspace is being deleted",
            Note::CreatedAfter => "skipped: created after the month, with no events in it",
            Note::Quiet => "archived, not mailed: no events in the month",
            Note::AlreadyMailed => "archived, not mailed: an earlier run mailed it",
        })
    }
}

/// The dashboard page of a report.
fn dashboard(deps: &Deps, ws: &WorkspaceId, month: Month) -> String {
    format!("{}/workspaces/{ws}/reports/{month}", deps.public_url)
}

/// Builds, archives and mails one workspace's report of `month`.
pub async fn run_workspace(deps: &Deps, ws: &Workspace, month: Month) -> anyhow::Result<Ran> {
    let mut ran = Ran::default();
    let note = |mut ran: Ran, note: Note| {
        ran.notes.push((ws.id.clone(), note));
        Ok(ran)
    };
    if ws.deleting.is_some() {
        return note(ran, Note::Deleting);
    }
    let r = build(deps, ws, month).await?;
    // Nothing to say about a month before the workspace existed, unless events were backdated
    // into it.
    if ws.created_ms >= month.end_ms() && r.totals.requests == 0 {
        return note(ran, Note::CreatedAfter);
    }
    let link = dashboard(deps, &ws.id, month);
    let html = render::html(&r, &link);
    for (ext, content_type) in FORMATS {
        let body = match ext {
            "json" => render::json(&r)?,
            "csv" => render::csv(&r)?,
            _ => html.clone().into_bytes(),
        };
        // Tagged with the plan: the bucket's lifecycle rule for that plan expires it.
        deps.archive
            .put_tagged(
                &key(&ws.id, month, ext),
                content_type,
                body,
                &[("plan", ws.plan.as_str())],
            )
            .await?;
    }
    ran.reports = 1;
    // A quiet month is archived, not mailed; a re-run never mails twice.
    if r.totals.requests == 0 {
        return note(ran, Note::Quiet);
    }
    if !deps
        .store
        .workspaces
        .claim_notice(&ws.id, &format!("report:{month}"), deps.clock.now_ms())
        .await?
    {
        return note(ran, Note::AlreadyMailed);
    }
    let subject = format!("LLMtrack report for {}: {}", ws.name, month);
    let text = render::text(&r, &link);
    for m in deps.store.members.members(&ws.id).await? {
        if m.role < Role::Admin {
            continue;
        }
        let Some(user) = deps.store.accounts.user(&m.user_id).await? else {
            continue;
        };
        if user.reports_opt_out {
            continue;
        }
        let mail = Mail {
            to: user.email.as_str().to_owned(),
            subject: subject.clone(),
            text: text.clone(),
            html: Some(html.clone()),
            about: Some(ws.id.clone()),
        };
        match deps.mailer.send(&mail).await {
            Ok(()) => ran.emails += 1,
            Err(e) => {
                tracing::error!(workspace = %ws.id, error = format!("{e:#}"), "could not email a monthly report")
            }
        }
    }
    Ok(ran)
}

/// Runs `month` for every workspace (or one).
pub async fn run_month(
    deps: &Deps,
    month: Month,
    only: Option<&WorkspaceId>,
) -> anyhow::Result<Ran> {
    let ids = match only {
        Some(id) => vec![id.clone()],
        None => all_workspace_ids(deps.store.workspaces.as_ref()).await?,
    };
    let mut total = Ran::default();
    for id in ids {
        let Some(ws) = deps.store.workspaces.workspace(&id).await? else {
            continue;
        };
        total.add(run_workspace(deps, &ws, month).await?);
    }
    tracing::info!(%month, reports = total.reports, emails = total.emails, "monthly reports done");
    Ok(total)
}

/// The month just ended, for every workspace whose report of it is not archived yet: what
/// `llmtrack serve` runs in its upkeep, where the first of the month has no schedule.
pub async fn run_due(deps: &Deps) -> anyhow::Result<Ran> {
    let month = Month::of(deps.clock.now_ms()).previous();
    let mut total = Ran::default();
    for id in all_workspace_ids(deps.store.workspaces.as_ref()).await? {
        if archived(deps, &id, month).await? {
            continue;
        }
        if let Some(ws) = deps.store.workspaces.workspace(&id).await? {
            total.add(run_workspace(deps, &ws, month).await?);
        }
    }
    Ok(total)
}

/// Whether the month's report is in the archive (listed, not downloaded).
async fn archived(deps: &Deps, ws: &WorkspaceId, month: Month) -> anyhow::Result<bool> {
    let json = key(ws, month, "json");
    Ok(deps
        .archive
        .list(&format!("reports/{ws}/"))
        .await?
        .contains(&json))
}

// ---------- the HTTP side: listing and links ----------

#[derive(Clone)]
pub struct ReportsState {
    pub gate: Gate,
    pub deps: Deps,
}

fn routes() -> OpenApiRouter<ReportsState> {
    OpenApiRouter::new()
        .routes(routes!(list_reports))
        .routes(routes!(get_report))
        .routes(routes!(report_json))
}

pub fn router(state: ReportsState) -> OpenApiRouter {
    llmtrack_shared::openapi::strict_query(routes()).with_state(state)
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

#[derive(Serialize, ToSchema)]
pub struct ReportLinks {
    /// `YYYY-MM`.
    month: String,
    /// Download links by format (`json`, `csv`, `html`), each working for 15 minutes.
    links: BTreeMap<String, String>,
}

/// The months the plan keeps reports for, newest first, ending with the month just ended.
fn kept_months(ws: &Workspace, now_ms: i64) -> Vec<Month> {
    let mut m = Month::of(now_ms).previous();
    let mut out = Vec::new();
    for _ in 0..ws.plan.limits().report_months {
        out.push(m);
        m = m.previous();
    }
    out
}

async fn links(
    deps: &Deps,
    ws: &WorkspaceId,
    month: Month,
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (ext, _) in FORMATS {
        let name = format!("llmtrack-report-{ws}-{month}.{ext}");
        out.insert(
            ext.to_owned(),
            deps.archive
                .link(&key(ws, month, ext), &name, LINK_TTL)
                .await?,
        );
    }
    Ok(out)
}

/// A workspace's monthly reports, newest first, as far back as its plan keeps them.
#[utoipa::path(get, path = "/v1/workspaces/{id}/reports", tag = "reports",
    params(("id" = String, Path, description = "The workspace")),
    responses((status = 200, body = Vec<ReportLinks>), (status = 401, description = "No session"),
        (status = 404, description = "No such workspace among yours")))]
async fn list_reports(
    State(s): State<ReportsState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<ReportLinks>>, ApiError> {
    let ws = s.gate.member(&headers, &id, Action::Read).await?.workspace;
    let archived = s.deps.archive.list(&format!("reports/{}/", ws.id)).await?;
    let mut out = Vec::new();
    for month in kept_months(&ws, s.deps.clock.now_ms()) {
        if archived.contains(&key(&ws.id, month, "json")) {
            out.push(ReportLinks {
                month: month.to_string(),
                links: links(&s.deps, &ws.id, month).await?,
            });
        }
    }
    Ok(axum::Json(out))
}

/// One month's report: its download links.
#[utoipa::path(get, path = "/v1/workspaces/{id}/reports/{month}", tag = "reports",
    params(("id" = String, Path, description = "The workspace"), ("month" = String, Path, description = "YYYY-MM")),
    responses((status = 200, body = ReportLinks),
        (status = 400, description = "Not a month, or a month not over yet"),
        (status = 401, description = "No session"),
        (status = 404, description = "No such workspace among yours, or no report of that month")))]
async fn get_report(
    State(s): State<ReportsState>,
    headers: HeaderMap,
    Path((id, month)): Path<(String, String)>,
) -> Result<axum::Json<ReportLinks>, ApiError> {
    let ws = s.gate.member(&headers, &id, Action::Read).await?.workspace;
    let now = s.deps.clock.now_ms();
    let month = past_month(&month, now)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidMonth, e.to_string()))?;
    let missing = || ApiError::NotFound(format!("no report of {month} for this workspace"));
    if !kept_months(&ws, now).contains(&month) {
        return Err(missing());
    }
    if !archived(&s.deps, &ws.id, month).await? {
        return Err(missing());
    }
    Ok(axum::Json(ReportLinks {
        month: month.to_string(),
        links: links(&s.deps, &ws.id, month).await?,
    }))
}

/// One month's report itself (the archived JSON), read through the API so the dashboard shows it
/// from its own origin (download links may point at another, such as S3).
#[utoipa::path(get, path = "/v1/workspaces/{id}/reports/{month}/report.json", tag = "reports",
    params(("id" = String, Path, description = "The workspace"), ("month" = String, Path, description = "YYYY-MM")),
    responses((status = 200, description = "The report: totals, breakdowns, top end-users, daily series, change, latency, forecast check", content_type = "application/json"),
        (status = 400, description = "Not a month, or a month not over yet", body = llmtrack_shared::error::ErrorBody),
        (status = 401, description = "No session", body = llmtrack_shared::error::ErrorBody),
        (status = 404, description = "No such workspace among yours, or no report of that month", body = llmtrack_shared::error::ErrorBody)))]
async fn report_json(
    State(s): State<ReportsState>,
    headers: HeaderMap,
    Path((id, month)): Path<(String, String)>,
) -> Result<axum::response::Response, ApiError> {
    let ws = s.gate.member(&headers, &id, Action::Read).await?.workspace;
    let now = s.deps.clock.now_ms();
    let month = past_month(&month, now)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidMonth, e.to_string()))?;
    let missing = || ApiError::NotFound(format!("no report of {month} for this workspace"));
    // Listed first: on S3 a missing object reads as access denied without list permission.
    if !kept_months(&ws, now).contains(&month) || !archived(&s.deps, &ws.id, month).await? {
        return Err(missing());
    }
    let body = s
        .deps
        .archive
        .get(&key(&ws.id, month, "json"))
        .await?
        .ok_or_else(missing)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}
