//! Analytics: what a query asks (metrics, dimensions, filters, ranges, buckets) and how it is
//! answered. Pure code; the query function feeds it rollups or raw events from the store.
//!
//! Every question is reduced to rows of `(hour, value, Rollup)`: from one rollup view when a view
//! answers it (`plan`), otherwise folded from raw events (`fold_events`). The same code then
//! builds summaries, series and tables from the rows, so both paths give identical answers.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::event::Event;
use super::rollup::{Dimension, Rollup, VIEWS, View};
use super::time::{HOUR_MS, hour_of};

/// Longest range per granularity: 31 days of hours (744 points), 366 days of days.
pub const MAX_HOURLY_RANGE_MS: i64 = 31 * 24 * HOUR_MS;
pub const MAX_DAILY_RANGE_MS: i64 = 366 * 24 * HOUR_MS;

/// A number computed from a rollup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Requests,
    Errors,
    ErrorRate,
    InputTokens,
    OutputTokens,
    CachedInputTokens,
    CacheWriteTokens,
    ReasoningTokens,
    TotalTokens,
    CostUsd,
    Unpriced,
    LatencyP50,
    LatencyP90,
    LatencyP95,
    LatencyP99,
}

impl Metric {
    pub const ALL: [Metric; 15] = [
        Metric::Requests,
        Metric::Errors,
        Metric::ErrorRate,
        Metric::InputTokens,
        Metric::OutputTokens,
        Metric::CachedInputTokens,
        Metric::CacheWriteTokens,
        Metric::ReasoningTokens,
        Metric::TotalTokens,
        Metric::CostUsd,
        Metric::Unpriced,
        Metric::LatencyP50,
        Metric::LatencyP90,
        Metric::LatencyP95,
        Metric::LatencyP99,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Requests => "requests",
            Metric::Errors => "errors",
            Metric::ErrorRate => "error_rate",
            Metric::InputTokens => "input_tokens",
            Metric::OutputTokens => "output_tokens",
            Metric::CachedInputTokens => "cached_input_tokens",
            Metric::CacheWriteTokens => "cache_write_tokens",
            Metric::ReasoningTokens => "reasoning_tokens",
            Metric::TotalTokens => "total_tokens",
            Metric::CostUsd => "cost_usd",
            Metric::Unpriced => "unpriced",
            Metric::LatencyP50 => "latency_p50",
            Metric::LatencyP90 => "latency_p90",
            Metric::LatencyP95 => "latency_p95",
            Metric::LatencyP99 => "latency_p99",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The metric of a rollup; None where it is undefined (a rate of nothing, a percentile of
    /// no latencies), so a chart shows a gap rather than a false zero.
    pub fn value(self, r: &Rollup) -> Option<f64> {
        let count = |n: u64| Some(n as f64);
        match self {
            Metric::Requests => count(r.requests),
            Metric::Errors => count(r.errors),
            Metric::ErrorRate => (r.requests > 0).then(|| r.errors as f64 / r.requests as f64),
            Metric::InputTokens => count(r.input_tokens),
            Metric::OutputTokens => count(r.output_tokens),
            Metric::CachedInputTokens => count(r.cached_input_tokens),
            Metric::CacheWriteTokens => count(r.cache_write_tokens),
            Metric::ReasoningTokens => count(r.reasoning_tokens),
            Metric::TotalTokens => count(r.input_tokens + r.output_tokens),
            Metric::CostUsd => Some(r.cost_pico as f64 / 1e12),
            Metric::Unpriced => count(r.unpriced),
            Metric::LatencyP50 => r.latency.quantile(0.50),
            Metric::LatencyP90 => r.latency.quantile(0.90),
            Metric::LatencyP95 => r.latency.quantile(0.95),
            Metric::LatencyP99 => r.latency.quantile(0.99),
        }
    }

    pub fn names() -> String {
        Metric::ALL.map(Metric::as_str).join(", ")
    }
}

/// Filters: at most one value per dimension (`Total` is never a filter).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<Dimension, String>);

impl Filters {
    pub fn matches(&self, e: &Event) -> bool {
        self.0.iter().all(|(d, v)| d.value_of(e) == v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How a rollup view answers a question: read `view`, keeping only the rows whose value is
/// `keep` when set (a filter on the view's own dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub view: View,
    pub keep: Option<String>,
}

/// The view that answers "group `by` (Total: no grouping), with these filters", if one does.
/// Answered from rollups: any one dimension, alone or with a filter on itself; any dimension
/// for one feature or one source; one feature and one source together. Everything else is
/// folded from raw events.
pub fn plan(by: Dimension, filters: &Filters) -> Option<Plan> {
    for (within, b) in VIEWS {
        if by != Dimension::Total && by != b {
            continue;
        }
        if filters.0.keys().any(|d| *d != within && *d != b) {
            continue;
        }
        let view = if within == Dimension::Total {
            View::of(b)
        } else {
            match filters.0.get(&within) {
                Some(v) => View::within(b, within, v.clone()),
                None => continue,
            }
        };
        // Grouping by Total reads one value per row only when nothing else is grouped.
        if by == Dimension::Total && b != Dimension::Total && !filters.0.contains_key(&b) {
            continue;
        }
        return Some(Plan {
            view,
            keep: filters.0.get(&b).cloned(),
        });
    }
    None
}

/// One row of an answer: a UTC hour, the grouped dimension's value ("" when not grouped).
pub type Row = (i64, String, Rollup);

/// Rows from a rollup view, applying the plan's `keep` and relabelling to the grouping asked.
pub fn rows_from_rollups(
    plan: &Plan,
    by: Dimension,
    rollups: impl IntoIterator<Item = (i64, String, Rollup)>,
) -> Vec<Row> {
    rollups
        .into_iter()
        .filter(|(_, v, _)| plan.keep.as_ref().is_none_or(|k| k == v))
        .map(|(h, v, r)| {
            (
                h,
                if by == Dimension::Total {
                    String::new()
                } else {
                    v
                },
                r,
            )
        })
        .collect()
}

/// Rows folded directly from raw events: the answer to any combination, and the reference the
/// rollup path is tested against.
pub fn fold_events<'a>(
    by: Dimension,
    filters: &Filters,
    events: impl IntoIterator<Item = &'a Event>,
) -> Vec<Row> {
    let mut rows: BTreeMap<(i64, &'a str), Rollup> = BTreeMap::new();
    for e in events {
        if filters.matches(e) {
            rows.entry((hour_of(e.ts_ms), by.value_of(e)))
                .or_default()
                .add_event(e);
        }
    }
    rows.into_iter()
        .map(|((h, v), r)| (h, v.to_owned(), r))
        .collect()
}

/// Everything in the rows, merged.
pub fn total(rows: &[Row]) -> Rollup {
    let mut t = Rollup::default();
    for (_, _, r) in rows {
        t.merge(r);
    }
    t
}

/// Merged per value.
pub fn by_value(rows: &[Row]) -> BTreeMap<String, Rollup> {
    let mut out: BTreeMap<String, Rollup> = BTreeMap::new();
    for (_, v, r) in rows {
        out.entry(v.clone()).or_default().merge(r);
    }
    out
}

/// Sorts values by a metric, largest first (undefined values last, ties by name).
pub fn ranked(
    values: BTreeMap<String, Rollup>,
    metric: Metric,
    descending: bool,
) -> Vec<(String, Rollup)> {
    let mut v: Vec<(String, Rollup)> = values.into_iter().collect();
    v.sort_by(|a, b| {
        let (x, y) = (metric.value(&a.1), metric.value(&b.1));
        let order = match (x, y) {
            (Some(x), Some(y)) => {
                let o = x.total_cmp(&y);
                if descending { o.reverse() } else { o }
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        order.then_with(|| a.0.cmp(&b.0))
    });
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub fn max_range_ms(self) -> i64 {
        match self {
            Granularity::Hour => MAX_HOURLY_RANGE_MS,
            Granularity::Day => MAX_DAILY_RANGE_MS,
        }
    }
}

/// The bucket an hour belongs to: its own start for hourly series; for daily series the local
/// date (in `tz`) of the hour's last millisecond. In zones a whole number of hours from UTC that
/// is exactly the local day; in the few zones offset by a half or quarter hour, a day runs from
/// the start of the UTC hour in which local midnight falls (rollups are hourly).
pub fn bucket_of(hour: i64, granularity: Granularity, tz: Tz) -> Bucket {
    match granularity {
        Granularity::Hour => Bucket::Hour(hour),
        Granularity::Day => {
            let last = (hour + 1) * HOUR_MS - 1;
            Bucket::Day(tz.timestamp_millis_opt(last).single().map_or_else(
                || super::time::to_datetime(last).date_naive(),
                |t| t.date_naive(),
            ))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    Hour(i64),
    Day(NaiveDate),
}

impl Bucket {
    /// The bucket's label: the hour's start as RFC 3339 UTC, or the local date.
    pub fn label(&self) -> String {
        match self {
            Bucket::Hour(h) => super::time::rfc3339(h * HOUR_MS),
            Bucket::Day(d) => d.format("%Y-%m-%d").to_string(),
        }
    }
}

/// Every bucket of `[from_hour, to_hour)`, in order, so a series has no holes.
pub fn buckets(from_hour: i64, to_hour: i64, granularity: Granularity, tz: Tz) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for h in from_hour..to_hour {
        let b = bucket_of(h, granularity, tz);
        if out.last() != Some(&b) {
            out.push(b);
        }
    }
    out
}

/// Why a time range was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error(
        "`{field}` must be an RFC 3339 time such as 2026-11-27T00:00:00Z or one of last_24h, last_7d, last_30d, this_month, last_month; got `{value}`"
    )]
    BadTime { field: &'static str, value: String },
    #[error("`from` must be before `to`")]
    Backwards,
    #[error("the range is longer than {max_days} days, the limit for {granularity} buckets")]
    TooLong {
        max_days: i64,
        granularity: &'static str,
    },
}

/// A time range in UTC milliseconds, half open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Range {
    /// Resolves `from`/`to` (RFC 3339 or relative names) at `now` in the workspace's zone.
    /// A relative `from` sets the whole range (`last_month` ends where this month starts).
    pub fn resolve(
        from: Option<&str>,
        to: Option<&str>,
        now_ms: i64,
        tz: Tz,
        default_ms: i64,
    ) -> Result<Range, RangeError> {
        let to_ms = match to {
            None => now_ms,
            Some(t) => parse_time("to", t)?,
        };
        let (from_ms, to_ms) = match from {
            None => (to_ms - default_ms, to_ms),
            Some("last_24h") => (now_ms - 24 * HOUR_MS, now_ms),
            Some("last_7d") => (now_ms - 7 * 24 * HOUR_MS, now_ms),
            Some("last_30d") => (now_ms - 30 * 24 * HOUR_MS, now_ms),
            Some("this_month") => (month_start(now_ms, tz, 0), now_ms),
            Some("last_month") => (month_start(now_ms, tz, -1), month_start(now_ms, tz, 0)),
            Some(f) => (parse_time("from", f)?, to_ms),
        };
        if from_ms >= to_ms {
            return Err(RangeError::Backwards);
        }
        Ok(Range { from_ms, to_ms })
    }

    pub fn check_length(&self, granularity: Granularity) -> Result<(), RangeError> {
        let max = granularity.max_range_ms();
        if self.to_ms - self.from_ms > max {
            return Err(RangeError::TooLong {
                max_days: max / (24 * HOUR_MS),
                granularity: match granularity {
                    Granularity::Hour => "hour",
                    Granularity::Day => "day",
                },
            });
        }
        Ok(())
    }

    /// Whole UTC hours covering the range: `[from_hour, to_hour)`.
    pub fn hours(&self) -> (i64, i64) {
        (hour_of(self.from_ms), hour_of(self.to_ms - 1) + 1)
    }
}

fn parse_time(field: &'static str, value: &str) -> Result<i64, RangeError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| RangeError::BadTime {
            field,
            value: value.chars().take(64).collect(),
        })
}

/// The first millisecond of the local month `offset` months from the one holding `now_ms`.
pub fn month_start(now_ms: i64, tz: Tz, offset: i32) -> i64 {
    let local = super::time::to_datetime(now_ms).with_timezone(&tz);
    let months = local.year() * 12 + local.month0() as i32 + offset;
    let (y, m) = (months.div_euclid(12), months.rem_euclid(12) as u32 + 1);
    local_midnight(
        NaiveDate::from_ymd_opt(y, m, 1).unwrap_or(local.date_naive()),
        tz,
    )
}

/// The first instant of a local date (a DST gap at midnight moves it to the first valid time).
pub fn local_midnight(date: NaiveDate, tz: Tz) -> i64 {
    let mut t = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..4 {
        if let Some(dt) = tz.from_local_datetime(&t).earliest() {
            return dt.timestamp_millis();
        }
        t += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&t).timestamp_millis()
}

/// Parses an IANA zone name.
pub fn timezone(name: &str) -> Option<Tz> {
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(pairs: &[(Dimension, &str)]) -> Filters {
        Filters(pairs.iter().map(|(d, v)| (*d, (*v).to_owned())).collect())
    }

    #[test]
    fn plans_pick_the_view_that_answers() {
        use Dimension::*;
        let p = plan(Total, &Filters::default()).unwrap();
        assert_eq!(
            p,
            Plan {
                view: View::of(Total),
                keep: None
            }
        );
        let p = plan(Total, &filters(&[(Model, "m")])).unwrap();
        assert_eq!(
            p,
            Plan {
                view: View::of(Model),
                keep: Some("m".into())
            }
        );
        let p = plan(Model, &filters(&[(Feature, "search")])).unwrap();
        assert_eq!(p.view, View::within(Model, Feature, "search"));
        let p = plan(User, &filters(&[(Source, "prod")])).unwrap();
        assert_eq!(p.view, View::within(User, Source, "prod"));
        let p = plan(Total, &filters(&[(Feature, "a"), (Source, "b")])).unwrap();
        assert_eq!(p.keep.as_deref(), Some("b"));
        let p = plan(Model, &filters(&[(Feature, "a"), (Model, "m")])).unwrap();
        assert_eq!(
            (p.view, p.keep.as_deref()),
            (View::within(Model, Feature, "a"), Some("m"))
        );
        // Not in any view: raw events.
        assert_eq!(
            plan(Model, &filters(&[(Feature, "a"), (Source, "b")])),
            None
        );
        assert_eq!(plan(Feature, &filters(&[(Model, "m")])), None);
        assert_eq!(plan(Model, &filters(&[(User, "u")])), None);
    }

    #[test]
    fn days_follow_the_zone_across_dst() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 2026-11-01 is the end of DST in New York: that local day has 25 hours.
        let start = local_midnight(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(), tz);
        let end = local_midnight(NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(), tz);
        assert_eq!((end - start) / HOUR_MS, 25);
        let b = buckets(hour_of(start), hour_of(end), Granularity::Day, tz);
        assert_eq!(
            b,
            vec![Bucket::Day(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap())]
        );
        assert_eq!(
            month_start(end, tz, -1),
            local_midnight(NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(), tz)
        );
        assert_eq!(
            month_start(start, tz, -11),
            local_midnight(NaiveDate::from_ymd_opt(2025, 12, 1).unwrap(), tz)
        );
    }

    #[test]
    fn ranges_resolve_and_refuse() {
        let tz = Tz::UTC;
        let now = 1_800_000_000_000;
        let r = Range::resolve(Some("last_7d"), None, now, tz, HOUR_MS).unwrap();
        assert_eq!(r.to_ms - r.from_ms, 7 * 24 * HOUR_MS);
        assert_eq!(
            Range::resolve(
                Some("2026-01-02T00:00:00Z"),
                Some("2026-01-01T00:00:00Z"),
                now,
                tz,
                0
            ),
            Err(RangeError::Backwards)
        );
        assert!(matches!(
            Range::resolve(Some("yesterday"), None, now, tz, 0),
            Err(RangeError::BadTime { field: "from", .. })
        ));
        let long = Range {
            from_ms: 0,
            to_ms: 32 * 24 * HOUR_MS,
        };
        assert!(long.check_length(Granularity::Hour).is_err());
        assert!(long.check_length(Granularity::Day).is_ok());
    }
}

/// The dimensions a request can group by (`by`), for the OpenAPI document; parsed with
/// `rollup::Dimension::parse`, which answers the 400 that names the bad value.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum GroupBy {
    Provider,
    Model,
    #[schema(rename = "model_sent")]
    ModelSent,
    Feature,
    Source,
    Status,
    User,
}

/// The order of a table (`order`), for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum SortOrder {
    Asc,
    Desc,
}

#[cfg(test)]
mod schema_tests {
    use super::*;
    use crate::domain::rollup::Dimension;

    /// `GroupBy` documents the built-in dimensions (less the total, which is no grouping; tags
    /// are `tag:<key>`, named by each workspace): they must name the same values.
    #[test]
    fn group_by_documents_every_dimension_but_the_total() {
        let schema = serde_json::to_value(<GroupBy as utoipa::PartialSchema>::schema()).unwrap();
        let documented: Vec<String> = serde_json::from_value(schema["enum"].clone()).unwrap();
        let dimensions: Vec<&str> = Dimension::BUILT_IN
            .iter()
            .filter(|d| **d != Dimension::Total)
            .map(|d| d.as_str())
            .collect();
        assert_eq!(documented, dimensions);
    }
}
