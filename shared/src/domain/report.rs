//! The monthly report, computed from rollups: totals, cost and requests by model, provider,
//! feature and source, the top end-users, the daily series, the change against the month before,
//! error rate and latency percentiles, and how the forecast made half-way through the month
//! compared with what happened. Months are calendar months in UTC, like quotas.
//! Pure: the reports job reads the rollups and archives and mails what this builds.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use super::forecast;
use super::rollup::{Dimension, Rollup, RollupKey};
use super::time::HOUR_MS;

/// Picodollars per dollar.
const PICO: f64 = 1e12;
/// End-users listed by name.
pub const TOP_USERS: usize = 10;
/// The forecast is the one made when this many days of the month were complete.
pub const FORECAST_AFTER_DAYS: u32 = 15;
/// Days of history the forecast had before the month began.
pub const FORECAST_HISTORY_DAYS: i64 = 56;

/// A calendar month in UTC: `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    /// `YYYY-MM`; None for anything else.
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.trim().split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        NaiveDate::from_ymd_opt(year, month, 1)?;
        Some(Month { year, month })
    }

    pub fn of(ts_ms: i64) -> Month {
        let t = super::time::to_datetime(ts_ms);
        Month {
            year: t.year(),
            month: t.month(),
        }
    }

    pub fn previous(self) -> Month {
        if self.month == 1 {
            Month {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Month {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    pub fn start_ms(self) -> i64 {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .map_or(0, |t| t.timestamp_millis())
    }

    pub fn end_ms(self) -> i64 {
        self.next().start_ms()
    }

    pub fn days(self) -> u32 {
        ((self.end_ms() - self.start_ms()) / (24 * HOUR_MS)) as u32
    }

    /// The month's hours, first and one past the last.
    pub fn hours(self) -> (i64, i64) {
        (self.start_ms() / HOUR_MS, self.end_ms() / HOUR_MS)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The counters of a month, or of one value of a dimension in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Figures {
    pub requests: u64,
    pub errors: u64,
    /// Errors per request, 0 to 1.
    pub error_rate: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Requests whose cost is unknown (not counted as $0 in `cost_usd`).
    pub unpriced: u64,
}

impl Figures {
    fn of(r: &Rollup) -> Figures {
        Figures {
            requests: r.requests,
            errors: r.errors,
            error_rate: if r.requests == 0 {
                0.0
            } else {
                r.errors as f64 / r.requests as f64
            },
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cost_usd: r.cost_pico as f64 / PICO,
            unpriced: r.unpriced,
        }
    }
}

/// One value of a dimension (a model, a feature...) and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Line {
    /// `""` for events without a value (no feature, no end-user).
    pub value: String,
    #[serde(flatten)]
    pub figures: Figures,
    /// Its share of the month's cost, 0 to 1.
    pub cost_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DayLine {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub requests: u64,
    pub errors: u64,
    pub cost_usd: f64,
}

impl DayLine {
    /// The day's figures (it keeps no token counts).
    pub fn figures(&self) -> Figures {
        Figures::of(&Rollup {
            requests: self.requests,
            errors: self.errors,
            cost_pico: (self.cost_usd * PICO).round() as i128,
            ..Rollup::default()
        })
    }
}

/// Latency percentiles over the month's requests that reported a latency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Latency {
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The change against the month before, as a fraction (0.25 is +25%); None when the month
/// before had none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Change {
    pub requests: Option<f64>,
    pub cost_usd: Option<f64>,
    pub errors: Option<f64>,
}

/// The month-end cost forecast made when `FORECAST_AFTER_DAYS` days were complete, against
/// what the month came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ForecastCheck {
    /// The day the forecast was made (the end of its last complete day).
    pub made_on: String,
    pub expected_usd: f64,
    /// The 80% interval.
    pub low_usd: f64,
    pub high_usd: f64,
    pub actual_usd: f64,
    /// (expected − actual) / actual; None when the month cost nothing.
    pub error: Option<f64>,
    pub within_interval: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MonthlyReport {
    pub workspace: String,
    pub workspace_name: String,
    /// `YYYY-MM` (UTC).
    pub month: String,
    pub totals: Figures,
    pub latency: Latency,
    pub previous_month: Figures,
    pub change: Change,
    pub by_model: Vec<Line>,
    pub by_provider: Vec<Line>,
    pub by_feature: Vec<Line>,
    pub by_source: Vec<Line>,
    /// The end-users who cost most (at most `TOP_USERS`; events without one are left out).
    pub top_users: Vec<Line>,
    pub daily: Vec<DayLine>,
    pub forecast: Option<ForecastCheck>,
}

/// The rollups a report is built from.
pub struct Rollups<'a> {
    /// The workspace total, every hour from `FORECAST_HISTORY_DAYS` before the month to its end.
    pub total: &'a [(RollupKey, Rollup)],
    /// The previous month's total, hour by hour.
    pub previous: &'a [(RollupKey, Rollup)],
    /// The month's rollups of each dimension's view.
    pub by: &'a BTreeMap<Dimension, Vec<(RollupKey, Rollup)>>,
}

fn change(now: f64, before: f64) -> Option<f64> {
    (before > 0.0).then(|| (now - before) / before)
}

fn sum<'a>(rows: impl IntoIterator<Item = &'a (RollupKey, Rollup)>) -> Rollup {
    let mut out = Rollup::default();
    for (_, r) in rows {
        out.merge(r);
    }
    out
}

fn lines(rows: &[(RollupKey, Rollup)], month_cost: f64) -> Vec<Line> {
    let mut by: BTreeMap<&str, Rollup> = BTreeMap::new();
    for (k, r) in rows {
        by.entry(k.value.as_str()).or_default().merge(r);
    }
    let mut out: Vec<Line> = by
        .into_iter()
        .map(|(value, r)| {
            let figures = Figures::of(&r);
            Line {
                value: value.to_owned(),
                cost_share: if month_cost > 0.0 {
                    figures.cost_usd / month_cost
                } else {
                    0.0
                },
                figures,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.figures
            .cost_usd
            .total_cmp(&a.figures.cost_usd)
            .then(b.figures.requests.cmp(&a.figures.requests))
            .then(a.value.cmp(&b.value))
    });
    out
}

fn date_of(ts_ms: i64) -> NaiveDate {
    super::time::to_datetime(ts_ms).date_naive()
}

/// The month's report, from its rollups.
pub fn build(workspace: &str, workspace_name: &str, month: Month, r: &Rollups) -> MonthlyReport {
    let (first, end) = month.hours();
    let in_month: Vec<&(RollupKey, Rollup)> = r
        .total
        .iter()
        .filter(|(k, _)| (first..end).contains(&k.hour))
        .collect();
    let total = sum(in_month.iter().copied());
    let totals = Figures::of(&total);
    let previous_month = Figures::of(&sum(r.previous));
    let latency = Latency {
        p50_ms: total.latency.quantile(0.50),
        p95_ms: total.latency.quantile(0.95),
        p99_ms: total.latency.quantile(0.99),
    };
    let month_cost = totals.cost_usd;
    let by = |d: Dimension| lines(r.by.get(&d).map_or(&[][..], |v| v.as_slice()), month_cost);
    let mut top_users: Vec<Line> = by(Dimension::User)
        .into_iter()
        .filter(|l| !l.value.is_empty())
        .collect();
    top_users.truncate(TOP_USERS);

    // Day by day (UTC), every day of the month listed, quiet ones as zeros.
    let mut days: BTreeMap<NaiveDate, Rollup> = BTreeMap::new();
    for d in 0..month.days() {
        days.insert(
            date_of(month.start_ms() + i64::from(d) * 24 * HOUR_MS),
            Rollup::default(),
        );
    }
    let mut history: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for (k, roll) in r.total {
        let date = date_of(k.hour * HOUR_MS);
        if let Some(day) = days.get_mut(&date) {
            day.merge(roll);
        } else if k.hour < first {
            *history.entry(date).or_default() += roll.cost_pico as f64 / PICO;
        }
    }
    let daily: Vec<DayLine> = days
        .iter()
        .map(|(date, r)| DayLine {
            date: date.to_string(),
            requests: r.requests,
            errors: r.errors,
            cost_usd: r.cost_pico as f64 / PICO,
        })
        .collect();
    let forecast = forecast_check(month, &history, &daily, totals.cost_usd);

    MonthlyReport {
        workspace: workspace.to_owned(),
        workspace_name: workspace_name.to_owned(),
        month: month.to_string(),
        change: Change {
            requests: change(totals.requests as f64, previous_month.requests as f64),
            cost_usd: change(totals.cost_usd, previous_month.cost_usd),
            errors: change(totals.errors as f64, previous_month.errors as f64),
        },
        totals,
        latency,
        previous_month,
        by_model: by(Dimension::Model),
        by_provider: by(Dimension::Provider),
        by_feature: by(Dimension::Feature),
        by_source: by(Dimension::Source),
        top_users,
        daily,
        forecast,
    }
}

/// The forecast `domain::forecast` would have made at the end of day `FORECAST_AFTER_DAYS`,
/// from the days before it (up to `FORECAST_HISTORY_DAYS` before the month), and the month's
/// actual cost. None for a month with no cost at all.
fn forecast_check(
    month: Month,
    history: &BTreeMap<NaiveDate, f64>,
    daily: &[DayLine],
    actual: f64,
) -> Option<ForecastCheck> {
    let mut cost = history.clone();
    for d in daily {
        cost.insert(
            NaiveDate::parse_from_str(&d.date, "%Y-%m-%d").ok()?,
            d.cost_usd,
        );
    }
    let value = |d: NaiveDate| cost.get(&d).copied().unwrap_or(0.0);
    if actual <= 0.0 && cost.values().all(|v| *v <= 0.0) {
        return None;
    }
    let start = date_of(month.start_ms());
    let made_on = start + chrono::Days::new(u64::from(FORECAST_AFTER_DAYS.min(month.days())) - 1);
    let history_first = forecast::first_active(
        value,
        start - chrono::Days::new(FORECAST_HISTORY_DAYS as u64),
        start,
    );
    let p = forecast::month_end(
        value,
        history_first,
        start,
        made_on,
        1.0,
        date_of(month.end_ms()),
    );
    Some(ForecastCheck {
        made_on: made_on.to_string(),
        expected_usd: p.expected,
        low_usd: p.low,
        high_usd: p.high,
        actual_usd: actual,
        error: (actual > 0.0).then(|| (p.expected - actual) / actual),
        within_interval: p.low <= actual + 1e-9 && actual <= p.high + 1e-9,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_only_yyyy_mm_and_step_over_years() {
        let m = Month::parse("2026-12").unwrap();
        assert_eq!(m.to_string(), "2026-12");
        assert_eq!(m.next().to_string(), "2027-01");
        assert_eq!(
            Month::parse("2026-01").unwrap().previous().to_string(),
            "2025-12"
        );
        assert_eq!(m.days(), 31);
        assert_eq!(Month::parse("2028-02").unwrap().days(), 29);
        assert_eq!(m.end_ms() - m.start_ms(), 31 * 24 * HOUR_MS);
        for bad in [
            "2026-13", "2026-00", "26-01", "2026-1", "2026/01", "", "soon",
        ] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
        assert_eq!(Month::of(m.start_ms()), m);
        assert_eq!(Month::of(m.end_ms() - 1), m);
    }

    fn hour(key_hour: i64, value: &str, requests: u64, cost_pico: i64) -> (RollupKey, Rollup) {
        let by = if value.is_empty() {
            Dimension::Total
        } else {
            Dimension::Model
        };
        (
            RollupKey {
                hour: key_hour,
                view: super::super::rollup::View::of(by),
                value: value.to_owned(),
            },
            Rollup {
                requests,
                cost_pico: i128::from(cost_pico),
                ..Rollup::default()
            },
        )
    }

    #[test]
    fn a_quiet_month_has_every_day_no_forecast_and_no_change() {
        let m = Month::parse("2026-10").unwrap();
        let by = BTreeMap::new();
        let r = build(
            "ws_x",
            "X",
            m,
            &Rollups {
                total: &[],
                previous: &[],
                by: &by,
            },
        );
        assert_eq!(r.daily.len(), 31);
        assert!(r.daily.iter().all(|d| d.requests == 0));
        assert_eq!(r.forecast, None);
        assert_eq!(r.change, Change::default());
        assert_eq!(r.totals.error_rate, 0.0);
    }

    #[test]
    fn history_before_the_month_feeds_the_forecast_not_the_totals() {
        let m = Month::parse("2026-10").unwrap();
        let (first, end) = m.hours();
        let total: Vec<_> = (first - 24 * 20..end)
            .step_by(6)
            .map(|h| hour(h, "", 2, 1_000_000_000_000))
            .collect();
        let models = vec![
            hour(first, "gpt-4o", 3, 3_000_000_000_000),
            hour(first + 1, "o3", 1, 1_000_000_000_000),
        ];
        let by = BTreeMap::from([(Dimension::Model, models)]);
        let previous = vec![hour(first - 100, "", 10, 0)];
        let r = build(
            "ws_x",
            "X",
            m,
            &Rollups {
                total: &total,
                previous: &previous,
                by: &by,
            },
        );
        let in_month = total
            .iter()
            .filter(|(k, _)| (first..end).contains(&k.hour))
            .count() as u64;
        assert_eq!(r.totals.requests, 2 * in_month);
        assert!((r.totals.cost_usd - in_month as f64).abs() < 1e-9);
        assert_eq!(r.previous_month.requests, 10);
        assert_eq!(r.change.cost_usd, None, "the month before cost nothing");
        assert_eq!(r.by_model[0].value, "gpt-4o");
        let f = r.forecast.unwrap();
        assert_eq!(f.made_on, "2026-10-15");
        // A flat $4 a day: the forecast is right, and inside its interval.
        assert!(f.error.unwrap().abs() < 0.05, "{f:?}");
        assert!(f.within_interval);
    }
}
