//! Anomaly detection on hourly series (cost, requests, tokens, error rate): is this hour unusual
//! for this hour of the week, and should someone be told?
//!
//! Fixed thresholds ("cost over $50 an hour") are either too loose for a quiet Sunday night or too
//! tight for a busy Tuesday noon, and nobody maintains them. This module learns "usual" from the
//! series itself and tells a spike (a runaway loop), a fast drift (a prompt that got 3× longer)
//! or an outage (traffic gone) from ordinary noise, so that an alert rule needs no number at all.
//!
//! Pure domain code: no I/O and no clock. Hours are numbers (`epoch_hour`, hours since
//! 1970-01-01T00:00 UTC); a caller that wants weeks to follow the workspace's local time shifts
//! them by its UTC offset first. Only differences of 168 hours matter here, so either works; a
//! daylight-saving change makes one week's samples an hour off, which the median shrugs off.
//!
//! # Method, and why
//!
//! 1. **Hour-of-week baseline.** LLM traffic follows office hours and weekdays, so the only fair
//!    comparison for Tuesday 14:00 is earlier Tuesdays at 14:00: the samples are the same hour in
//!    each of the last [`MAX_WEEKS`] weeks, and at least [`MIN_WEEKS`] are needed (else "not
//!    enough history", `None`).
//! 2. **Robust statistics.** Last week's incident must not become this week's normal, so usual is
//!    the median of the samples and the spread is MAD × 1.4826 (the standard deviation for normal
//!    noise), neither of which one outlier moves. With 2 to 8 samples the MAD is both noisy and
//!    too small, and an underestimated spread is a stream of false alerts, so: it is pooled with
//!    the deviations of the neighbouring hours (H−3..H+3 of the same weeks, each about its own
//!    median, so the slope of the daily curve does not enter it); it gets the small-sample
//!    correction; and it is widened by the error of the median itself (a new hour is compared
//!    with an estimate, not with the truth). The spread is floored at 10% of usual and at a
//!    per-metric minimum: a flat series would otherwise have a spread of ~0 and flag every wiggle.
//! 3. **Level adjustment.** A workspace that grows 2% a day is 40% above its 3-week-old samples
//!    without anything being wrong. The baseline is therefore scaled by the current level: for
//!    each of the last 7 days (24-hour windows before H), that day's mean over the median of the
//!    same window in earlier weeks, and the median of those 7 ratios. A median of 7 days moves
//!    only once a change has lasted about 4 days, so a spike or an outage (hours) never moves it
//!    and a drift to 2–3× over 1–3 days is flagged while it happens; once the new level has held
//!    for most of a week it becomes the norm and the anomaly resolves. Capped to 0.1..10 so a
//!    broken week (a long outage) cannot make every hour look anomalous.
//! 4. **Thresholds.** A finding needs all of: a robust z-score past a threshold (4 up, −2 down),
//!    a ratio to usual (≥ 1.5× up, ≤ 0.3× down) and an absolute size (a dollar, 20 requests...;
//!    twice that for a drop): z alone flags tiny relative changes on smooth series, a ratio alone
//!    flags noise on small ones, and the absolute size keeps tiny workspaces quiet. Drops are only
//!    findings for requests and tokens (an outage); less cost or fewer errors is never an
//!    incident.
//! 5. **Open and resolve.** [`Detector`] keeps one series' state between evaluations. A strong
//!    finding (≥ 4× up with z ≥ 6, or ≤ 0.1× down) opens an anomaly at once; a weaker one must
//!    hold for [`CONFIRM_HOURS`] consecutive hours, because one noisy hour in a few thousand
//!    passes the weak thresholds and each would be a false alert. The anomaly notifies once when
//!    it opens and resolves after [`RESOLVE_HOURS`] consecutive normal hours. Hours that are no
//!    longer findings but still off (≥ 1.25×, or ≤ 0.5× for an outage) keep it open, and hours
//!    too small to tell (value and usual both under the minimum size) neither confirm nor
//!    resolve anything, so an anomaly that wobbles around a threshold, or a small workspace's
//!    quiet night inside a drift, does not resolve and reopen: one notification per anomaly.
//!
//! The `backtest` module (feature `backtest`) measures all this on generated series with injected
//! spikes, drifts and outages:
//! `cargo run --release -p llmtrack-shared --features backtest --example anomaly_backtest`
//! (results in docs/ALERTS.md and docs/PERFORMANCE.md).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Hours in a week: the seasonal lag.
pub const HOURS_PER_WEEK: i64 = 168;
/// Past weeks the baseline looks at: two months follows a changing workspace, yet gives the
/// median enough samples to ignore a couple of past incidents.
pub const MAX_WEEKS: i64 = 8;
/// Fewer weeks than this is "not enough history": one week has no median worth the name.
pub const MIN_WEEKS: usize = 2;
/// Consecutive anomalous hours a weak finding needs before it opens an anomaly.
pub const CONFIRM_HOURS: u32 = 2;
/// Consecutive normal hours that resolve an open anomaly.
pub const RESOLVE_HOURS: u32 = 2;

