//! Summaries, time series, breakdowns and end-users.

use std::collections::BTreeMap;

use crate::ReadErrors;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use llmtrack_shared::domain::analytics::{self, Granularity, Metric};
use llmtrack_shared::domain::rollup::{Dimension, Rollup};
use llmtrack_shared::domain::time::{HOUR_MS, rfc3339};
use llmtrack_shared::extract::Query;
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    By, Covered, Grouping, QueryScope, QueryState, ask, parse_dimension, parse_metric, rows,
};
use llmtrack_shared::domain::tags::TagKeyView;

#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    pub reasoning: u64,
    pub total: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Latency {
    /// Milliseconds, within 1% of the exact percentile; null when no event carried a latency.
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    /// How many events carried a latency.
    pub count: u64,
}

/// Every metric of a set of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct Metrics {
    pub requests: u64,
    pub errors: u64,
    /// errors / requests; null when there were no requests.
    pub error_rate: Option<f64>,
    pub tokens: Tokens,
    /// Cost of the priced events, in USD.
    pub cost_usd: f64,
    /// Events whose cost is unknown (no `cost_usd` sent and no price for the model): never
    /// counted as $0.
    pub unpriced: u64,
    pub latency_ms: Latency,
    pub provider_reported: ProviderReported,
}

/// The events whose cost the provider reported (`provider_cost_usd`) and whose tokens LLMtrack
/// prices too: what the provider charged beside what LLMtrack computes for the same events.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderReported {
    pub events: u64,
    /// The providers' cost, in USD (part of `cost_usd`).
    pub cost_usd: f64,
    /// LLMtrack's cost for the same events, from their tokens and the prices in force.
    pub computed_usd: f64,
    /// `cost_usd - computed_usd`: positive when providers charged more.
    pub difference_usd: f64,
    /// `difference_usd / computed_usd`; null when nothing was computed.
    pub difference_rate: Option<f64>,
}

impl ProviderReported {
    fn of(r: &Rollup) -> ProviderReported {
        let p = &r.reported;
        let difference = p.cost_pico.saturating_sub(p.computed_pico);
        ProviderReported {
            events: p.events,
            cost_usd: p.cost_pico as f64 / 1e12,
            computed_usd: p.computed_pico as f64 / 1e12,
            difference_usd: difference as f64 / 1e12,
            difference_rate: (p.computed_pico != 0)
                .then(|| difference as f64 / p.computed_pico as f64),
        }
    }
}

