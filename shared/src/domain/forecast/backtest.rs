//! How good the month-end forecast is, measured: forecasts on generated series with a known
//! trend, weekday pattern and noise, against the true month totals. Only the tests and the
//! `forecast_backtest` example build it (feature `backtest`), so its random generator stays out of
//! every production binary.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

/// A backtest over generated series with a known trend and weekday pattern: for each series, forecast the month-end from
/// each day of the month (day 3 onwards) and compare with the true month total. Returns mean absolute percentage error (as a fraction, 0.05 = 5%)
/// and the share of true totals that fell inside the 80% interval (coverage).
#[derive(Debug, Clone, PartialEq)]
pub struct Backtest {
    pub series: usize,
    pub mape: f64,
    pub coverage: f64,
    /// (day of month, MAPE) for days 7, 14, 21, 28.
    pub mape_by_day: Vec<(u32, f64)>,
    /// (day of month, coverage) for the same days.
    pub coverage_by_day: Vec<(u32, f64)>,
}

/// Days of history each generated series has before its month.
const BACKTEST_HISTORY_DAYS: usize = 56;
/// Days of the month the backtest reports separately.
const BACKTEST_CHECKPOINTS: [u32; 4] = [7, 14, 21, 28];

/// Runs the backtest on `series` generated series (deterministic for a given `seed`).
///
/// Each series: 8 weeks of history then a 30- or 31-day month starting on a random weekday. Day `t`
/// (counted from the first history day) is `base × (1 + r·t) × weekday × noise` with base uniform in
/// 100..10,000, r uniform in −0.9%..+2% of base per day (so over the 12 weeks the level ends between 0.22×
/// and 2.7× where it started, never negative), Saturday and Sunday each 0.3..0.8 of a weekday, and
/// log-normal noise with σ uniform in 5%..15% per series (mean 1). From day 3 to the last day, the
/// forecast is made at a random point of the day (the partial day is that share of the full day).
pub fn backtest(series: usize, seed: u64) -> Backtest {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut error_sum, mut covered, mut forecasts) = (0.0, 0usize, 0usize);
    let mut by_day = [(0.0, 0usize, 0usize); BACKTEST_CHECKPOINTS.len()];
    for _ in 0..series {
        let base: f64 = rng.random_range(100.0..10_000.0);
        let trend: f64 = rng.random_range(-0.009..0.02);
        let mut pattern = [1.0; 7];
        pattern[5] = rng.random_range(0.3..0.8);
        pattern[6] = rng.random_range(0.3..0.8);
        let sigma: f64 = rng.random_range(0.05..0.15);
        let month_len = if rng.random_bool(0.5) { 30 } else { 31 };
        let first_weekday: usize = rng.random_range(0..7);
        let days: Vec<Day> = (0..BACKTEST_HISTORY_DAYS + month_len)
            .map(|t| {
                let weekday =
                    (first_weekday + t + 7 * BACKTEST_HISTORY_DAYS - BACKTEST_HISTORY_DAYS) % 7;
                let noise = (sigma * standard_normal(&mut rng) - sigma * sigma / 2.0).exp();
                let value = base * (1.0 + trend * t as f64) * pattern[weekday] * noise;
                Day {
                    weekday: weekday as u8,
                    value,
                }
            })
            .collect();
        let (history, month) = days.split_at(BACKTEST_HISTORY_DAYS);
        let truth: f64 = month.iter().map(|d| d.value).sum();
        let remaining: Vec<u8> = month.iter().map(|d| d.weekday).collect();
        let mut so_far = Vec::with_capacity(month_len);
        for day in 3..=month_len {
            let fraction: f64 = rng.random_range(0.05..=1.0);
            so_far.clear();
            so_far.extend_from_slice(&month[..day]);
            so_far[day - 1].value *= fraction;
            let p = project(history, &so_far, fraction, &remaining[day..]);
            let error = (p.expected - truth).abs() / truth;
            let inside = p.low <= truth && truth <= p.high;
            error_sum += error;
            covered += usize::from(inside);
            forecasts += 1;
            if let Some(k) = BACKTEST_CHECKPOINTS.iter().position(|&c| c as usize == day) {
                by_day[k].0 += error;
                by_day[k].1 += usize::from(inside);
                by_day[k].2 += 1;
            }
        }
    }
    let share = |sum: f64, count: usize| if count > 0 { sum / count as f64 } else { 0.0 };
    Backtest {
        series,
        mape: share(error_sum, forecasts),
        coverage: share(covered as f64, forecasts),
        mape_by_day: BACKTEST_CHECKPOINTS
            .iter()
            .zip(&by_day)
            .map(|(&d, b)| (d, share(b.0, b.2)))
            .collect(),
        coverage_by_day: BACKTEST_CHECKPOINTS
            .iter()
            .zip(&by_day)
            .map(|(&d, b)| (d, share(b.1 as f64, b.2)))
            .collect(),
    }
}

/// A standard normal draw (Box–Muller; rand 0.9 has no normal distribution without rand_distr).
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln is finite
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backtest_is_accurate_and_calibrated() {
        let b = backtest(200, 7);
        assert_eq!(b.series, 200);
        assert!(b.mape < 0.04, "{b:?}");
        assert!((0.6..=0.97).contains(&b.coverage), "{b:?}");
        // Accuracy improves as the month goes on.
        assert!(b.mape_by_day[3].1 < b.mape_by_day[0].1, "{b:?}");
        for &(day, coverage) in &b.coverage_by_day {
            assert!((0.6..=0.97).contains(&coverage), "day {day}: {b:?}");
        }
    }

    #[test]
    fn backtest_is_deterministic() {
        assert_eq!(backtest(5, 3), backtest(5, 3));
        assert_ne!(backtest(5, 3), backtest(5, 4));
    }
}
