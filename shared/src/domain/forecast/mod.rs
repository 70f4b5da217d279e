//! Month-end forecast: what will this month's total (cost, events, tokens) be when the month ends?
//!
//! Pure domain code: no I/O and no clock. The caller turns timestamps into calendar days in the
//! workspace's timezone and passes day totals, the elapsed fraction of today and the weekdays still to
//! come; this module only does arithmetic on them.
//!
//! # Method, and why
//!
//! LLM usage is a level that drifts (a feature ships, a customer leaves), a weekly rhythm (business
//! traffic drops at weekends), day-to-day noise, and now and then a one-off spike (a batch job, a runaway
//! retry loop). The forecast models exactly those parts, each in the most robust way that still uses the
//! data, because a month-end number that jumps around from one refresh to the next, or explodes after one
//! bad day, is worse than no forecast:
//!
//! 1. **Cleaning.** NaN, infinite and negative values count as 0. Leading zero days are dropped: before a
//!    workspace had traffic, its zeros say nothing about its level.
//! 2. **Weekday profile** (multiplicative, because weekend traffic scales with the business). With at
//!    least two weeks of complete days, each day is divided by the mean of a 7-day window around it (so a
//!    trend cancels out), and the ratios are pooled per weekday (median: a spike does not move it). Each
//!    weekday's factor is then shrunk towards 1 by an empirical-Bayes weight, the spread between weekdays
//!    against the noise of that weekday's estimate: two noisy weeks cannot invent a pattern, eight clear
//!    weeks keep theirs. Factors average to 1.
//! 3. **Level and trend.** On the last 8 weeks of de-seasonalised complete days, a weighted straight-line
//!    fit with exponentially decaying weights (half-life 14 days, so the month so far carries most of the
//!    weight) and Huber reweighting (a single spike day moves the level by little). The slope is shrunk by
//!    `b² / (b² + se(b)²)`, so a trend that does not stand out from the noise is mostly ignored, and it is
//!    damped (×0.98 per day ahead) when extrapolated: trends rarely hold unchanged for a month, and
//!    over-extrapolated growth is how forecasts blow up.
//! 4. **Today.** With a fraction `f` of today elapsed, today's rate is a blend of the run rate and the
//!    model, weighted by how much of the day was seen: `f × (observed / f) + (1 − f) × model`, and the
//!    rest of today is `(1 − f)` of that rate. Early in the day the model dominates (a busy first hour is
//!    not a busy day), late in the day the observation does. With no complete day at all, today's run
//!    rate is the level.
//! 5. **Expected** = so far + today's remainder + Σ over the remaining days of level(h) × weekday factor.
//! 6. **80% interval.** The error of a month-end forecast has parts that behave differently, so each is
//!    measured on its own and their variances are added:
//!    - day-to-day noise: one-day-ahead forecasts are refitted for each of the last 28 known days and
//!      the robust spread of their relative errors is the noise of one day; over the remaining days it
//!      adds up like `√days`;
//!    - the level, trend and weekday factors as fitted (their estimated variances; the shrunk slope
//!      counts with its posterior variance): shared by every remaining day, so they add up linearly;
//!    - a level that has just moved (a launch, a lost customer): the trimmed mean of the last week's
//!      one-day-ahead errors, beyond what noise alone would give, taken as a possible level error;
//!    - a young workspace: a prior that fades with the square of the days known.
//!
//!    The remaining part is taken as log-normal with that mean and variance (so the interval is skewed
//!    upwards, like spend is) and its 10th/90th percentiles are added to what the month has so far, so
//!    `low >= so_far` always. With fewer than 7 known days the interval is ±50% of the remaining part:
//!    too little data to measure noise at all.
//!
//! The `backtest` module (feature `backtest`) measures all this on generated series with a known trend, weekday pattern and noise:
//! `cargo run --release -p llmtrack-shared --features backtest --example forecast_backtest`.

use serde::Serialize;
use utoipa::ToSchema;

/// One calendar day's totals in the workspace's timezone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Day {
    /// 0 = Monday .. 6 = Sunday (taken modulo 7).
    pub weekday: u8,
    /// The day's total (cost, events, tokens...). NaN or negative counts as 0.
    pub value: f64,
}

/// A month-end projection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Projection {
    /// What the month has so far (sum of the month's elapsed days, including the partial current day as given).
    pub so_far: f64,
    /// Expected month-end total.
    pub expected: f64,
    /// 80% prediction interval for the month-end total (10th and 90th percentile). low >= so_far always.
    pub low: f64,
    /// 90th percentile of the month-end total.
    pub high: f64,
}

impl Projection {
    /// Nothing more to come: every field is `so_far`.
    fn settled(so_far: f64) -> Self {
        Projection {
            so_far,
            expected: so_far,
            low: so_far,
            high: so_far,
        }
    }
}