impl Metrics {
    pub fn of(r: &Rollup) -> Metrics {
        Metrics {
            requests: r.requests,
            errors: r.errors,
            error_rate: Metric::ErrorRate.value(r),
            tokens: Tokens {
                input: r.input_tokens,
                output: r.output_tokens,
                cached_input: r.cached_input_tokens,
                cache_write: r.cache_write_tokens,
                reasoning: r.reasoning_tokens,
                total: r.input_tokens + r.output_tokens,
            },
            cost_usd: r.cost_pico as f64 / 1e12,
            unpriced: r.unpriced,
            latency_ms: Latency {
                p50: Metric::LatencyP50.value(r),
                p90: Metric::LatencyP90.value(r),
                p95: Metric::LatencyP95.value(r),
                p99: Metric::LatencyP99.value(r),
                count: r.latency.count(),
            },
            provider_reported: ProviderReported::of(r),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Previous {
    pub from: String,
    pub to: String,
    /// True when part of the previous period is older than the plan's history window.
    pub clamped: bool,
    pub metrics: Metrics,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub covered: Covered,
    pub metrics: Metrics,
    /// The period of the same length just before; null when it lies wholly outside the plan's
    /// history window.
    pub previous: Option<Previous>,
    /// Per metric name (`requests`, `cost_usd`, `latency_p95`, ...): the relative change
    /// against the previous period (0.25 = +25%); null where the previous value is 0 or
    /// undefined.
    pub change: BTreeMap<String, Option<f64>>,
}

/// Totals for a range, with the change against the previous period of the same length.
#[utoipa::path(
    get,
    path = "/v1/stats/summary",
    tag = "analytics",
    params(QueryScope),
    responses(
        (status = 200, description = "Totals for the range", body = Summary),
        ReadErrors,
    ),
    security(("api_key" = []), ("session" = []))
)]
pub async fn summary(
    State(s): State<QueryState>,
    headers: HeaderMap,
    Query(q): Query<QueryScope>,
) -> Result<Json<Summary>, ApiError> {
    let a = ask(&s, &headers, &q, Some(Granularity::Day)).await?;
    let (current, answered) = rows(&s, &a, Dimension::Total, a.from_hour, a.to_hour).await?;
    let current = analytics::total(&current);
    let len = a.to_hour - a.from_hour;
    let first = crate::first_visible_hour(&a.ws, s.clock.now_ms());
    let (prev_from, prev_to) = ((a.from_hour - len).max(first), a.from_hour);
    let previous = if prev_from < prev_to {
        let (prev, _) = rows(&s, &a, Dimension::Total, prev_from, prev_to).await?;
        Some((analytics::total(&prev), a.from_hour - len < first))
    } else {
        None
    };
    let change = Metric::ALL
        .into_iter()
        .map(|m| {
            let c = previous.as_ref().and_then(|(p, _)| {
                let (now, before) = (m.value(&current)?, m.value(p)?);
                (before != 0.0).then(|| (now - before) / before)
            });
            (m.as_str().to_owned(), c)
        })
        .collect();
    Ok(Json(Summary {
        covered: a.covered(answered),
        metrics: Metrics::of(&current),
        previous: previous.map(|(p, clamped)| Previous {
            from: rfc3339(prev_from * HOUR_MS),
            to: rfc3339(prev_to * HOUR_MS),
            clamped,
            metrics: Metrics::of(&p),
        }),
        change,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// The metric to chart (default `cost_usd`).
    #[param(value_type = Option<Metric>)]
    pub metric: Option<String>,
    /// `hour` (ranges up to 31 days) or `day` (up to 366 days, in the workspace's timezone).
    /// Default: `hour` for ranges up to 2 days, else `day`.
    #[param(value_type = Option<Granularity>)]
    pub granularity: Option<String>,
    /// Split into one series per value of this dimension: `provider`, `model`, `model_sent`,
    /// `feature`, `source`, `status`, `user`, or `tag:<key>` for one of the workspace's tag keys.
    #[param(example = "model")]
    pub by: Option<String>,
    /// With `by`: how many series to keep, ranked by the metric over the range (default 5, at
    /// most 20); the rest are folded into `other`.
    pub top: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Series {
    /// The dimension's value ("" for events without one); absent for the unsplit series.
    pub value: Option<String>,
    /// The metric over the whole range.
    pub total: Option<f64>,
    /// One point per bucket; null where the metric is undefined (no events, no latencies).
    pub points: Vec<Option<f64>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeseries {
    pub covered: Covered,
    pub metric: Metric,
    pub granularity: Granularity,
    /// The dimension split by; `tag1` to `tag3` for a tag key (see `tag`).
    pub by: Option<Dimension>,
    /// When split by a tag key: the key, its values and whether some counted under `(other)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<TagKeyView>,
    /// Bucket labels: RFC 3339 hour starts (UTC), or local dates `YYYY-MM-DD`.
    pub buckets: Vec<String>,
    pub series: Vec<Series>,
    /// Every value beyond the top N, merged; absent when nothing was folded.
    pub other: Option<Series>,
}

const MAX_TOP: usize = 20;

/// A metric per hour or per day, optionally split by one dimension.
#[utoipa::path(
    get,
    path = "/v1/stats/timeseries",
    tag = "analytics",
    params(QueryScope, SeriesParams),
    responses(
        (status = 200, description = "The series", body = Timeseries),
        ReadErrors,
    ),
    security(("api_key" = []), ("session" = []))
)]
pub async fn timeseries(
    State(s): State<QueryState>,
    headers: HeaderMap,
    Query(q): Query<QueryScope>,
    Query(p): Query<SeriesParams>,
) -> Result<Json<Timeseries>, ApiError> {
    let metric = parse_metric("metric", p.metric.as_deref().unwrap_or("cost_usd"))?;
    let by =
        p.by.as_deref()
            .map(|b| parse_dimension("by", b))
            .transpose()?;
    let top = p.top.unwrap_or(5);
    if top == 0 || top > MAX_TOP {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidTop,
            format!("`top` must be between 1 and {MAX_TOP}, got {top}"),
        ));
    }
    let granularity = match p.granularity.as_deref() {
        Some("hour") => Some(Granularity::Hour),
        Some("day") => Some(Granularity::Day),
        None => None,
        Some(other) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidGranularity,
                format!("`granularity` must be `hour` or `day`, got `{other}`"),
            ));
        }
    };
    let a = ask(&s, &headers, &q, granularity).await?;
    let granularity = a.granularity;
    let grouping = by.map(|b| b.resolve(&a.ws)).transpose()?;
    let by = grouping.as_ref().map(|g| g.dimension);
    let (rows, answered) = rows(
        &s,
        &a,
        by.unwrap_or(Dimension::Total),
        grouping
            .as_ref()
            .map_or(a.from_hour, |g| g.first_hour(a.from_hour)),
        a.to_hour,
    )
    .await?;
    let buckets = analytics::buckets(a.from_hour, a.to_hour, granularity, a.tz);
    let index: BTreeMap<analytics::Bucket, usize> =
        buckets.iter().enumerate().map(|(i, b)| (*b, i)).collect();

    // Per value, per bucket.
    let mut cells: BTreeMap<String, Vec<Rollup>> = BTreeMap::new();
    for (hour, value, r) in &rows {
        let i = index[&analytics::bucket_of(*hour, granularity, a.tz)];
        cells
            .entry(value.clone())
            .or_insert_with(|| vec![Rollup::default(); buckets.len()])[i]
            .merge(r);
    }
    let series_of = |value: Option<String>, cells: &[Rollup]| {
        let mut total = Rollup::default();
        for c in cells {
            total.merge(c);
        }
        Series {
            value,
            total: metric.value(&total),
            points: cells.iter().map(|c| metric.value(c)).collect(),
        }
    };
    let (series, other) = match by {
        None => {
            let cells = cells
                .remove("")
                .unwrap_or_else(|| vec![Rollup::default(); buckets.len()]);
            (vec![series_of(None, &cells)], None)
        }
        Some(_) => {
            let totals = cells
                .iter()
                .map(|(v, c)| {
                    let mut t = Rollup::default();
                    c.iter().for_each(|x| t.merge(x));
                    (v.clone(), t)
                })
                .collect();
            let ranked = analytics::ranked(totals, metric, true);
            let mut series = Vec::new();
            let mut rest: Option<Vec<Rollup>> = None;
            for (i, (value, _)) in ranked.into_iter().enumerate() {
                let c = &cells[&value];
                if i < top {
                    series.push(series_of(Some(value), c));
                } else {
                    let acc = rest.get_or_insert_with(|| vec![Rollup::default(); buckets.len()]);
                    acc.iter_mut().zip(c).for_each(|(a, x)| a.merge(x));
                }
            }
            (series, rest.map(|c| series_of(Some("other".into()), &c)))
        }
    };
    Ok(Json(Timeseries {
        covered: a.covered(answered),
        metric,
        granularity,
        by,
        tag: grouping.as_ref().and_then(Grouping::tag_view),
        buckets: buckets.iter().map(analytics::Bucket::label).collect(),
        series,
        other,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TableParams {
    /// The dimension of the rows: `provider`, `model`, `model_sent`, `feature`, `source`,
    /// `status`, `user`, or `tag:<key>` for one of the workspace's tag keys.
    #[param(example = "feature")]
    pub by: String,
    /// The metric rows are sorted by (default `cost_usd`).
    #[param(value_type = Option<Metric>)]
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    #[param(value_type = Option<llmtrack_shared::domain::analytics::SortOrder>)]
    pub order: Option<String>,
    /// At most this many rows (default 100, at most 1000).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TableRow {
    /// The dimension's value ("" for events without one).
    pub value: String,
    pub metrics: Metrics,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Breakdown {
    pub covered: Covered,
    /// The rows' dimension; `tag1` to `tag3` for a tag key (see `tag`).
    pub by: Dimension,
    /// When by a tag key: the key, its values and whether some counted under `(other)` (past
    /// the key's bound of values); `""` is events without the tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<TagKeyView>,
    pub sort: Metric,
    pub rows: Vec<TableRow>,
    /// How many values there were before `limit`.
    pub total_rows: usize,
}

pub const MAX_TABLE_ROWS: usize = 1000;

pub(crate) struct TableAsk {
    pub by: By,
    pub sort: Metric,
    pub descending: bool,
    pub limit: usize,
}

impl TableAsk {
    pub fn parse(p: &TableParams, default_limit: usize) -> Result<TableAsk, ApiError> {
        let limit = p.limit.unwrap_or(default_limit);
        if limit == 0 || limit > MAX_TABLE_ROWS {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidLimit,
                format!("`limit` must be between 1 and {MAX_TABLE_ROWS}, got {limit}"),
            ));
        }
        Ok(TableAsk {
            by: parse_dimension("by", &p.by)?,
            sort: parse_metric("sort", p.sort.as_deref().unwrap_or("cost_usd"))?,
            descending: match p.order.as_deref() {
                None | Some("desc") => true,
                Some("asc") => false,
                Some(o) => {
                    return Err(ApiError::bad_request(
                        ErrorCode::InvalidOrder,
                        format!("`order` must be `asc` or `desc`, got `{o}`"),
                    ));
                }
            },
            limit,
        })
    }
}

/// Every row of a table, sorted: shared by the endpoint and the export.
pub(crate) async fn table(
    s: &QueryState,
    q: &QueryScope,
    headers: &HeaderMap,
    t: &TableAsk,
) -> Result<(crate::Ask, Grouping, Vec<(String, Rollup)>, &'static str), ApiError> {
    let a = ask(s, headers, q, Some(Granularity::Day)).await?;
    let g = t.by.resolve(&a.ws)?;
    let (rows, answered) = rows(s, &a, g.dimension, g.first_hour(a.from_hour), a.to_hour).await?;
    let ranked = analytics::ranked(analytics::by_value(&rows), t.sort, t.descending);
    Ok((a, g, ranked, answered))
}

/// A table by one dimension, sorted by any metric, with every metric per row.
#[utoipa::path(
    get,
    path = "/v1/stats/breakdown",
    tag = "analytics",
    params(QueryScope, TableParams),
    responses(
        (status = 200, description = "The table", body = Breakdown),
        ReadErrors,
    ),
    security(("api_key" = []), ("session" = []))
)]
pub async fn breakdown(
    State(s): State<QueryState>,
    headers: HeaderMap,
    Query(q): Query<QueryScope>,
    Query(p): Query<TableParams>,
) -> Result<Json<Breakdown>, ApiError> {
    let t = TableAsk::parse(&p, 100)?;
    let (a, g, ranked, answered) = table(&s, &q, &headers, &t).await?;
    Ok(Json(Breakdown {
        covered: a.covered(answered),
        by: g.dimension,
        tag: g.tag_view(),
        sort: t.sort,
        total_rows: ranked.len(),
        rows: ranked
            .into_iter()
            .take(t.limit)
            .map(|(value, r)| TableRow {
                value,
                metrics: Metrics::of(&r),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersParams {
    /// `cost_usd` (default), `requests`, or any other metric.
    #[param(value_type = Option<Metric>)]
    pub sort: Option<String>,
    /// At most this many end-users (default 20, at most 1000).
    pub limit: Option<usize>,
}

/// The end-users who drive usage: a breakdown by `user`, largest first.
#[utoipa::path(
    get,
    path = "/v1/stats/users",
    tag = "analytics",
    params(QueryScope, UsersParams),
    responses(
        (status = 200, description = "Top end-users", body = Breakdown),
        ReadErrors,
    ),
    security(("api_key" = []), ("session" = []))
)]
pub async fn users(
    state: State<QueryState>,
    headers: HeaderMap,
    q: Query<QueryScope>,
    Query(p): Query<UsersParams>,
) -> Result<Json<Breakdown>, ApiError> {
    let table = TableParams {
        by: "user".into(),
        sort: p.sort,
        order: None,
        limit: Some(p.limit.unwrap_or(20)),
    };
    breakdown(state, headers, q, Query(table)).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserUsage {
    pub user: String,
    pub covered: Covered,
    pub metrics: Metrics,
    /// Daily cost (USD) in the workspace's timezone.
    pub days: Vec<String>,
    pub daily_cost_usd: Vec<Option<f64>>,
}

/// One end-user's usage over the range.
#[utoipa::path(
    get,
    path = "/v1/stats/users/{user_id}",
    tag = "analytics",
    params(("user_id" = String, Path, description = "The end-user id your app sends"), QueryScope),
    responses(
        (status = 200, description = "The end-user's usage", body = UserUsage),
        ReadErrors,
    ),
    security(("api_key" = []), ("session" = []))
)]
pub async fn user(
    State(s): State<QueryState>,
    headers: HeaderMap,
    Path(user): Path<String>,
    Query(mut q): Query<QueryScope>,
) -> Result<Json<UserUsage>, ApiError> {
    q.user = Some(user.clone());
    let a = ask(&s, &headers, &q, Some(Granularity::Day)).await?;
    let (rows, answered) = rows(&s, &a, Dimension::Total, a.from_hour, a.to_hour).await?;
    let buckets = analytics::buckets(a.from_hour, a.to_hour, Granularity::Day, a.tz);
    let mut daily = vec![Rollup::default(); buckets.len()];
    for (hour, _, r) in &rows {
        let b = analytics::bucket_of(*hour, Granularity::Day, a.tz);
        if let Some(i) = buckets.iter().position(|x| *x == b) {
            daily[i].merge(r);
        }
    }
    Ok(Json(UserUsage {
        user,
        covered: a.covered(answered),
        metrics: Metrics::of(&analytics::total(&rows)),
        days: buckets.iter().map(analytics::Bucket::label).collect(),
        daily_cost_usd: daily.iter().map(|d| Metric::CostUsd.value(d)).collect(),
    }))
}