/// Hours either side whose deviations are pooled into the spread (H−3..H+3 of the past weeks).
const NEIGHBOUR_HOURS: i64 = 3;
/// MAD to standard deviation, for normal noise.
const MAD_TO_SD: f64 = 1.4826;
/// The spread is at least this share of usual: hourly usage is never smoother than ~10%, and a
/// spread of 0 would make every change infinitely significant.
const RELATIVE_SPREAD_FLOOR: f64 = 0.10;
/// Up findings need at least this ratio to usual: below 1.5× a change is not worth anyone's time,
/// however significant.
const UP_RATIO: f64 = 1.5;
/// Down findings need at most this ratio: an outage, not a slow afternoon.
const DOWN_RATIO: f64 = 0.3;
/// Robust z an up finding needs. Hourly noise is multiplicative (right-skewed): a 30%-noise
/// series reaches 2× about once in a thousand hours, so up needs more than a normal-noise 3.
const UP_Z: f64 = 4.0;
/// Robust z a down finding needs. A total outage of a series with 30% noise is only z ≈ −3.3,
/// so this is lower; the ratio (≤ 0.3×) does most of the work.
const DOWN_Z: f64 = 2.0;
/// An up finding this large opens an anomaly in its first hour (with [`STRONG_Z`]). At 3× a
/// single noisy hour of a small, noisy series still passes once in ~10,000 hours, which over
/// many series and rules is a false alert a week; 4× halves the backtest's single-hour false
/// alerts and costs only the rare 1-hour spike of 3–4×.
const STRONG_UP_RATIO: f64 = 4.0;
/// A down finding this deep opens an anomaly in its first hour: noise never takes 90% away.
const STRONG_DOWN_RATIO: f64 = 0.1;
/// The z an up finding needs to count as strong.
const STRONG_Z: f64 = 6.0;
/// An open up anomaly stays open while hours are at least this ratio, however noisy the series
/// and whatever their size: hysteresis, so it resolves once, when things are back to usual.
/// Requiring a z as well let drifts resolve on every noisy hour and reopen (8 times more
/// repeated alerts in the backtest).
const ELEVATED_UP_RATIO: f64 = 1.25;
/// An open outage stays open while traffic is at most this share of usual.
const ELEVATED_DOWN_RATIO: f64 = 0.5;
/// Days of level ratios the level adjustment takes the median of.
const LEVEL_DAYS: i64 = 7;
/// Fewer usable days than this and the level is taken as unchanged.
const MIN_LEVEL_DAYS: usize = 4;
/// Bounds of the level factor: wide, since real growth is fast too (two drifts in a month are
/// 6×, and a cap below that keeps the second one open for weeks); they only guard against a
/// broken week.
const LEVEL_MIN: f64 = 0.1;
const LEVEL_MAX: f64 = 10.0;
/// Ratios are capped here, so that "usual 0" stays a finite, serialisable number.
const MAX_RATIO: f64 = 1_000.0;
/// Larger inputs are clamped so that sums stay finite.
const MAX_VALUE: f64 = 1e15;
/// Requests an hour needs before its error rate means anything.
pub const MIN_ERROR_RATE_REQUESTS: f64 = 20.0;