/// Larger inputs are clamped so that sums of squares stay finite.
const MAX_VALUE: f64 = 1e15;
/// Complete days needed before weekday factors are estimated.
const MIN_DAYS_FOR_WEEKDAYS: usize = 14;
/// Complete days needed before a trend is fitted.
const MIN_DAYS_FOR_TREND: usize = 10;
/// Complete days needed before the interval comes from the data rather than ±50%.
const MIN_DAYS_FOR_MODEL_INTERVAL: usize = 7;
/// The level and trend are fitted on at most this many recent complete days.
const LEVEL_WINDOW_DAYS: usize = 56;
/// Half-life of the recency weights of the level fit, in days.
const HALF_LIFE_DAYS: f64 = 14.0;
/// Per-day damping of the trend when extrapolated.
const DAMPING: f64 = 0.98;
/// Huber tuning constant, in robust standard deviations.
const HUBER_K: f64 = 2.0;
/// Reweighting passes of the robust fit.
const HUBER_PASSES: usize = 3;
/// One-day-ahead refits used to measure the day-to-day noise.
const RESIDUAL_ORIGINS: usize = 28;
/// The most recent one-day-ahead errors that say whether the level has just moved.
const RECENT_DAYS: usize = 7;
/// Half-width of the fallback interval, as a share of the remaining part.
const FALLBACK_HALF_WIDTH: f64 = 0.5;
/// Cap on the coefficient of variation of the remaining part (keeps high above expected).
const MAX_CV: f64 = 2.0;
/// Standard normal 90th percentile.
const Z_90: f64 = 1.281_551_565_544_600_5;
/// Today's run rate is never extrapolated from less than an hour of the day.
const MIN_FRACTION_FOR_RUN_RATE: f64 = 1.0 / 24.0;
/// MAD to standard deviation, for normal data.
const MAD_TO_SD: f64 = 1.4826;
/// Weekday factors below this are treated as "this weekday has no traffic".
const FACTOR_EPS: f64 = 1e-9;

fn clean(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value.min(MAX_VALUE)
    } else {
        0.0
    }
}

/// A month's projection from daily totals by calendar date (`value` of a date; 0 for none):
/// the days of `[history_first, month_first)` are history, those of `[month_first, today]` the
/// month so far (`today` `today_fraction` elapsed), and the days after `today` before
/// `next_month_first` are still to come. The dashboard's forecast, the monthly report's
/// forecast check and forecast alert rules all project through here.
pub fn month_end(
    value: impl Fn(chrono::NaiveDate) -> f64,
    history_first: chrono::NaiveDate,
    month_first: chrono::NaiveDate,
    today: chrono::NaiveDate,
    today_fraction: f64,
    next_month_first: chrono::NaiveDate,
) -> Projection {
    use chrono::Datelike as _;
    let day = |d: chrono::NaiveDate| Day {
        weekday: d.weekday().num_days_from_monday() as u8,
        value: value(d),
    };
    let days = |from: chrono::NaiveDate, to: chrono::NaiveDate| -> Vec<Day> {
        from.iter_days().take_while(|d| *d < to).map(day).collect()
    };
    let tomorrow = today.succ_opt().unwrap_or(today);
    let remaining: Vec<u8> = days(tomorrow, next_month_first)
        .iter()
        .map(|d| d.weekday)
        .collect();
    project(
        &days(history_first, month_first),
        &days(month_first, tomorrow),
        today_fraction,
        &remaining,
    )
}

