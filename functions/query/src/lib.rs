//! The query function: analytics read from rollups. This first slice answers
//! `GET /v1/stats/summary` for a `read` key; the full query function grows here.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use llmtrack_shared::ApiError;
use llmtrack_shared::auth;
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::rollup::{Dimension, Rollup};
use llmtrack_shared::domain::time::{HOUR_MS, hour_of, rfc3339};
use llmtrack_shared::ports::{DynClock, DynStore};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Clone)]
pub struct QueryState {
    pub store: DynStore,
    pub clock: DynClock,
}

fn routes() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new().routes(routes!(summary))
}

/// The analytics routes.
pub fn router(state: QueryState) -> OpenApiRouter {
    routes().with_state(state)
}

/// The analytics part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// Longest range one summary may cover (the longest plan history).
const MAX_RANGE_MS: i64 = 366 * 24 * HOUR_MS;

#[derive(Debug, Deserialize, IntoParams)]
pub struct RangeParams {
    /// Start (RFC 3339, or `last_24h`, `last_7d`, `last_30d`). Default: 24 hours before `to`.
    pub from: Option<String>,
    /// End (RFC 3339). Default: now.
    pub to: Option<String>,
    /// With a session: which of your workspaces. (A read key reads its own workspace.)
    pub workspace: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Latency {
    /// Milliseconds, within 1% of the exact percentile; null when no event carried a latency.
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    /// How many events carried a latency.
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    /// The range actually covered: whole UTC hours, clamped to the plan's history window.
    pub from: String,
    pub to: String,
    /// True when `from` was moved forward to the start of the plan's history window.
    pub clamped: bool,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: f64,
    pub tokens: Tokens,
    /// Cost of the priced events, in USD.
    pub cost_usd: f64,
    /// Events whose cost is unknown (no `cost_usd` sent and no price for the model).
    pub unpriced: u64,
    pub latency_ms: Latency,
}

/// Totals for a time range, read from hourly rollups.
#[utoipa::path(
    get,
    path = "/v1/stats/summary",
    tag = "analytics",
    params(RangeParams),
    responses(
        (status = 200, description = "Totals for the range", body = Summary),
        (status = 400, description = "Invalid range", body = llmtrack_shared::error::ErrorBody),
        (status = 401, description = "Missing, unknown or deactivated key", body = llmtrack_shared::error::ErrorBody),
        (status = 403, description = "The key's scope is not `read`", body = llmtrack_shared::error::ErrorBody),
    ),
    security(("api_key" = []))
)]
async fn summary(
    State(s): State<QueryState>,
    headers: HeaderMap,
    Query(p): Query<RangeParams>,
) -> Result<Json<Summary>, ApiError> {
    let workspace = reader(&s, &headers, p.workspace.as_deref()).await?;
    let now = s.clock.now_ms();
    let to = match p.to.as_deref() {
        Some(t) => parse_time("to", t)?,
        None => now,
    };
    let from = match p.from.as_deref() {
        None => to - 24 * HOUR_MS,
        Some("last_24h") => now - 24 * HOUR_MS,
        Some("last_7d") => now - 7 * 24 * HOUR_MS,
        Some("last_30d") => now - 30 * 24 * HOUR_MS,
        Some(f) => parse_time("from", f)?,
    };
    if from >= to {
        return Err(ApiError::bad_request(
            "invalid_range",
            "`from` must be before `to`",
        ));
    }
    if to - from > MAX_RANGE_MS {
        return Err(ApiError::bad_request(
            "invalid_range",
            "the range is longer than 366 days",
        ));
    }
    // Nothing older than the plan's history window is shown, even if the store still holds it.
    let window_start = now - workspace.plan.history_ms();
    let clamped = from < window_start;
    let from = from.max(window_start);
    let (from_hour, to_hour) = (hour_of(from), hour_of(to - 1) + 1);
    let rows = s
        .store
        .rollups(&workspace.id, Dimension::Total, from_hour, to_hour)
        .await?;
    let mut total = Rollup::default();
    for (_, r) in &rows {
        total.merge(r);
    }
    Ok(Json(Summary {
        from: rfc3339(from_hour * HOUR_MS),
        to: rfc3339(to_hour * HOUR_MS),
        clamped,
        requests: total.requests,
        errors: total.errors,
        error_rate: if total.requests == 0 {
            0.0
        } else {
            total.errors as f64 / total.requests as f64
        },
        tokens: Tokens {
            input: total.input_tokens,
            output: total.output_tokens,
            cached_input: total.cached_input_tokens,
            cache_write: total.cache_write_tokens,
            reasoning: total.reasoning_tokens,
        },
        cost_usd: total.cost_pico as f64 / 1e12,
        unpriced: total.unpriced,
        latency_ms: Latency {
            p50: total.latency.quantile(0.50),
            p95: total.latency.quantile(0.95),
            p99: total.latency.quantile(0.99),
            count: total.latency.count(),
        },
    }))
}

/// The workspace an analytics request reads: a read key's own, or, with a session, the
/// `workspace` parameter's, if the caller is a member (404 otherwise, like every foreign id).
async fn reader(
    s: &QueryState,
    headers: &HeaderMap,
    workspace: Option<&str>,
) -> Result<llmtrack_shared::ports::Workspace, ApiError> {
    if headers.contains_key(axum::http::header::AUTHORIZATION) || !auth::has_session_cookie(headers)
    {
        let (_, ws) = auth::api_key(&s.store, &s.clock, headers, Scope::Read).await?;
        if workspace.is_some_and(|w| w != ws.id.as_str()) {
            return Err(ApiError::NotFound(
                "a read key reads only its own workspace".into(),
            ));
        }
        return Ok(ws);
    }
    let who = auth::session(&s.store, &s.clock, headers).await?;
    let workspace = workspace.ok_or_else(|| {
        ApiError::bad_request(
            "missing_workspace",
            "with a session, say which workspace: `?workspace=ws_…`",
        )
    })?;
    let (ws, m) = auth::membership(&s.store, workspace, &who.user.id).await?;
    auth::require(m.role, llmtrack_shared::domain::access::Action::Read)?;
    Ok(ws)
}

fn parse_time(field: &str, value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_time",
                format!(
                    "`{field}` must be an RFC 3339 time such as 2026-11-27T00:00:00Z, got `{value}`"
                ),
            )
        })
}
