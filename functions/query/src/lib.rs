//! The query function: the analytics behind every dashboard, report and export.
//!
//! Summaries, series and tables are answered from hourly rollups when a rollup view answers the
//! question (`domain::analytics::plan`), so their cost does not grow with volume; any other
//! combination of filters is folded from raw events, up to `MAX_SCANNED_EVENTS`. The request log
//! and exports read raw events. Everything is clamped to the plan's history window.

use axum::http::HeaderMap;
use chrono_tz::Tz;
use llmtrack_shared::auth::{self, Gate};
use llmtrack_shared::domain::access::Action;
use llmtrack_shared::domain::analytics::{self, Filters, Range, Row};
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::rollup::Dimension;
use llmtrack_shared::domain::time::{HOUR_MS, rfc3339};
use llmtrack_shared::ports::{DynArchive, DynClock, Workspace};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod budgets;
pub mod export;
mod forecast;
mod log;
mod reconciliation;
mod stats;

llmtrack_shared::store_ports! {
    /// What queries read (rollups, raw events, the workspace) and the export jobs they queue.
    pub struct QueryPorts {
        workspaces: Workspaces,
        events: Events,
        jobs: Jobs,
        connections: Connections,
    }
}

#[derive(Clone)]
pub struct QueryState {
    pub gate: Gate,
    pub store: QueryPorts,
    pub clock: DynClock,
    /// Where large exports are written (S3 / local folder).
    pub archive: DynArchive,
    /// Run export jobs in this process (the local server). On AWS the jobs Lambda runs them,
    /// triggered by the job item's stream record.
    pub run_jobs_here: bool,
    /// The dashboard's origin: a session's POST must come from it.
    pub web: llmtrack_shared::config::WebConfig,
    /// Request rates per caller and per client address.
    pub limits: llmtrack_shared::ratelimit::DynLimits,
    /// The budget check's rates: an application may ask before each LLM call, so it gets the
    /// ingest rates, not a dashboard's (`RequestLimits::ingest`).
    pub check_limits: llmtrack_shared::ratelimit::DynLimits,
}

fn routes() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(stats::summary))
        .routes(routes!(stats::timeseries))
        .routes(routes!(stats::breakdown))
        .routes(routes!(stats::users))
        .routes(routes!(stats::user))
        .routes(routes!(forecast::forecast))
        .routes(routes!(reconciliation::reconciliation))
        .routes(routes!(budgets::budgets))
        .routes(routes!(log::events))
        .routes(routes!(export::create))
        .routes(routes!(export::status))
}

/// The budget check, apart: it is limited like ingest (`QueryState::check_limits`).
fn check_routes() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new().routes(routes!(budgets::check))
}

/// The analytics routes.
pub fn router(state: QueryState) -> OpenApiRouter {
    let per_address = |limits| {
        axum::middleware::from_fn_with_state(limits, llmtrack_shared::ratelimit::per_address)
    };
    let reads =
        llmtrack_shared::openapi::strict_query(routes()).layer(per_address(state.limits.clone()));
    let check = llmtrack_shared::openapi::strict_query(check_routes())
        .layer(per_address(state.check_limits.clone()));
    reads.merge(check).with_state(state)
}

/// The analytics part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use llmtrack_shared::domain::analytics::SortOrder;
    use utoipa::{PartialSchema, ToSchema};
    let mut doc = routes().merge(check_routes()).into_openapi();
    // Schemas named only by a query parameter's `value_type` are not collected by utoipa.
    doc.components
        .get_or_insert_with(Default::default)
        .schemas
        .insert(SortOrder::name().into_owned(), SortOrder::schema());
    doc
}

/// The errors every analytics endpoint may answer, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(crate) enum ReadErrors {
    /// Invalid range, filter, metric, dimension, limit or cursor.
    #[response(status = 400)]
    BadRequest(llmtrack_shared::error::ErrorBody),
    /// Missing, unknown or deactivated key, or no session.
    #[response(status = 401)]
    Unauthorized(llmtrack_shared::error::ErrorBody),
    /// The key's scope is not `read`, or the member's role may not read.
    #[response(status = 403)]
    Forbidden(llmtrack_shared::error::ErrorBody),
    /// Not a workspace (or an export) of yours.
    #[response(status = 404)]
    NotFound(llmtrack_shared::error::ErrorBody),
}

/// Queries whose filters no rollup view answers fold raw events; past this many, they are
/// refused with advice rather than left to run long.
pub const MAX_SCANNED_EVENTS: usize = 200_000;