/// The first date of `[from, to)` with a value, or `to`: history starts when the workspace did.
pub fn first_active(
    value: impl Fn(chrono::NaiveDate) -> f64,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> chrono::NaiveDate {
    from.iter_days()
        .take_while(|d| *d < to)
        .find(|d| value(*d) != 0.0)
        .unwrap_or(to)
}

/// Projects the month-end total.
///
/// history: complete days before the month started (oldest first, up to ~8 weeks; may be empty for a new workspace).
/// month: the month's days so far, oldest first; the last one may be partial, `today_fraction` (0..=1] of it elapsed.
/// remaining_weekdays: the weekday (0=Mon) of each day still to come after today, in order.
///
/// With `today_fraction >= 1` (or NaN) the last day of `month` counts as complete. When there is no data
/// at all (empty, or only zeros) nothing more is expected: `expected == so_far`.
pub fn project(
    history: &[Day],
    month: &[Day],
    today_fraction: f64,
    remaining_weekdays: &[u8],
) -> Projection {
    let fraction = if today_fraction.is_nan() {
        1.0
    } else {
        today_fraction.clamp(0.0, 1.0)
    };
    let so_far: f64 = month.iter().map(|d| clean(d.value)).sum();
    let partial = if fraction < 1.0 { month.last() } else { None };
    let complete_in_month = month.len() - usize::from(partial.is_some());
    let mut days: Vec<(usize, f64)> = history
        .iter()
        .chain(&month[..complete_in_month])
        .map(|d| (usize::from(d.weekday % 7), clean(d.value)))
        .collect();
    let first_traffic = days
        .iter()
        .position(|&(_, v)| v > 0.0)
        .unwrap_or(days.len());
    days.drain(..first_traffic);

    let model = match Model::fit(&days) {
        Some(model) => model,
        None => {
            // No complete day with traffic: today's run rate, if any, is all there is to go on.
            let observed = partial.map_or(0.0, |d| clean(d.value));
            if observed <= 0.0 {
                return Projection::settled(so_far);
            }
            Model::flat(observed / fraction.max(MIN_FRACTION_FOR_RUN_RATE))
        }
    };

    // Walk the days still to come: h counts days after the last complete day.
    let mut remaining = 0.0;
    let mut noise_var = 0.0;
    let (mut c_level, mut c_trend) = (0.0, 0.0);
    let mut c_factor = [0.0; 7];
    let mut c_model = 0.0;
    let mut h = 0usize;
    let mut add = |weekday: u8, share: f64, observed: f64| {
        // `share` is the part of the day still to come; the rest of it (`observed`) already counts.
        h += 1;
        let weekday = usize::from(weekday % 7);
        let level = model.line.level_at(h);
        let day = model.factors[weekday] * level;
        remaining += share * (observed + share * day);
        noise_var += (share * day * model.sigma_day).powi(2);
        // Sensitivities of the remaining total to the level, the slope and each weekday factor.
        let weight = share * share;
        if level > 0.0 {
            c_level += weight * model.factors[weekday];
            c_trend += weight * model.factors[weekday] * damped_steps(h);
        }
        c_factor[weekday] += weight * level;
        c_model += weight * day;
    };
    if let Some(today) = partial {
        add(today.weekday, 1.0 - fraction, clean(today.value));
    }
    for &weekday in remaining_weekdays {
        add(weekday, 1.0, 0.0);
    }
    if !(remaining.is_finite() && remaining > 0.0) {
        return Projection::settled(so_far);
    }
    let expected = so_far + remaining;

    let (low, high) = if model.known < MIN_DAYS_FOR_MODEL_INTERVAL {
        (
            so_far + remaining * (1.0 - FALLBACK_HALF_WIDTH),
            so_far + remaining * (1.0 + FALLBACK_HALF_WIDTH),
        )
    } else {
        // The shrunk slope's posterior variance is shrink × var(slope) (normal-normal shrinkage).
        let (cov, k) = (model.cov, model.line.shrink);
        let level_var = c_level * c_level * cov[0][0]
            + 2.0 * c_level * c_trend * k * cov[0][1]
            + c_trend * c_trend * k * cov[1][1];
        let factor_var: f64 = c_factor
            .iter()
            .zip(&model.factor_var)
            .map(|(c, v)| c * c * v)
            .sum();
        let shift_var = model.level_shift_var * c_model * c_model;
        // A young workspace: a week or two of data says little about where it is heading. This prior
        // joins the ±50% fallback smoothly at 7 days and fades with the square of the days known.
        let young = FALLBACK_HALF_WIDTH / Z_90
            * (MIN_DAYS_FOR_MODEL_INTERVAL as f64 / model.known as f64).powi(2)
            * remaining;
        let sd = (noise_var + level_var.max(0.0) + factor_var + shift_var + young * young).sqrt();
        let cv = if sd.is_finite() {
            (sd / remaining).min(MAX_CV)
        } else {
            MAX_CV
        };
        let spread2 = (1.0 + cv * cv).ln();
        let median = remaining / (1.0 + cv * cv).sqrt();
        let spread = spread2.sqrt();
        (
            so_far + median * (-Z_90 * spread).exp(),
            so_far + median * (Z_90 * spread).exp(),
        )
    };
    let projection = Projection {
        so_far,
        expected,
        low: low.clamp(so_far, expected),
        high: high.max(expected),
    };
    if [projection.expected, projection.low, projection.high]
        .iter()
        .all(|v| v.is_finite())
    {
        projection
    } else {
        Projection::settled(so_far)
    }
}

/// Σ_{j=1..h} φ^j: how many "trend steps" h days ahead is, once damped.
fn damped_steps(h: usize) -> f64 {
    let h = i32::try_from(h).unwrap_or(i32::MAX);
    DAMPING * (1.0 - DAMPING.powi(h)) / (1.0 - DAMPING)
}

/// The fitted model: weekday factors, a level line on de-seasonalised days, and the noise around it.
struct Model {
    factors: [f64; 7],
    /// Variance of each weekday factor's estimate.
    factor_var: [f64; 7],
    /// De-seasonalised level and trend, as of the last complete day.
    line: Line,
    /// Covariance of (level, slope), for out-of-sample noise.
    cov: [[f64; 2]; 2],
    /// Day-to-day noise, relative to the predicted day.
    sigma_day: f64,
    /// Relative variance of a recent shift of the level: the squared trimmed mean of the last week's
    /// one-day-ahead errors, less what noise alone would give.
    level_shift_var: f64,
    /// Complete days the model was fitted on.
    known: usize,
}

impl Model {
    fn flat(level: f64) -> Self {
        Model {
            factors: [1.0; 7],
            factor_var: [0.0; 7],
            line: Line {
                level,
                slope: 0.0,
                shrink: 0.0,
                cov: [[0.0; 2]; 2],
                scale: 0.0,
            },
            cov: [[0.0; 2]; 2],
            sigma_day: 0.0,
            level_shift_var: 0.0,
            known: 0,
        }
    }

    /// Fits on complete days `(weekday, value)`, oldest first, starting at the first day with traffic.
    fn fit(days: &[(usize, f64)]) -> Option<Model> {
        let n = days.len();
        let (factors, factor_var) = weekday_factors(days);
        let points: Vec<(usize, f64)> = days
            .iter()
            .enumerate()
            .filter(|(_, (w, _))| factors[*w] > FACTOR_EPS)
            .map(|(i, &(w, v))| (i, v / factors[w]))
            .collect();
        let line = fit_line(&points, n.checked_sub(1)?)?;

        // One-day-ahead errors over the last weeks: the honest measure of day-to-day noise. (Refitting
        // the weekday factors at each origin too would cost 28 times more for a small difference.)
        let mut errors = Vec::with_capacity(RESIDUAL_ORIGINS);
        for (j, &(w, v)) in days.iter().enumerate().skip(
            n.saturating_sub(RESIDUAL_ORIGINS)
                .max(MIN_DAYS_FOR_MODEL_INTERVAL),
        ) {
            if factors[w] <= FACTOR_EPS {
                continue;
            }
            let end = points.partition_point(|p| p.0 < j);
            let Some(fit) = fit_line(&points[..end], j - 1) else {
                continue;
            };
            let predicted = fit.level_at(1);
            if predicted > 0.0 {
                errors.push(v / factors[w] / predicted - 1.0);
            }
        }
        // A run of same-signed recent errors means the level has moved (a launch, a lost customer)
        // faster than the fit follows: the trimmed mean of the last week's errors, so one spike or one
        // dip alone does not count.
        let mut recent = errors[errors.len().saturating_sub(RECENT_DAYS)..].to_vec();
        let sigma_day = if errors.len() >= 5 {
            errors.iter_mut().for_each(|e| *e = e.abs());
            MAD_TO_SD * median(&mut errors)
        } else if line.level > 0.0 {
            line.scale / line.level
        } else {
            0.0
        };
        // Only what exceeds the noise such a mean has anyway counts as a shift.
        recent.sort_unstable_by(f64::total_cmp);
        let level_shift_var = if recent.len() >= 5 {
            let inner = &recent[1..recent.len() - 1];
            let bias = inner.iter().sum::<f64>() / inner.len() as f64;
            (bias * bias - sigma_day * sigma_day / inner.len() as f64).max(0.0)
        } else {
            0.0
        };
        // The fit's covariance assumes its in-sample residual spread; out of sample is noisier.
        let out_of_sample = sigma_day * line.level;
        let inflate = if line.scale > 0.0 {
            (out_of_sample / line.scale).powi(2).max(1.0)
        } else {
            1.0
        };
        Some(Model {
            factors,
            factor_var,
            cov: line.cov.map(|row| row.map(|c| c * inflate)),
            line,
            sigma_day,
            level_shift_var,
            known: n,
        })
    }
}

/// A robust weighted line through de-seasonalised days.
struct Line {
    /// Level at the last day of the fit.
    level: f64,
    /// Fitted slope per day (before shrinking).
    slope: f64,
    /// Shrinkage applied to the slope, 0..=1.
    shrink: f64,
    /// Covariance of (level, slope), from the in-sample residuals.
    cov: [[f64; 2]; 2],
    /// Robust standard deviation of the residuals.
    scale: f64,
}

impl Line {
    /// De-seasonalised level h days after the last day of the fit (shrunk, damped trend; never negative).
    fn level_at(&self, h: usize) -> f64 {
        (self.level + self.shrink * self.slope * damped_steps(h)).max(0.0)
    }
}

/// Weighted sums of one fit.
struct Sums {
    s: [f64; 3],
    sy: f64,
    sxy: f64,
    t: [f64; 3],
}

/// Fits `value = level + slope × (day − last)` on the points (sorted by day index) in the window ending at `last`.
fn fit_line(points: &[(usize, f64)], last: usize) -> Option<Line> {
    let begin = points.partition_point(|p| p.0 + LEVEL_WINDOW_DAYS <= last);
    let points = &points[begin..];
    if points.is_empty() {
        return None;
    }
    let x: Vec<f64> = points.iter().map(|p| p.0 as f64 - last as f64).collect();
    let decay: Vec<f64> = x.iter().map(|x| (x / HALF_LIFE_DAYS).exp2()).collect();
    let mut robust = vec![1.0; points.len()];
    let with_trend = points.len() >= MIN_DAYS_FOR_TREND;

    let solve = |robust: &[f64]| -> (f64, f64, Sums) {
        let mut sums = Sums {
            s: [0.0; 3],
            sy: 0.0,
            sxy: 0.0,
            t: [0.0; 3],
        };
        for (i, &(_, y)) in points.iter().enumerate() {
            let w = decay[i] * robust[i];
            let xi = x[i];
            sums.s[0] += w;
            sums.s[1] += w * xi;
            sums.s[2] += w * xi * xi;
            sums.sy += w * y;
            sums.sxy += w * xi * y;
            sums.t[0] += w * w;
            sums.t[1] += w * w * xi;
            sums.t[2] += w * w * xi * xi;
        }
        let det = sums.s[0] * sums.s[2] - sums.s[1] * sums.s[1];
        if with_trend && det > 1e-12 * sums.s[0] * sums.s[2] && det > 0.0 {
            let slope = (sums.s[0] * sums.sxy - sums.s[1] * sums.sy) / det;
            let level = (sums.sy - slope * sums.s[1]) / sums.s[0];
            (level, slope, sums)
        } else if sums.s[0] > 0.0 {
            (sums.sy / sums.s[0], 0.0, sums)
        } else {
            (0.0, 0.0, sums)
        }
    };
    let residual_scale = |level: f64, slope: f64, residuals: &mut Vec<(f64, f64)>| -> f64 {
        residuals.clear();
        residuals.extend(
            points
                .iter()
                .zip(&x)
                .zip(&decay)
                .map(|((p, xi), w)| ((p.1 - level - slope * xi).abs(), *w)),
        );
        MAD_TO_SD * weighted_median(residuals)
    };

    let mut residuals = Vec::with_capacity(points.len());
    let (mut level, mut slope, mut sums) = solve(&robust);
    let mut scale = residual_scale(level, slope, &mut residuals);
    for _ in 0..HUBER_PASSES {
        if scale <= 0.0 {
            break;
        }
        for (r, (p, xi)) in robust.iter_mut().zip(points.iter().zip(&x)) {
            let e = (p.1 - level - slope * xi).abs();
            *r = if e > HUBER_K * scale {
                HUBER_K * scale / e
            } else {
                1.0
            };
        }
        (level, slope, sums) = solve(&robust);
        scale = residual_scale(level, slope, &mut residuals);
    }

    // Sandwich covariance of (level, slope) for weighted least squares with homoscedastic noise.
    let var = scale * scale;
    let cov = if slope != 0.0 {
        let det = sums.s[0] * sums.s[2] - sums.s[1] * sums.s[1];
        let inv = [
            [sums.s[2] / det, -sums.s[1] / det],
            [-sums.s[1] / det, sums.s[0] / det],
        ];
        let t = [[sums.t[0], sums.t[1]], [sums.t[1], sums.t[2]]];
        let mut cov = [[0.0; 2]; 2];
        for (i, row) in cov.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().enumerate() {
                let mut acc = 0.0;
                for (k, t_row) in t.iter().enumerate() {
                    for (l, t_kl) in t_row.iter().enumerate() {
                        acc += inv[i][k] * t_kl * inv[l][j];
                    }
                }
                *cell = var * acc;
            }
        }
        cov
    } else if sums.s[0] > 0.0 {
        [[var * sums.t[0] / (sums.s[0] * sums.s[0]), 0.0], [0.0, 0.0]]
    } else {
        [[0.0; 2]; 2]
    };
    let shrink = if slope != 0.0 {
        slope * slope / (slope * slope + cov[1][1].max(0.0))
    } else {
        0.0
    };
    if !(level.is_finite() && slope.is_finite() && shrink.is_finite()) {
        return None;
    }
    Some(Line {
        level,
        slope,
        shrink,
        cov,
        scale,
    })
}