/// What a series measures, per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Cost in USD.
    Cost,
    /// LLM calls.
    Requests,
    /// Input plus output tokens.
    Tokens,
    /// Failed calls over calls, 0..1 (see [`error_rate`]).
    ErrorRate,
}

impl Metric {
    /// The smallest change worth an alert, in the metric's unit: a dollar an hour, 20 requests,
    /// 20,000 tokens (20 typical calls), 5 points of error rate. Below that a workspace is too
    /// small for hourly alerts to mean anything.
    pub fn min_size(self) -> f64 {
        match self {
            Metric::Cost => 1.0,
            Metric::Requests => 20.0,
            Metric::Tokens => 20_000.0,
            Metric::ErrorRate => 0.05,
        }
    }

    /// The smallest change worth an alert in a direction. A drop must be twice the minimum
    /// size: an hour that usually has 20 requests falls to 6 by chance once in a few thousand
    /// hours, one that usually has 40 practically never, and "usual is well above zero" is what
    /// makes a drop an outage.
    pub fn min_change(self, direction: Direction) -> f64 {
        match direction {
            Direction::Up => self.min_size(),
            Direction::Down => 2.0 * self.min_size(),
        }
    }

    /// The spread is never below this: roughly the noise of a count near `min_size`, so an
    /// hour that is usually empty does not make a few events significant.
    fn min_spread(self) -> f64 {
        match self {
            Metric::Cost => 0.25,
            Metric::Requests => 4.0,
            Metric::Tokens => 4_000.0,
            Metric::ErrorRate => 0.02,
        }
    }

    /// Whether the metric is a volume (an amount per hour), whose small hours carry little
    /// information; an error rate is already missing when its hour had too few requests.
    fn is_volume(self) -> bool {
        !matches!(self, Metric::ErrorRate)
    }

    /// Whether a drop is an incident: traffic vanishing is an outage, cost or errors vanishing
    /// is good news.
    fn drops_matter(self) -> bool {
        matches!(self, Metric::Requests | Metric::Tokens)
    }

    /// The metric as a sentence says it.
    pub fn label(self) -> &'static str {
        match self {
            Metric::Cost => "cost",
            Metric::Requests => "requests",
            Metric::Tokens => "tokens",
            Metric::ErrorRate => "error rate",
        }
    }
}

/// Which way a finding departs from usual.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A spike or a drift upwards.
    Up,
    /// An outage.
    Down,
}

/// An anomalous hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Finding {
    pub metric: Metric,
    pub direction: Direction,
    /// The hour's value.
    pub value: f64,
    /// The baseline: median of the same hour in past weeks, scaled to the current level.
    pub usual: f64,
    /// value / usual (capped at 1,000 when usual is ~0).
    pub ratio: f64,
    /// Robust z-score: (value − usual) / spread.
    pub score: f64,
}

impl Finding {
    /// Whether this hour alone is enough to open an anomaly: far beyond what noise does.
    pub fn is_strong(&self) -> bool {
        match self.direction {
            Direction::Up => self.ratio >= STRONG_UP_RATIO && self.score >= STRONG_Z,
            Direction::Down => self.ratio <= STRONG_DOWN_RATIO,
        }
    }
}

/// An hourly series: `values[i]` is the value of hour `start + i`. Missing hours are NaN (a
/// count with no events is 0, not missing); negative values count as 0.
#[derive(Debug, Clone, Copy)]
pub struct Hourly<'a> {
    /// Epoch hour of `values[0]`.
    pub start: i64,
    pub values: &'a [f64],
}

impl Hourly<'_> {
    /// The cleaned value of an hour, or `None` when outside the series or missing.
    pub fn at(&self, hour: i64) -> Option<f64> {
        let index = usize::try_from(hour.checked_sub(self.start)?).ok()?;
        self.values.get(index).copied().and_then(clean)
    }
}