/// The time range and filters every analytics endpoint takes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct QueryScope {
    /// Start: RFC 3339, or `last_24h`, `last_7d`, `last_30d`, `this_month`, `last_month` (a
    /// relative name sets the whole range). Default: 24 hours before `to`.
    pub from: Option<String>,
    /// End (RFC 3339). Default: now.
    pub to: Option<String>,
    /// With a session: which of your workspaces. (A read key reads its own workspace.)
    pub workspace: Option<String>,
    /// Only events of this provider.
    pub provider: Option<String>,
    /// Only events of this canonical model (`gpt-4o` covers `openai/gpt-4o` and `GPT-4o`).
    pub model: Option<String>,
    /// Only events sent with this model name, exactly as sent.
    pub model_sent: Option<String>,
    /// Only events of this feature (`""`: events sent without one).
    pub feature: Option<String>,
    /// Only events sent with keys of this source label.
    pub source: Option<String>,
    /// Only `success` or `error` events.
    #[param(value_type = Option<llmtrack_shared::domain::event::Status>)]
    #[schema(value_type = Option<llmtrack_shared::domain::event::Status>)]
    pub status: Option<String>,
    /// Only events of this end-user id.
    pub user: Option<String>,
    /// IANA timezone for day buckets and relative ranges (default: the workspace's).
    pub tz: Option<String>,
}

impl QueryScope {
    pub fn filters(&self) -> Result<Filters, ApiError> {
        let mut f = std::collections::BTreeMap::new();
        for (d, v) in [
            (Dimension::Provider, &self.provider),
            (Dimension::Model, &self.model),
            (Dimension::ModelSent, &self.model_sent),
            (Dimension::Feature, &self.feature),
            (Dimension::Source, &self.source),
            (Dimension::Status, &self.status),
            (Dimension::User, &self.user),
        ] {
            if let Some(v) = v {
                if d == Dimension::Status && v != "success" && v != "error" {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidFilter,
                        format!("`status` must be `success` or `error`, got `{v}`"),
                    ));
                }
                f.insert(d, v.clone());
            }
        }
        Ok(Filters(f))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkspaceParam {
    /// With a session: which of your workspaces. (A read key reads its own workspace.)
    pub workspace: Option<String>,
}

/// The range a response covers, after alignment to hours and the plan's history window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Covered {
    pub from: String,
    pub to: String,
    /// True when `from` was moved forward to the start of the plan's history window: older
    /// data is not shown on this plan.
    pub clamped: bool,
    /// The plan's history window, in days.
    pub history_days: u32,
    /// `rollups` (pre-aggregated) or `events` (folded from raw events: filters no rollup
    /// answers).
    pub answered_from: &'static str,
}

/// A resolved query: workspace, its zone, the visible hour range, and the filters.
pub(crate) struct Ask {
    pub ws: Workspace,
    pub tz: Tz,
    pub from_hour: i64,
    pub to_hour: i64,
    pub clamped: bool,
    pub filters: Filters,
    /// The bucket size the range was checked against.
    pub granularity: analytics::Granularity,
}

impl Ask {
    pub fn covered(&self, answered_from: &'static str) -> Covered {
        Covered {
            from: rfc3339(self.from_hour * HOUR_MS),
            to: rfc3339(self.to_hour * HOUR_MS),
            clamped: self.clamped,
            history_days: self.ws.plan.limits().history_days,
            answered_from,
        }
    }
}

/// The first hour the plan still shows: rounded up, so no item past its retention is shown.
pub(crate) fn first_visible_hour(ws: &Workspace, now_ms: i64) -> i64 {
    (now_ms - ws.plan.history_ms() + HOUR_MS - 1).div_euclid(HOUR_MS)
}