/// Multiplicative weekday factors (mean 1) and the variance of each, or all 1 (and no variance) with
/// less than two weeks of data.
fn weekday_factors(days: &[(usize, f64)]) -> ([f64; 7], [f64; 7]) {
    const NONE: ([f64; 7], [f64; 7]) = ([1.0; 7], [0.0; 7]);
    let n = days.len();
    if n < MIN_DAYS_FOR_WEEKDAYS {
        return NONE;
    }
    let mut prefix = Vec::with_capacity(n + 1);
    prefix.push(0.0);
    for &(_, v) in days {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
    }
    // Each day against the mean of a (centred where possible) 7-day window: trend cancels out.
    let mut ratios: [Vec<f64>; 7] = Default::default();
    for (i, &(w, v)) in days.iter().enumerate() {
        let start = i.saturating_sub(3).min(n - 7);
        let mean = (prefix[start + 7] - prefix[start]) / 7.0;
        if mean > 0.0 {
            ratios[w].push(v / mean);
        }
    }
    let mut raw = [1.0; 7];
    let mut deviations = Vec::with_capacity(n);
    for (w, r) in ratios.iter_mut().enumerate() {
        if r.is_empty() {
            continue;
        }
        raw[w] = if r.len() >= 3 {
            median(r)
        } else {
            r.iter().sum::<f64>() / r.len() as f64
        };
        deviations.extend(r.iter().map(|x| (x - raw[w]).abs()));
    }
    if deviations.is_empty() {
        return NONE;
    }
    // Empirical Bayes: noise of each weekday's estimate against the real spread between weekdays.
    let noise = (MAD_TO_SD * median(&mut deviations)).powi(2);
    let mut estimate_var = [0.0; 7];
    let (mut spread, mut observed) = (0.0, 0usize);
    for w in 0..7 {
        let count = ratios[w].len();
        if count > 0 {
            let efficiency = if count >= 3 {
                std::f64::consts::FRAC_PI_2
            } else {
                1.0
            };
            estimate_var[w] = noise * efficiency / count as f64;
            spread += (raw[w] - 1.0).powi(2) - estimate_var[w];
            observed += 1;
        }
    }
    let between = (spread / observed.max(1) as f64).max(0.0);
    let mut factors = [1.0; 7];
    let mut variance = [0.0; 7];
    for w in 0..7 {
        if ratios[w].is_empty() {
            continue;
        }
        let total = between + estimate_var[w];
        let keep = if total > 0.0 { between / total } else { 1.0 };
        factors[w] = (1.0 + keep * (raw[w] - 1.0)).max(0.0);
        // Posterior variance of a shrunk estimate.
        variance[w] = keep * estimate_var[w];
    }
    let mean = factors.iter().sum::<f64>() / 7.0;
    if mean > 0.0 && mean.is_finite() {
        factors.iter_mut().for_each(|f| *f /= mean);
        variance.iter_mut().for_each(|v| *v /= mean * mean);
        (factors, variance)
    } else {
        NONE
    }
}

