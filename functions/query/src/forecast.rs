//! The month-end forecast of cost and events (method: `domain::forecast`).

use std::collections::BTreeMap;

use crate::ReadErrors;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use chrono::{Duration, NaiveDate};
use llmtrack_shared::ApiError;
use llmtrack_shared::domain::analytics::{
    self, Bucket, Filters, Granularity, local_midnight, month_start,
};
use llmtrack_shared::domain::forecast::{Projection, month_end};
use llmtrack_shared::domain::rollup::{Dimension, Rollup};
use llmtrack_shared::domain::time::{HOUR_MS, hour_of, to_datetime};
use llmtrack_shared::extract::Query;
use llmtrack_shared::ports::Workspace;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{QueryState, WorkspaceParam, first_visible_hour, reader, rows_of, zone};

/// Complete days before the month that inform the level and the weekday pattern.
const HISTORY_DAYS: i64 = 56;

#[derive(Debug, Serialize, ToSchema)]
pub struct Forecast {
    /// The month forecast, `YYYY-MM`, in the workspace's timezone.
    pub month: String,
    pub timezone: String,
    pub cost_usd: Projection,
    pub events: Projection,
    /// How much of the month has passed, in days.
    pub days_elapsed: f64,
    pub days_in_month: u32,
    /// Complete days before the month that the forecast learned from.
    pub history_days: usize,
    /// True when the plan's history window hid some of the 8 weeks the method uses.
    pub clamped: bool,
    /// Expected is the month so far plus, per remaining day, a robust recent level times that
    /// weekday's factor (with a damped trend); low and high bound an 80% interval.
    pub method: &'static str,
}

/// Projects this month's total cost and events, with an 80% interval.
#[utoipa::path(
    get,
    path = "/v1/stats/forecast",
    tag = "analytics",
    params(WorkspaceParam),
    responses(
        (status = 200, description = "The month-end projection", body = Forecast),
        ReadErrors,
    ),
    security(("api_key" = []), ("session" = []))
)]
pub async fn forecast(
    State(s): State<QueryState>,
    headers: HeaderMap,
    Query(q): Query<WorkspaceParam>,
) -> Result<Json<Forecast>, ApiError> {
    let ws = reader(&s, &headers, q.workspace.as_deref()).await?;
    Ok(Json(project(&s, &ws, &Filters::default()).await?))
}

/// The month-end projection of a slice of the workspace's traffic (all of it with no filters):
/// the route's answer, and each month budget's forecast.
pub(crate) async fn project(
    s: &QueryState,
    ws: &Workspace,
    filters: &Filters,
) -> Result<Forecast, ApiError> {
    let tz = zone(ws, None)?;
    let now = s.clock.now_ms();
    let today = to_datetime(now).with_timezone(&tz).date_naive();
    let month_first = to_datetime(month_start(now, tz, 0))
        .with_timezone(&tz)
        .date_naive();
    let next_month_first = to_datetime(month_start(now, tz, 1))
        .with_timezone(&tz)
        .date_naive();
    let history_first = month_first - Duration::days(HISTORY_DAYS);
    let first_hour = first_visible_hour(ws, now);
    let wanted_from = hour_of(local_midnight(history_first, tz));
    let from_hour = wanted_from.max(first_hour);
    let (rows, _) = rows_of(
        &s.store,
        &ws.id,
        filters,
        Dimension::Total,
        from_hour,
        hour_of(now) + 1,
    )
    .await?;
    let mut daily: BTreeMap<NaiveDate, Rollup> = BTreeMap::new();
    for (hour, _, r) in &rows {
        if let Bucket::Day(d) = analytics::bucket_of(*hour, Granularity::Day, tz) {
            daily.entry(d).or_default().merge(r);
        }
    }
    // A day counts as history only when the plan shows all of it.
    let first_whole_day = to_datetime(first_hour * HOUR_MS)
        .with_timezone(&tz)
        .date_naive()
        + Duration::days(1);
    let first_history = history_first.max(first_whole_day.min(month_first));
    let start_today = local_midnight(today, tz);
    let end_today = local_midnight(today + Duration::days(1), tz);
    let fraction = (now - start_today) as f64 / (end_today - start_today).max(1) as f64;
    let cost = |r: &Rollup| r.cost_pico as f64 / 1e12;
    let events = |r: &Rollup| r.requests as f64;
    let history_days = (month_first - first_history).num_days().max(0) as usize;
    let projected = |f: fn(&Rollup) -> f64| {
        month_end(
            |d: NaiveDate| daily.get(&d).map_or(0.0, f),
            first_history,
            month_first,
            today,
            fraction,
            next_month_first,
        )
    };
    Ok(Forecast {
        month: month_first.format("%Y-%m").to_string(),
        timezone: ws.timezone.clone(),
        cost_usd: projected(cost),
        events: projected(events),
        days_elapsed: (today - month_first).num_days() as f64 + fraction,
        days_in_month: (next_month_first - month_first).num_days() as u32,
        history_days,
        clamped: wanted_from < first_hour,
        method: "month so far + per remaining day a robust recent level x weekday factor (damped trend); 80% interval from one-day-ahead errors",
    })
}