/// Resolves a request: its workspace, zone, filters and visible hours. `granularity` is the
/// bucket size the range must fit (`None`: the series default, chosen from the visible span).
pub(crate) async fn ask(
    s: &QueryState,
    headers: &HeaderMap,
    scope: &QueryScope,
    granularity: Option<analytics::Granularity>,
) -> Result<Ask, ApiError> {
    let ws = reader(s, headers, scope.workspace.as_deref()).await?;
    let tz = zone(&ws, scope.tz.as_deref())?;
    let filters = scope.filters()?;
    let now = s.clock.now_ms();
    let range = Range::resolve(
        scope.from.as_deref(),
        scope.to.as_deref(),
        now,
        tz,
        24 * HOUR_MS,
    )
    .map_err(range_error)?;
    let (from_hour, to_hour) = range.hours();
    let first = first_visible_hour(&ws, now);
    let (visible_from, visible_to) = (from_hour.max(first), to_hour.max(first));
    // Without a granularity asked for: hours for what shows as at most two days, else days.
    let granularity = granularity.unwrap_or(if visible_to - visible_from <= 48 {
        analytics::Granularity::Hour
    } else {
        analytics::Granularity::Day
    });
    range.check_length(granularity).map_err(range_error)?;
    Ok(Ask {
        ws,
        tz,
        from_hour: visible_from,
        to_hour: visible_to,
        clamped: from_hour < first,
        filters,
        granularity,
    })
}

pub(crate) fn range_error(e: analytics::RangeError) -> ApiError {
    let code = match e {
        analytics::RangeError::BadTime { .. } => ErrorCode::InvalidTime,
        _ => ErrorCode::InvalidRange,
    };
    ApiError::bad_request(code, e.to_string())
}

/// The zone a request asked for (`tz`), else the workspace's.
pub(crate) fn zone(ws: &Workspace, asked: Option<&str>) -> Result<Tz, ApiError> {
    if let Some(name) = asked {
        return analytics::timezone(name).ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidTimezone,
                format!("`tz` must be an IANA timezone such as Europe/Paris, got `{name}`"),
            )
        });
    }
    analytics::timezone(&ws.timezone).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidTimezone,
            format!("the workspace's timezone `{}` is not a known IANA zone; set one with PATCH /v1/workspaces/{{id}}", ws.timezone),
        )
    })
}

/// Rows for "group by `by` with these filters" over the ask's hours: from a rollup view if
/// one answers, else folded from raw events (bounded).
pub(crate) async fn rows(
    s: &QueryState,
    ask: &Ask,
    by: Dimension,
    from_hour: i64,
    to_hour: i64,
) -> Result<(Vec<Row>, &'static str), ApiError> {
    rows_of(&s.store, &ask.ws.id, &ask.filters, by, from_hour, to_hour).await
}

pub(crate) async fn rows_of(
    store: &QueryPorts,
    ws: &WorkspaceId,
    filters: &Filters,
    by: Dimension,
    from_hour: i64,
    to_hour: i64,
) -> Result<(Vec<Row>, &'static str), ApiError> {
    if from_hour >= to_hour {
        return Ok((Vec::new(), "rollups"));
    }
    if let Some(plan) = analytics::plan(by, filters) {
        let rollups = store
            .events
            .rollups(ws, &plan.view, from_hour, to_hour)
            .await?;
        let rows = analytics::rows_from_rollups(
            &plan,
            by,
            rollups.into_iter().map(|(k, r)| (k.hour, k.value, r)),
        );
        return Ok((rows, "rollups"));
    }
    let mut events = Vec::new();
    let mut pages = Pages::new(store, ws, from_hour * HOUR_MS, to_hour * HOUR_MS);
    while let Some(page) = pages.next().await? {
        events.extend(page.into_iter().filter(|e| filters.matches(e)));
        if events.len() > MAX_SCANNED_EVENTS {
            return Err(ApiError::bad_request(
                ErrorCode::TooManyEvents,
                format!(
                    "these filters are answered from raw events, and the range holds more than {MAX_SCANNED_EVENTS} matching events: narrow the range, or filter by at most one feature and one source (answered from rollups at any volume)"
                ),
            ));
        }
    }
    Ok((analytics::fold_events(by, filters, &events), "events"))
}

/// The raw events of `[from_ms, to_ms)`, oldest first, a page of 1,000 at a time: what folds
/// and exports read.
pub(crate) struct Pages<'a> {
    store: &'a QueryPorts,
    ws: &'a WorkspaceId,
    from_ms: i64,
    to_ms: i64,
    after: Option<(i64, String)>,
    done: bool,
}

impl<'a> Pages<'a> {
    pub const SIZE: usize = 1000;

    pub fn new(store: &'a QueryPorts, ws: &'a WorkspaceId, from_ms: i64, to_ms: i64) -> Self {
        Pages {
            store,
            ws,
            from_ms,
            to_ms,
            after: None,
            done: false,
        }
    }

