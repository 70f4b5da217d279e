//! Backtest report for the month-end forecast (`llmtrack_shared::domain::forecast`).
//!
//! The forecast is only worth showing if its numbers hold up, so this prints how far off it is and how
//! often its 80% interval holds the true month total, over 1,000 generated series (8 weeks of history,
//! then a 30- or 31-day month, with a known trend, weekend dip and noise; see `forecast::backtest`).
//! Deterministic (seed 42): the figures in docs/PERFORMANCE.md come from
//!
//! ```text
//! cargo run --release -p llmtrack-shared --features backtest --example forecast_backtest
//! ```

use std::time::Instant;

use llmtrack_shared::domain::forecast::backtest;

const SERIES: usize = 1000;
const SEED: u64 = 42;

fn main() {
    let started = Instant::now();
    let result = backtest(SERIES, SEED);
    let elapsed = started.elapsed();

    println!(
        "month-end forecast backtest: {} series, seed {SEED}, forecasts from day 3 to month end",
        result.series
    );
    println!();
    println!(
        "{:<16} {:>8} {:>18}",
        "forecast made on", "MAPE", "80% PI coverage"
    );
    for (&(day, mape), &(_, coverage)) in result.mape_by_day.iter().zip(&result.coverage_by_day) {
        println!(
            "{:<16} {:>7.2}% {:>17.1}%",
            format!("day {day}"),
            mape * 100.0,
            coverage * 100.0
        );
    }
    println!(
        "{:<16} {:>7.2}% {:>17.1}%",
        "all days 3..end",
        result.mape * 100.0,
        result.coverage * 100.0
    );
    println!();
    println!("(took {:.1} s)", elapsed.as_secs_f64());
}