/// Median of finite values (reorders them); 0 when empty.
fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_unstable_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Weighted median of `(value, weight)` pairs (reorders them); 0 when empty or weightless.
fn weighted_median(items: &mut [(f64, f64)]) -> f64 {
    items.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = items.iter().map(|i| i.1).sum();
    if total.is_nan() || total <= 0.0 {
        return 0.0;
    }
    let mut acc = 0.0;
    for &(value, weight) in items.iter() {
        acc += weight;
        if acc >= total / 2.0 {
            return value;
        }
    }
    items.last().map_or(0.0, |i| i.0)
}

/// The backtest and its series generator: built for the tests and the `forecast_backtest` example
/// (feature `backtest`), never into a function.
#[cfg(any(test, feature = "backtest"))]
pub mod backtest;
#[cfg(any(test, feature = "backtest"))]
pub use backtest::{Backtest, backtest};

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// `len` days with values from `value(t)`, the first on `first_weekday`.
    fn series(first_weekday: usize, len: usize, value: impl Fn(usize, usize) -> f64) -> Vec<Day> {
        (0..len)
            .map(|t| {
                let weekday = (first_weekday + t) % 7;
                Day {
                    weekday: weekday as u8,
                    value: value(t, weekday),
                }
            })
            .collect()
    }

    fn weekdays_after(first_weekday: usize, count: usize) -> Vec<u8> {
        (0..count)
            .map(|k| ((first_weekday + k) % 7) as u8)
            .collect()
    }

    fn assert_sane(p: &Projection) {
        for v in [p.so_far, p.expected, p.low, p.high] {
            assert!(v.is_finite() && v >= 0.0, "{p:?}");
        }
        assert!(
            p.so_far <= p.low && p.low <= p.expected && p.expected <= p.high,
            "{p:?}"
        );
    }

    #[test]
    fn flat_series_forecasts_within_two_percent() {
        // ±5% alternating wiggle so the fit has noise to deal with; month of 30 days, 10 elapsed + half of day 11.
        let wiggle = |t: usize, _| if t.is_multiple_of(2) { 105.0 } else { 95.0 };
        let history = series(0, 56, wiggle);
        let mut month = series(0, 11, |t, w| wiggle(t + 56, w));
        month[10].value *= 0.5;
        let p = project(&history, &month, 0.5, &weekdays_after(11 % 7, 19));
        assert_sane(&p);
        let truth = 3000.0;
        assert!((p.expected - truth).abs() / truth < 0.02, "{p:?}");
        assert!(p.low < truth && truth < p.high, "{p:?}");
        assert!(
            (p.so_far - (10.0 * 100.0 + 105.0 * 0.5)).abs() < 1e-9,
            "{p:?}"
        );
    }

    #[test]
    fn weekday_pattern_is_honoured() {
        // Weekdays 100, weekends 20. A 30-day month starting on Saturday has 10 weekend days (Sat/Sun ×5),
        // one starting on Monday has 8: the forecasts from day 1 must differ by the right amount.
        let value = |_: usize, w: usize| if w >= 5 { 20.0 } else { 100.0 };
        for (first, weekend_days) in [(5usize, 10.0), (0, 8.0)] {
            // History ends the day before the month starts.
            let history = series((first + 7 * 8 - 56) % 7, 56, value);
            let month = series(first, 1, value);
            let p = project(&history, &month, 1.0, &weekdays_after(first + 1, 29));
            let truth = weekend_days * 20.0 + (30.0 - weekend_days) * 100.0;
            assert_sane(&p);
            assert!(
                (p.expected - truth).abs() / truth < 0.02,
                "start {first}: {p:?} vs {truth}"
            );
        }
    }

    #[test]
    fn weekday_pattern_from_two_weeks_is_shrunk_but_kept() {
        // Only 14 days known: the pattern is used, somewhat shrunk towards flat.
        let value = |_: usize, w: usize| if w >= 5 { 20.0 } else { 100.0 };
        let month = series(0, 14, value);
        let remaining = weekdays_after(0, 14); // two more weeks
        let p = project(&[], &month, 1.0, &remaining);
        let truth = 2.0 * (2.0 * 20.0 + 5.0 * 100.0) + 2.0 * (2.0 * 20.0 + 5.0 * 100.0);
        assert_sane(&p);
        assert!(
            (p.expected - truth).abs() / truth < 0.03,
            "{p:?} vs {truth}"
        );
        // And a forecast for weekends only is far below one for weekdays only.
        let weekends = project(&[], &month, 1.0, &[5, 6, 5, 6]);
        let weekdays = project(&[], &month, 1.0, &[0, 1, 2, 3]);
        let (we, wd) = (
            weekends.expected - weekends.so_far,
            weekdays.expected - weekdays.so_far,
        );
        assert!(we < 0.4 * wd, "weekends {we} vs weekdays {wd}");
    }

    #[test]
    fn linear_growth_is_followed() {
        // +1 per day on a level of 100: a flat forecast would be ~10% low by month end.
        let value = |t: usize, _| 100.0 + t as f64;
        let history = series(0, 56, value);
        let month = series(0, 10, |t, w| value(t + 56, w));
        let p = project(&history, &month, 1.0, &weekdays_after(10, 20));
        let truth: f64 = (0..30).map(|t| value(t + 56, 0)).sum();
        let flat = month.iter().map(|d| d.value).sum::<f64>() + 20.0 * value(65, 0);
        assert_sane(&p);
        assert!(
            (p.expected - truth).abs() / truth < 0.02,
            "{p:?} vs {truth}"
        );
        assert!(
            (p.expected - truth).abs() < (flat - truth).abs() / 2.0,
            "{p:?}: trend not used"
        );
    }

    #[test]
    fn a_single_spike_barely_moves_the_forecast() {
        let mut history = series(0, 56, |t, _| if t.is_multiple_of(2) { 102.0 } else { 98.0 });
        history[50].value = 5000.0;
        let month = series(0, 5, |_, _| 100.0);
        let p = project(&history, &month, 1.0, &weekdays_after(5, 25));
        assert_sane(&p);
        assert!((p.expected - 3000.0).abs() / 3000.0 < 0.03, "{p:?}");
    }

    #[test]
    fn a_level_shift_widens_the_interval() {
        // Flat at 100 for 8 weeks, then the month starts at 200: three days in, the forecast lags the new
        // level (it cannot tell a shift from three spikes yet) but the interval must admit it.
        let history = series(0, 56, |t, _| if t.is_multiple_of(2) { 102.0 } else { 98.0 });
        let shifted = series(0, 3, |_, _| 200.0);
        let steady = series(0, 3, |_, _| 100.0);
        let rest = weekdays_after(3, 27);
        let (s, q) = (
            project(&history, &shifted, 1.0, &rest),
            project(&history, &steady, 1.0, &rest),
        );
        assert_sane(&s);
        assert!(
            s.expected > q.expected + 300.0,
            "shifted {s:?}, steady {q:?}"
        );
        assert!(s.high > 30.0 * 200.0 * 0.97, "{s:?}");
        assert!(
            s.high - s.low > 3.0 * (q.high - q.low),
            "shifted {s:?}, steady {q:?}"
        );
    }

    #[test]
    fn young_workspace_interval_narrows_smoothly() {
        // From 6 known days (±50% fallback) to 7 (model) the width must not collapse, and it keeps
        // narrowing as days accumulate.
        let value = |t: usize, _| if t.is_multiple_of(2) { 101.0 } else { 99.0 };
        let relative_width = |known: usize| {
            let month = series(0, known + 1, value);
            let p = project(&[], &month, 0.5, &weekdays_after(known + 1, 29 - known));
            assert_sane(&p);
            (p.high - p.low) / (p.expected - p.so_far)
        };
        let widths: Vec<f64> = [6, 7, 10, 20].into_iter().map(relative_width).collect();
        assert!((widths[0] - 1.0).abs() < 1e-9, "{widths:?}");
        assert!(widths[1] > 0.6, "{widths:?}");
        assert!(widths.windows(2).all(|w| w[1] < w[0]), "{widths:?}");
    }

    #[test]
    fn empty_input_gives_zeros() {
        let zero = Projection {
            so_far: 0.0,
            expected: 0.0,
            low: 0.0,
            high: 0.0,
        };
        assert_eq!(project(&[], &[], 1.0, &[]), zero);
        assert_eq!(project(&[], &[], 0.5, &[0, 1, 2, 3]), zero);
        assert_eq!(project(&[], &[], f64::NAN, &[0; 30]), zero);
    }

    #[test]
    fn all_zero_input_expects_nothing_more() {
        let zeros = series(0, 56, |_, _| 0.0);
        let month = series(0, 9, |_, _| 0.0);
        let p = project(&zeros, &month, 0.3, &weekdays_after(9, 21));
        assert_eq!(
            p,
            Projection {
                so_far: 0.0,
                expected: 0.0,
                low: 0.0,
                high: 0.0
            }
        );
    }

    #[test]
    fn zero_history_before_first_traffic_is_ignored() {
        // A new workspace: padded zero history, then 10 days at 50/day.
        let zeros = series(0, 56, |_, _| 0.0);
        let month = series(0, 10, |_, _| 50.0);
        let p = project(&zeros, &month, 1.0, &weekdays_after(10, 20));
        assert_sane(&p);
        assert!((p.expected - 1500.0).abs() / 1500.0 < 0.02, "{p:?}");
    }

    #[test]
    fn first_partial_day_uses_its_run_rate_with_a_wide_interval() {
        let month = [Day {
            weekday: 2,
            value: 25.0,
        }];
        let p = project(&[], &month, 0.25, &weekdays_after(3, 29));
        // 100/day: 75 more today, 29 × 100 after.
        assert!((p.expected - 3000.0).abs() < 1e-6, "{p:?}");
        assert!((p.low - (25.0 + 0.5 * 2975.0)).abs() < 1e-6, "{p:?}");
        assert!((p.high - (25.0 + 1.5 * 2975.0)).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn partial_day_blends_run_rate_and_model() {
        let history = series(0, 56, |_, _| 100.0);
        // Today: 10% elapsed, but already 50 (a busy morning): the estimate for today lies between the model
        // and the run rate, much nearer the model.
        let month = [Day {
            weekday: 0,
            value: 50.0,
        }];
        let p = project(&history, &month, 0.1, &[]);
        // Observed 50 + the model's 90 for the rest of the day = 140; the pure run rate would give 500.
        assert!(p.expected > 140.0 && p.expected < 200.0, "{p:?}");
        // At 90% elapsed with 90 seen, the day ends near 100.
        let p = project(
            &history,
            &[Day {
                weekday: 0,
                value: 90.0,
            }],
            0.9,
            &[],
        );
        assert!((p.expected - 100.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn the_last_day_of_the_month_is_nearly_settled() {
        let history = series(0, 56, |t, _| 100.0 + (t % 3) as f64 * 10.0);
        let mut month = series(0, 30, |_, _| 100.0);
        month[29].value = 100.0;
        let p = project(&history, &month, 1.0, &[]);
        assert_eq!(p, Projection::settled(3000.0));
    }

    #[test]
    fn interval_is_ordered_and_widens_with_noise() {
        let quiet = series(0, 56, |t, _| if t.is_multiple_of(2) { 101.0 } else { 99.0 });
        let noisy = series(0, 56, |t, _| if t.is_multiple_of(2) { 140.0 } else { 60.0 });
        let month = series(0, 5, |_, _| 100.0);
        let rest = weekdays_after(5, 25);
        let (q, n) = (
            project(&quiet, &month, 1.0, &rest),
            project(&noisy, &month, 1.0, &rest),
        );
        assert_sane(&q);
        assert_sane(&n);
        assert!(
            n.high - n.low > 3.0 * (q.high - q.low),
            "quiet {q:?}, noisy {n:?}"
        );
    }

    #[test]
    fn never_panics_and_stays_sane_on_garbage() {
        let mut rng = StdRng::seed_from_u64(1);
        let specials = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -5.0,
            0.0,
            1e300,
            f64::MIN_POSITIVE,
        ];
        for _ in 0..500 {
            let day = |rng: &mut StdRng| Day {
                weekday: rng.random(),
                value: if rng.random_bool(0.2) {
                    specials[rng.random_range(0..specials.len())]
                } else {
                    rng.random_range(0.0..1000.0)
                },
            };
            let history: Vec<Day> = (0..rng.random_range(0..70))
                .map(|_| day(&mut rng))
                .collect();
            let month: Vec<Day> = (0..rng.random_range(0..32))
                .map(|_| day(&mut rng))
                .collect();
            let fraction = if rng.random_bool(0.2) {
                specials[rng.random_range(0..specials.len())]
            } else {
                rng.random_range(0.0..=1.0)
            };
            let remaining: Vec<u8> = (0..rng.random_range(0..31)).map(|_| rng.random()).collect();
            let p = project(&history, &month, fraction, &remaining);
            assert_sane(&p);
        }
    }
}