    pub async fn next(
        &mut self,
    ) -> llmtrack_shared::ports::StoreResult<Option<Vec<llmtrack_shared::domain::event::Event>>>
    {
        if self.done {
            return Ok(None);
        }
        let page = self
            .store
            .events
            .events(
                self.ws,
                self.from_ms,
                self.to_ms,
                self.after.take(),
                Self::SIZE,
            )
            .await?;
        self.done = page.len() < Self::SIZE;
        self.after = page.last().map(|e| (e.ts_ms, e.id.clone()));
        Ok(Some(page))
    }
}

/// The workspace an analytics request reads: a read key's own, or, with a session, the
/// `workspace` parameter's, if the caller is a member (404 otherwise, like every foreign id).
pub(crate) async fn reader(
    s: &QueryState,
    headers: &HeaderMap,
    workspace: Option<&str>,
) -> Result<Workspace, ApiError> {
    if headers.contains_key(axum::http::header::AUTHORIZATION) || !auth::has_session_cookie(headers)
    {
        let (key, ws) = s.gate.api_key(headers, Scope::Read).await?;
        s.limits.caller(&format!("key:{}", key.id))?;
        if workspace.is_some_and(|w| w != ws.id.as_str()) {
            return Err(ApiError::NotFound(
                "a read key reads only its own workspace".into(),
            ));
        }
        return Ok(ws);
    }
    let who = s.gate.session(headers).await?;
    s.limits.caller(&format!("user:{}", who.user.id))?;
    let workspace = workspace.ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::MissingWorkspace,
            "with a session, say which workspace: `?workspace=ws_…`",
        )
    })?;
    let (ws, m) = s.gate.membership(&who, workspace).await?;
    auth::require(m.role, Action::Read)?;
    Ok(ws)
}

/// What a request groups by: a built-in dimension, or one of the workspace's tag keys
/// (`tag:team`), which is known only once the workspace is.
#[derive(Debug, Clone)]
pub(crate) enum By {
    Dimension(Dimension),
    Tag(String),
}

/// A grouping resolved against the workspace: its dimension, and for a tag its key (whose view
/// starts at `since_hour`).
#[derive(Debug, Clone)]
pub(crate) struct Grouping {
    pub dimension: Dimension,
    pub tag: Option<llmtrack_shared::domain::tags::TagKey>,
}

impl Grouping {
    /// The first hour to read: a tag's view holds nothing of this key before it was declared
    /// (and may hold an earlier key's values).
    pub fn first_hour(&self, from_hour: i64) -> i64 {
        self.tag
            .as_ref()
            .map_or(from_hour, |t| from_hour.max(t.since_hour))
    }

    pub fn tag_view(&self) -> Option<llmtrack_shared::domain::tags::TagKeyView> {
        self.tag
            .as_ref()
            .map(llmtrack_shared::domain::tags::TagKeyView::of)
    }
}

impl By {
    pub fn resolve(&self, ws: &Workspace) -> Result<Grouping, ApiError> {
        match self {
            By::Dimension(d) => Ok(Grouping {
                dimension: *d,
                tag: None,
            }),
            By::Tag(key) => {
                let t = ws.tags.get(key).ok_or_else(|| {
                    let declared: Vec<String> =
                        ws.tags.keys.iter().map(|k| format!("tag:{}", k.key)).collect();
                    ApiError::bad_request(
                        ErrorCode::InvalidDimension,
                        if declared.is_empty() {
                            format!("`tag:{key}`: this workspace declares no tag keys (settings, or PUT /v1/workspaces/{{id}}/tags)")
                        } else {
                            format!("`tag:{key}` is not one of this workspace's tag keys: {}", declared.join(", "))
                        },
                    )
                })?;
                Ok(Grouping {
                    dimension: t.dimension(),
                    tag: Some(t.clone()),
                })
            }
        }
    }
}

pub(crate) fn parse_dimension(field: &str, value: &str) -> Result<By, ApiError> {
    if let Some(key) = value.strip_prefix("tag:") {
        return Ok(By::Tag(key.to_owned()));
    }
    Dimension::parse(value)
        .filter(|d| Dimension::BUILT_IN.contains(d) && *d != Dimension::Total)
        .map(By::Dimension)
        .ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidDimension,
                format!("`{field}` must be one of provider, model, model_sent, feature, source, status, user, or tag:<key> for a tag key; got `{value}`"),
            )
        })
}

pub(crate) fn parse_metric(field: &str, value: &str) -> Result<analytics::Metric, ApiError> {
    analytics::Metric::parse(value).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidMetric,
            format!(
                "`{field}` must be one of {}; got `{value}`",
                analytics::Metric::names()
            ),
        )
    })
}