/// A finite value, non-negative and bounded; `None` for NaN and infinities (missing).
fn clean(value: f64) -> Option<f64> {
    value.is_finite().then(|| value.clamp(0.0, MAX_VALUE))
}

/// What is usual for an hour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    /// Median of the same hour in past weeks, times `level`.
    pub usual: f64,
    /// Robust spread (floored), times `level`.
    pub spread: f64,
    /// Past weeks that had a value for the hour.
    pub weeks: usize,
    /// The level factor applied (1 when not enough history for it).
    pub level: f64,
}

/// Switches of the method, so the backtest can measure what each part is worth. Production code
/// always uses [`Tuning::CHOSEN`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tuning {
    /// Pool the MAD with the deviations of this many hours either side (0: none).
    pub neighbours: i64,
    /// Scale the baseline by the current level.
    pub level: bool,
    /// Correct the MAD for small samples and widen it by the median's error.
    pub small_sample: bool,
    /// Hours a weak finding must hold to open an anomaly.
    pub confirm_hours: u32,
    /// Elevated hours keep an open anomaly open (else they count as normal).
    pub hysteresis: bool,
}

impl Tuning {
    /// The method as shipped.
    pub(crate) const CHOSEN: Tuning = Tuning {
        neighbours: NEIGHBOUR_HOURS,
        level: true,
        small_sample: true,
        confirm_hours: CONFIRM_HOURS,
        hysteresis: true,
    };
}

/// The baseline of `hour` from the history's earlier hours (hours at or after `hour` are never
/// read); `None` with fewer than [`MIN_WEEKS`] past weeks.
pub fn baseline(metric: Metric, history: Hourly<'_>, hour: i64) -> Option<Baseline> {
    baseline_with(Tuning::CHOSEN, metric, history, hour)
}

/// [`baseline`] with parts of the method switched (the backtest's ablation).
pub(crate) fn baseline_with(
    tuning: Tuning,
    metric: Metric,
    history: Hourly<'_>,
    hour: i64,
) -> Option<Baseline> {
    let mut samples = same_hour(history, hour, 0);
    if samples.len() < MIN_WEEKS {
        return None;
    }
    let weeks = samples.len();
    let usual = median(&mut samples);
    let mut deviations: Vec<f64> = samples.iter().map(|s| (s - usual).abs()).collect();
    for offset in (-tuning.neighbours..=tuning.neighbours).filter(|&o| o != 0) {
        deviations.extend(deviations_about_median(same_hour(history, hour, offset)));
    }
    let level = if tuning.level {
        level(history, hour)
    } else {
        1.0
    };
    let usual = usual * level;
    let mad = MAD_TO_SD * median(&mut deviations);
    let prediction = if tuning.small_sample {
        // The z-score compares a new hour with an estimated median, so its spread is that of
        // the hour's noise plus the median's own error (variance π/2 · σ²/n for a median of n).
        mad * small_sample(weeks) * (1.0 + std::f64::consts::FRAC_PI_2 / weeks as f64).sqrt()
    } else {
        mad
    };
    let spread = (prediction * level)
        .max(RELATIVE_SPREAD_FLOOR * usual)
        .max(metric.min_spread());
    Some(Baseline {
        usual,
        spread,
        weeks,
        level,
    })
}

/// Small-sample correction of the MAD (Croux & Rousseeuw, 1992): deviations from the median
/// of a handful of samples are smaller than the noise, most of all for 3 and 4 samples, and an
/// underestimated spread is a stream of false alerts.
fn small_sample(n: usize) -> f64 {
    match n {
        0..=2 => 1.196,
        3 => 1.495,
        4 => 1.363,
        5 => 1.206,
        6 => 1.200,
        7 => 1.140,
        8 => 1.129,
        9 => 1.107,
        _ => n as f64 / (n as f64 - 0.8),
    }
}

/// The values of `hour + offset` one to [`MAX_WEEKS`] weeks back (missing weeks skipped).
fn same_hour(history: Hourly<'_>, hour: i64, offset: i64) -> Vec<f64> {
    (1..=MAX_WEEKS)
        .filter_map(|k| {
            let past = hour.checked_sub(k * HOURS_PER_WEEK)?.checked_add(offset)?;
            history.at(past)
        })
        .collect()
}

