//! Backtest report for the anomaly detector (`llmtrack_shared::domain::anomaly`).
//!
//! Anomaly alerts are only worth sending if they are right and early, so this prints how many
//! alerts were about a real anomaly (precision), how many injected anomalies got an alert
//! (recall) and how soon, over 1,000 generated series (4 weeks of history, then 4 weeks run hour
//! by hour, with injected spikes, drifts and outages; see `anomaly::backtest`), and what each part
//! of the method is worth. Deterministic (seed 42): the figures in docs/ALERTS.md and
//! docs/PERFORMANCE.md come from
//!
//! ```text
//! cargo run --release -p llmtrack-shared --features backtest --example anomaly_backtest
//! ```

use std::time::Instant;

use llmtrack_shared::domain::anomaly::backtest::{Backtest, Detection, ablation};

const SERIES: usize = 1000;
const SEED: u64 = 42;

fn main() {
    let started = Instant::now();
    let results = ablation(SERIES, SEED);
    let elapsed = started.elapsed();
    let Some((_, shipped)) = results.first() else {
        return;
    };
    println!(
        "anomaly backtest: {} series ({} with nothing injected), seed {SEED}, 4 weeks of history + 4 weeks tested, hourly",
        shipped.series, shipped.quiet_series
    );
    println!();
    print_kinds(shipped);
    println!();
    println!(
        "alerts: {}, precision {:.1}%, repeat alerts {}, false alerts {:.3} per series-week ({:.3} on quiet series)",
        shipped.alerts,
        shipped.precision * 100.0,
        shipped.repeat_alerts,
        shipped.false_alerts_per_series_week,
        shipped.false_alerts_per_quiet_series_week
    );
    println!();
    print_ablation(&results);
    println!();
    println!("(took {:.1} s)", elapsed.as_secs_f64());
}

/// Recall and time to detect per kind, then overall.
fn print_kinds(b: &Backtest) {
    println!(
        "| kind | injected | recall | above size floor | recall above floor | TTD median (h) | TTD p90 (h) | repeat alerts |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (kind, d) in &b.by_kind {
        print_row(kind.label(), d);
    }
    print_row("all", &b.overall);
}

fn print_row(label: &str, d: &Detection) {
    let hours = |h: Option<f64>| h.map_or_else(|| "–".to_owned(), |h| format!("{h:.0}"));
    println!(
        "| {label} | {} | {:.1}% | {} | {:.1}% | {} | {} | {} |",
        d.injected,
        d.recall * 100.0,
        d.above_floor,
        d.recall_above_floor * 100.0,
        hours(d.ttd_median),
        hours(d.ttd_p90),
        d.repeat_alerts
    );
}

/// One line per variant of the method.
fn print_ablation(results: &[(&str, Backtest)]) {
    println!(
        "| variant | precision | repeat alerts | false alerts / series-week | recall above floor: spike | drift | outage | TTD median: spike | drift | outage |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, b) in results {
        let recall: Vec<String> = b
            .by_kind
            .iter()
            .map(|(_, d)| format!("{:.1}%", d.recall_above_floor * 100.0))
            .collect();
        let ttd: Vec<String> = b
            .by_kind
            .iter()
            .map(|(_, d)| {
                d.ttd_median
                    .map_or_else(|| "–".to_owned(), |h| format!("{h:.0}"))
            })
            .collect();
        println!(
            "| {label} | {:.1}% | {} | {:.3} | {} | {} |",
            b.precision * 100.0,
            b.repeat_alerts,
            b.false_alerts_per_series_week,
            recall.join(" | "),
            ttd.join(" | ")
        );
    }
}