/// Absolute deviations of samples from their own median (none when too few to have one).
fn deviations_about_median(mut samples: Vec<f64>) -> Vec<f64> {
    if samples.len() < MIN_WEEKS {
        return Vec::new();
    }
    let m = median(&mut samples);
    samples.iter().map(|s| (s - m).abs()).collect()
}

/// The current level against the baseline weeks': median over the last [`LEVEL_DAYS`] 24-hour
/// windows of (window mean / median of the same window in earlier weeks), capped. 1 when fewer
/// than [`MIN_LEVEL_DAYS`] windows can be compared.
fn level(history: Hourly<'_>, hour: i64) -> f64 {
    let mut ratios: Vec<f64> = (1..=LEVEL_DAYS)
        .filter_map(|day| day_ratio(history, hour.checked_sub(24 * day)?))
        .collect();
    if ratios.len() < MIN_LEVEL_DAYS {
        return 1.0;
    }
    median(&mut ratios).clamp(LEVEL_MIN, LEVEL_MAX)
}

/// One window's mean over the median of the same window's means in earlier weeks.
fn day_ratio(history: Hourly<'_>, from: i64) -> Option<f64> {
    let now = window_mean(history, from)?;
    let mut past: Vec<f64> = (1..=MAX_WEEKS)
        .filter_map(|k| window_mean(history, from.checked_sub(k * HOURS_PER_WEEK)?))
        .collect();
    if past.len() < MIN_WEEKS {
        return None;
    }
    let usual = median(&mut past);
    (usual > 0.0).then(|| now / usual)
}

/// Mean of the known values of the 24 hours from `from`, if at least half are known: a window
/// that is mostly missing says nothing about the level.
fn window_mean(history: Hourly<'_>, from: i64) -> Option<f64> {
    let (mut sum, mut known) = (0.0, 0u32);
    for h in 0..24 {
        if let Some(v) = from.checked_add(h).and_then(|h| history.at(h)) {
            sum += v;
            known += 1;
        }
    }
    (known >= 12).then(|| sum / f64::from(known))
}

/// Whether `value`, the value of `hour`, is anomalous against the history's earlier hours.
/// `None` when it is not, when it is missing (NaN), or when there is not enough history.
pub fn check(metric: Metric, history: Hourly<'_>, hour: i64, value: f64) -> Option<Finding> {
    assess(metric, history, hour, value).finding()
}

/// What `value`, the value of `hour`, says against the history's earlier hours: what a
/// [`Detector`] takes (a [`check`] that also tells normal hours from unknown and elevated ones).
pub fn assess(metric: Metric, history: Hourly<'_>, hour: i64, value: f64) -> Verdict {
    assess_with(Tuning::CHOSEN, metric, history, hour, value)
}

/// [`assess`] with parts of the method switched (the backtest's ablation).
pub(crate) fn assess_with(
    tuning: Tuning,
    metric: Metric,
    history: Hourly<'_>,
    hour: i64,
    value: f64,
) -> Verdict {
    match baseline_with(tuning, metric, history, hour) {
        Some(baseline) => verdict(metric, &baseline, value),
        None => Verdict::Unknown,
    }
}

/// One hour's verdict, for the [`Detector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Not enough history, or no value: it neither confirms nor resolves anything.
    Unknown,
    /// Usual: counts towards resolving an open anomaly.
    Normal,
    /// Not a finding, but still clearly off in this direction: an open anomaly of this direction
    /// does not resolve on it. Without this band an anomaly hovering at the threshold (a drift
    /// being absorbed by the level, a small workspace's quiet night) would resolve and reopen,
    /// and every reopening is another notification.
    Elevated(Direction),
    /// An anomalous hour.
    Anomalous(Finding),
}

impl Verdict {
    /// The finding, if the hour is anomalous.
    pub fn finding(self) -> Option<Finding> {
        match self {
            Verdict::Anomalous(f) => Some(f),
            _ => None,
        }
    }
}

/// For callers that only have [`check`]'s answer: no finding counts as a normal hour.
impl From<Option<Finding>> for Verdict {
    fn from(finding: Option<Finding>) -> Self {
        finding.map_or(Verdict::Normal, Verdict::Anomalous)
    }
}

/// Whether a value is anomalous against a baseline: every threshold of its direction must pass.
pub fn judge(metric: Metric, baseline: &Baseline, value: f64) -> Option<Finding> {
    verdict(metric, baseline, value).finding()
}

/// A value against a baseline: anomalous when every threshold of its direction passes,
/// elevated when only the looser resolve thresholds do.
pub fn verdict(metric: Metric, baseline: &Baseline, value: f64) -> Verdict {
    let Some(value) = clean(value) else {
        return Verdict::Unknown;
    };
    let Some(hour) = compare(metric, value, baseline.usual, baseline.spread) else {
        return Verdict::Unknown;
    };
    let drops = metric.drops_matter();
    if metric.is_volume() && hour.value.max(hour.usual) < metric.min_size() {
        // Too small to be evidence either way (a quiet night of a small workspace): it must
        // not resolve an anomaly that the busy hours around it still show.
        Verdict::Unknown
    } else if passes_up(&hour) {
        Verdict::Anomalous(hour)
    } else if drops && passes_down(&hour) {
        Verdict::Anomalous(Finding {
            direction: Direction::Down,
            ..hour
        })
    } else if hour.ratio >= ELEVATED_UP_RATIO {
        Verdict::Elevated(Direction::Up)
    } else if drops && hour.ratio <= ELEVATED_DOWN_RATIO {
        Verdict::Elevated(Direction::Down)
    } else {
        Verdict::Normal
    }
}

/// A value against a usual and a spread, as an up finding (`None` when either is unusable).
fn compare(metric: Metric, value: f64, usual: f64, spread: f64) -> Option<Finding> {
    let usual = clean(usual)?;
    let spread = clean(spread)?.max(metric.min_spread());
    Some(Finding {
        metric,
        direction: Direction::Up,
        value,
        usual,
        ratio: ratio(value, usual),
        score: (value - usual) / spread,
    })
}

/// Every up threshold: size, ratio and z.
fn passes_up(f: &Finding) -> bool {
    f.value - f.usual >= f.metric.min_change(Direction::Up)
        && f.ratio >= UP_RATIO
        && f.score >= UP_Z
}

/// Every down threshold: size, ratio and z.
fn passes_down(f: &Finding) -> bool {
    f.usual - f.value >= f.metric.min_change(Direction::Down)
        && f.ratio <= DOWN_RATIO
        && f.score <= -DOWN_Z
}

/// value / usual, capped so that a usual of ~0 gives a large finite number.
fn ratio(value: f64, usual: f64) -> f64 {
    if usual > 0.0 {
        (value / usual).min(MAX_RATIO)
    } else if value > 0.0 {
        MAX_RATIO
    } else {
        1.0
    }
}

/// An hour's error rate (0..1) for [`Metric::ErrorRate`], or NaN (missing) with fewer than
/// [`MIN_ERROR_RATE_REQUESTS`] requests: one failure in three calls is not a 33% error rate
/// anyone should be woken for, and a missing hour is skipped by the baseline.
pub fn error_rate(errors: f64, requests: f64) -> f64 {
    if requests.is_finite() && requests >= MIN_ERROR_RATE_REQUESTS && errors.is_finite() {
        (errors / requests).clamp(0.0, 1.0)
    } else {
        f64::NAN
    }
}

/// The anomaly currently open on a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenAnomaly {
    /// The hour it opened.
    pub since: i64,
    /// The finding that opened it.
    pub first: Finding,
    /// The most extreme finding so far (largest |score|).
    pub peak: Finding,
}

/// What a step of a [`Detector`] calls for: at most one notification per anomaly each way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    /// An anomaly opened: notify.
    Opened { hour: i64, finding: Finding },
    /// It is over after [`RESOLVE_HOURS`] normal hours: notify that it resolved.
    Resolved {
        since: i64,
        hour: i64,
        peak: Finding,
    },
}

/// One series' anomaly state, kept between evaluations (stored with its rule).
///
/// Feed it each complete hour once, in order, with that hour's [`assess`]: a repeated or older
/// hour is ignored (the evaluator runs more often than hourly), and a skipped hour breaks the
/// runs of consecutive hours (an unconfirmed finding has to start over). One anomaly is open at
/// a time: a second one that starts while the first is open is part of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detector {
    /// The open anomaly, if any.
    #[serde(default)]
    open: Option<OpenAnomaly>,
    /// While closed: the direction and length of the current run of anomalous hours.
    #[serde(default)]
    pending: Option<(Direction, u32)>,
    /// While open: consecutive normal hours.
    #[serde(default)]
    calm: u32,
    /// The last hour stepped.
    #[serde(default)]
    last_hour: Option<i64>,
}

/// Another name for [`Detector`]: what an alert rule stores.
pub type AnomalyState = Detector;

impl Detector {
    /// The open anomaly, if any.
    pub fn open(&self) -> Option<&OpenAnomaly> {
        self.open.as_ref()
    }

    /// Takes the verdict of `hour` ([`assess`]; or [`check`]'s answer, where no finding counts
    /// as a normal hour).
    pub fn step(&mut self, hour: i64, verdict: impl Into<Verdict>) -> Option<Transition> {
        self.step_with(CONFIRM_HOURS, hour, verdict.into())
    }

    /// [`Detector::step`] with another confirmation length (the backtest's ablation).
    pub(crate) fn step_with(
        &mut self,
        confirm_hours: u32,
        hour: i64,
        verdict: Verdict,
    ) -> Option<Transition> {
        if self.last_hour.is_some_and(|last| hour <= last) {
            return None;
        }
        if self.last_hour.and_then(|last| last.checked_add(1)) != Some(hour) {
            self.pending = None;
            self.calm = 0;
        }
        self.last_hour = Some(hour);
        match (self.open, verdict) {
            (Some(open), verdict) => self.while_open(open, hour, verdict),
            (None, Verdict::Anomalous(f)) => self.while_closed(confirm_hours, hour, f),
            (None, _) => {
                // Anything but a finding ends an unconfirmed run.
                self.pending = None;
                None
            }
        }
    }

    /// An open anomaly stays open through its own direction's findings and elevated hours,
    /// waits through unknown ones, and resolves after enough normal hours (an opposite finding
    /// counts as "not this anomaly").
    fn while_open(
        &mut self,
        mut open: OpenAnomaly,
        hour: i64,
        verdict: Verdict,
    ) -> Option<Transition> {
        let direction = open.first.direction;
        match verdict {
            Verdict::Unknown => None,
            Verdict::Anomalous(f) if f.direction == direction => {
                self.calm = 0;
                if f.score.abs() > open.peak.score.abs() {
                    open.peak = f;
                    self.open = Some(open);
                }
                None
            }
            Verdict::Elevated(d) if d == direction => {
                self.calm = 0;
                None
            }
            _ => {
                self.calm = self.calm.saturating_add(1);
                if self.calm < RESOLVE_HOURS {
                    return None;
                }
                self.open = None;
                self.calm = 0;
                Some(Transition::Resolved {
                    since: open.since,
                    hour,
                    peak: open.peak,
                })
            }
        }
    }

    /// A strong finding opens at once; a weak one once its run is `confirm_hours` long.
    fn while_closed(&mut self, confirm_hours: u32, hour: i64, f: Finding) -> Option<Transition> {
        let run = match self.pending {
            Some((direction, run)) if direction == f.direction => run.saturating_add(1),
            _ => 1,
        };
        if !f.is_strong() && run < confirm_hours {
            self.pending = Some((f.direction, run));
            return None;
        }
        self.pending = None;
        self.calm = 0;
        self.open = Some(OpenAnomaly {
            since: hour,
            first: f,
            peak: f,
        });
        Some(Transition::Opened { hour, finding: f })
    }
}

/// Contributors: how much of an excess each value of a dimension explains.
///
/// `values` holds (label such as "feature=summarize", current, usual); returns the top 3 labels
/// by their share (0..1) of the excess, largest first. Only positive excesses count (a feature
/// that shrank explains none of a rise); shares are of the larger of `total_excess` and the sum
/// of the positive excesses, so they never add up to more than 1. For a drop, pass the shortfall
/// (swap current and usual).
pub fn contributors(total_excess: f64, values: &[(String, f64, f64)]) -> Vec<(String, f64)> {
    let excesses: Vec<(&String, f64)> = values
        .iter()
        .filter_map(|(label, current, usual)| {
            let excess = clean(*current)? - clean(*usual)?;
            (excess > 0.0).then_some((label, excess))
        })
        .collect();
    let positive: f64 = excesses.iter().map(|(_, e)| e).sum();
    let total = clean(total_excess).unwrap_or(0.0).max(positive);
    if total <= 0.0 {
        return Vec::new();
    }
    let mut shares: Vec<(String, f64)> = excesses
        .into_iter()
        .map(|(label, excess)| (label.clone(), (excess / total).clamp(0.0, 1.0)))
        .collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    shares.truncate(3);
    shares
}

/// One line for a notification: "cost 4.2× usual for Tuesday 14:00 ($84.00, usually $20.00);
/// 80% from feature=summarize".
pub fn describe(
    finding: &Finding,
    hour_of_week_label: &str,
    contributors: &[(String, f64)],
) -> String {
    let metric = finding.metric;
    let (value, usual) = (
        format_value(metric, finding.value),
        format_value(metric, finding.usual),
    );
    let mut text = match finding.direction {
        Direction::Up if finding.ratio >= MAX_RATIO => format!(
            "{} {value} for {hour_of_week_label}, usually {usual}",
            metric.label()
        ),
        Direction::Up => format!(
            "{} {:.1}× usual for {hour_of_week_label} ({value}, usually {usual})",
            metric.label(),
            finding.ratio
        ),
        Direction::Down => format!(
            "{} down to {:.0}% of usual for {hour_of_week_label} ({value}, usually {usual})",
            metric.label(),
            finding.ratio * 100.0
        ),
    };
    let parts: Vec<String> = contributors
        .iter()
        .map(|(label, share)| format!("{:.0}% from {label}", share * 100.0))
        .collect();
    if !parts.is_empty() {
        text.push_str("; ");
        text.push_str(&parts.join(", "));
    }
    text
}

/// A value in its metric's unit, as people read it.
fn format_value(metric: Metric, value: f64) -> String {
    match metric {
        Metric::Cost => format!("${value:.2}"),
        Metric::Requests | Metric::Tokens => format!("{value:.0}"),
        Metric::ErrorRate => format!("{:.1}%", value * 100.0),
    }
}

/// "Tuesday 14:00": the local weekday and time of an epoch hour at a UTC offset in minutes
/// (0 when the hours were already shifted to local time).
pub fn hour_of_week_label(epoch_hour: i64, utc_offset_minutes: i32) -> String {
    const WEEKDAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    // i128: no product or sum of an i64 hour and an i32 offset can overflow it.
    let minutes = i128::from(epoch_hour) * 60 + i128::from(utc_offset_minutes);
    let day = minutes.div_euclid(1_440);
    let of_day = minutes.rem_euclid(1_440);
    // 1970-01-01 was a Thursday (index 3 from Monday).
    let weekday = WEEKDAYS[usize::try_from((day + 3).rem_euclid(7)).unwrap_or(0)];
    format!("{weekday} {:02}:{:02}", of_day / 60, of_day % 60)
}

/// Median (reorders the values); 0 when empty.
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

/// The backtest and its series generator: built for the tests and the `anomaly_backtest` example
/// (feature `backtest`), never into a function.
#[cfg(any(test, feature = "backtest"))]
pub mod backtest;
#[cfg(any(test, feature = "backtest"))]
pub use backtest::{Backtest, backtest};

#[cfg(test)]
mod tests;
