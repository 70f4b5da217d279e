//! Unit tests of the anomaly detector: the baseline, the thresholds, the state machine, the
//! contributors and the text, on small hand-made series.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Epoch hour of Monday 2024-01-01 00:00 UTC.
const MONDAY: i64 = 473_352;

/// `weeks` weeks of hourly values from `value(t)`, starting on a Monday.
fn weeks(weeks: usize, value: impl Fn(usize) -> f64) -> Vec<f64> {
    (0..weeks * 168).map(value).collect()
}

fn history(values: &[f64]) -> Hourly<'_> {
    Hourly {
        start: MONDAY,
        values,
    }
}

/// The hour right after the history.
fn next(values: &[f64]) -> i64 {
    MONDAY + values.len() as i64
}

/// Office hours (100 from 9 to 18, 20 otherwise) with a ±5% alternating wiggle.
fn office(t: usize) -> f64 {
    let base = if (9..18).contains(&(t % 24)) {
        100.0
    } else {
        20.0
    };
    base * if t.is_multiple_of(2) { 1.05 } else { 0.95 }
}

fn finding(direction: Direction, ratio: f64, score: f64) -> Finding {
    Finding {
        metric: Metric::Requests,
        direction,
        value: 100.0 * ratio,
        usual: 100.0,
        ratio,
        score,
    }
}

#[test]
fn not_enough_history_is_none() {
    let one_week = weeks(1, office);
    let hour = next(&one_week) + 10;
    assert_eq!(baseline(Metric::Requests, history(&one_week), hour), None);
    assert_eq!(check(Metric::Requests, history(&one_week), hour, 1e6), None);
    assert_eq!(check(Metric::Requests, history(&[]), 0, 1e6), None);
}

#[test]
fn flat_series_has_no_findings() {
    let values = weeks(9, |t| if t.is_multiple_of(2) { 102.0 } else { 98.0 });
    let (past, tested) = values.split_at(8 * 168);
    for (i, &v) in tested.iter().enumerate() {
        let hour = next(past) + i as i64;
        let all = Hourly {
            start: MONDAY,
            values: &values[..8 * 168 + i],
        };
        assert_eq!(check(Metric::Requests, all, hour, v), None, "hour {i}");
        // A 30% wiggle is not an anomaly either: the spread is floored at 10% of usual.
        assert_eq!(check(Metric::Requests, all, hour, v * 1.3), None);
    }
}

#[test]
fn a_single_spike_is_found() {
    let values = weeks(8, office);
    let hour = next(&values) + 14; // Monday 14:00, usually ~100
    let f = check(Metric::Requests, history(&values), hour, 500.0).expect("a finding");
    assert_eq!(f.direction, Direction::Up);
    assert!((f.usual - 100.0).abs() < 6.0, "{f:?}");
    assert!((f.ratio - 5.0).abs() < 0.3, "{f:?}");
    assert!(f.score > STRONG_Z && f.is_strong(), "{f:?}");
    // The same 500 at 14:00 is normal for a workspace that usually does 450.
    let busy = weeks(8, |t| office(t) * 4.5);
    assert_eq!(check(Metric::Requests, history(&busy), hour, 500.0), None);
}

#[test]
fn a_past_spike_does_not_become_usual() {
    let mut values = weeks(8, office);
    let hour = next(&values) + 14;
    values[(hour - MONDAY - 168) as usize] = 5_000.0; // last Monday 14:00
    let b = baseline(Metric::Requests, history(&values), hour).expect("a baseline");
    assert!((b.usual - 100.0).abs() < 6.0, "{b:?}");
    assert!(check(Metric::Requests, history(&values), hour, 400.0).is_some());
}

#[test]
fn an_outage_is_found_for_traffic_but_not_for_cost() {
    let values = weeks(8, office);
    let hour = next(&values) + 11;
    let f = check(Metric::Requests, history(&values), hour, 0.0).expect("a finding");
    assert_eq!(f.direction, Direction::Down);
    assert!(f.ratio < 0.01 && f.is_strong(), "{f:?}");
    let dollars: Vec<f64> = values.iter().map(|v| v / 10.0).collect();
    assert_eq!(check(Metric::Cost, history(&dollars), hour, 0.0), None);
    // At night (usually 20) a drop is below the 20-request floor.
    let night = next(&values) + 3;
    assert_eq!(check(Metric::Requests, history(&values), night, 0.0), None);
}

#[test]
fn tiny_workspaces_never_fire() {
    // Usually $0.10 an hour; $0.90 is 9× usual but under a dollar.
    let values = weeks(8, |t| if t.is_multiple_of(2) { 0.11 } else { 0.09 });
    let hour = next(&values);
    assert_eq!(check(Metric::Cost, history(&values), hour, 0.9), None);
    assert!(check(Metric::Cost, history(&values), hour, 3.0).is_some());
}

#[test]
fn slow_growth_is_not_flagged_but_a_fast_drift_is() {
    // +2% of the starting level a day for 8 weeks: today is ~1.6× the baseline weeks' median.
    let grow = |t: usize| office(t) * (1.0 + 0.02 * t as f64 / 24.0);
    let values = weeks(8, grow);
    let hour = next(&values) + 14;
    let today = grow((hour - MONDAY) as usize);
    assert_eq!(check(Metric::Requests, history(&values), hour, today), None);
    let b = baseline(Metric::Requests, history(&values), hour).expect("a baseline");
    assert!(
        b.level > 1.2 && (b.usual / today - 1.0).abs() < 0.1,
        "{b:?} vs {today}"
    );
    // Without the level adjustment usual lags a month behind.
    let flat = Tuning {
        level: false,
        ..Tuning::CHOSEN
    };
    let lagging =
        baseline_with(flat, Metric::Requests, history(&values), hour).expect("a baseline");
    assert!(lagging.usual < 0.8 * today, "{lagging:?} vs {today}");
    // A jump to 2.5× over the last day is still found: the 7-day median has not moved.
    let mut drifted = values.clone();
    let n = drifted.len();
    for (i, v) in drifted[n - 24..].iter_mut().enumerate() {
        *v *= 1.0 + 1.5 * (i + 1) as f64 / 24.0;
    }
    let f = check(Metric::Requests, history(&drifted), hour, today * 2.5);
    assert_eq!(f.map(|f| f.direction), Some(Direction::Up));
}

#[test]
fn detector_opens_once_and_resolves_once() {
    let weak = Some(finding(Direction::Up, 2.0, 5.0));
    let strong = Some(finding(Direction::Up, 5.0, 20.0));
    let mut d = Detector::default();
    let hours = [None, weak, weak, strong, None, weak, None, None, None];
    let transitions: Vec<Option<Transition>> = hours
        .iter()
        .enumerate()
        .map(|(h, f)| d.step(h as i64, *f))
        .collect();
    assert_eq!(
        transitions[2],
        Some(Transition::Opened {
            hour: 2,
            finding: finding(Direction::Up, 2.0, 5.0)
        })
    );
    assert_eq!(
        transitions[7],
        Some(Transition::Resolved {
            since: 2,
            hour: 7,
            peak: finding(Direction::Up, 5.0, 20.0)
        })
    );
    let count = transitions.iter().filter(|t| t.is_some()).count();
    assert_eq!(count, 2, "{transitions:?}");
    assert!(d.open().is_none());
}

#[test]
fn detector_rules_for_weak_strong_and_repeated_hours() {
    let weak = Some(finding(Direction::Up, 2.0, 5.0));
    // A weak finding alone, then a normal hour: nothing.
    let mut d = Detector::default();
    assert_eq!(d.step(10, weak), None);
    assert_eq!(d.step(11, None), None);
    assert_eq!(d.step(12, weak), None);
    // The same hour again (the evaluator runs every few minutes) does not confirm it...
    assert_eq!(d.step(12, weak), None);
    // ...a skipped hour breaks the run...
    assert_eq!(d.step(14, weak), None);
    // ...and the next consecutive one does.
    assert!(matches!(
        d.step(15, weak),
        Some(Transition::Opened { hour: 15, .. })
    ));
    // A strong outage opens at once.
    let mut d = Detector::default();
    let outage = Some(finding(Direction::Down, 0.0, -3.0));
    assert!(matches!(d.step(1, outage), Some(Transition::Opened { .. })));
    // The state survives a round trip through storage.
    let json = serde_json::to_string(&d).expect("serialises");
    let back: Detector = serde_json::from_str(&json).expect("deserialises");
    assert_eq!(back, d);
    assert_eq!(
        serde_json::from_str::<Detector>("{}").ok(),
        Some(Detector::default())
    );
}

#[test]
fn contributors_share_the_positive_excess() {
    let values = vec![
        ("feature=summarize".to_owned(), 90.0, 10.0),
        ("feature=chat".to_owned(), 30.0, 20.0),
        ("feature=search".to_owned(), 5.0, 15.0),
        ("feature=tag".to_owned(), 12.0, 10.0),
        ("feature=ocr".to_owned(), 11.0, 10.0),
        ("feature=bad".to_owned(), f64::NAN, 10.0),
    ];
    let shares = contributors(100.0, &values);
    assert_eq!(
        shares,
        vec![
            ("feature=summarize".to_owned(), 0.8),
            ("feature=chat".to_owned(), 0.1),
            ("feature=tag".to_owned(), 0.02),
        ]
    );
    // A total smaller than the positive excesses (others shrank): shares still add to ≤ 1.
    let shares = contributors(50.0, &values);
    assert!(shares.iter().map(|s| s.1).sum::<f64>() <= 1.0 + 1e-12);
    assert!(contributors(f64::NAN, &[]).is_empty());
    assert!(contributors(10.0, &[("a".to_owned(), 1.0, 5.0)]).is_empty());
}

#[test]
fn describe_reads_like_a_sentence() {
    let f = Finding {
        metric: Metric::Cost,
        direction: Direction::Up,
        value: 84.0,
        usual: 20.0,
        ratio: 4.2,
        score: 12.0,
    };
    let label = hour_of_week_label(MONDAY + 24 + 14, 0);
    let text = describe(&f, &label, &[("feature=summarize".to_owned(), 0.8)]);
    assert_eq!(
        text,
        "cost 4.2× usual for Tuesday 14:00 ($84.00, usually $20.00); 80% from feature=summarize"
    );
    let down = Finding {
        metric: Metric::Requests,
        direction: Direction::Down,
        value: 12.0,
        usual: 400.0,
        ratio: 0.03,
        score: -9.0,
    };
    assert_eq!(
        describe(&down, "Friday 09:00", &[]),
        "requests down to 3% of usual for Friday 09:00 (12, usually 400)"
    );
}

#[test]
fn hour_of_week_labels() {
    assert_eq!(hour_of_week_label(0, 0), "Thursday 00:00");
    assert_eq!(hour_of_week_label(MONDAY + 14, 0), "Monday 14:00");
    assert_eq!(hour_of_week_label(MONDAY + 14, 330), "Monday 19:30");
    assert_eq!(hour_of_week_label(MONDAY, -60), "Sunday 23:00");
    assert_eq!(hour_of_week_label(-1, 0), "Wednesday 23:00");
    // Extremes do not overflow.
    let _ = hour_of_week_label(i64::MIN, i32::MIN);
    let _ = hour_of_week_label(i64::MAX, i32::MAX);
}

#[test]
fn error_rate_needs_enough_requests() {
    assert!(error_rate(1.0, 3.0).is_nan());
    assert!(error_rate(1.0, f64::NAN).is_nan());
    assert_eq!(error_rate(5.0, 100.0), 0.05);
    assert_eq!(error_rate(500.0, 100.0), 1.0);
    // 2% usual, 30% now: a finding.
    let values = weeks(8, |t| if t.is_multiple_of(3) { f64::NAN } else { 0.02 });
    let hour = next(&values) + 1;
    let f = check(Metric::ErrorRate, history(&values), hour, 0.3).expect("a finding");
    assert_eq!(f.direction, Direction::Up);
    assert_eq!(check(Metric::ErrorRate, history(&values), hour, 0.0), None);
}

#[test]
fn never_panics_on_garbage() {
    let mut rng = StdRng::seed_from_u64(3);
    let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -5.0, 0.0, 1e300];
    let metrics = [
        Metric::Cost,
        Metric::Requests,
        Metric::Tokens,
        Metric::ErrorRate,
    ];
    for _ in 0..200 {
        let values: Vec<f64> = (0..rng.random_range(0..3 * 168))
            .map(|_| {
                if rng.random_bool(0.3) {
                    specials[rng.random_range(0..specials.len())]
                } else {
                    rng.random_range(0.0..1000.0)
                }
            })
            .collect();
        let start = [i64::MIN, -5, 0, i64::MAX - 10][rng.random_range(0..4)];
        let hour = [i64::MIN, 0, start, i64::MAX][rng.random_range(0..4)]
            .saturating_add(rng.random_range(0..600));
        let value = specials[rng.random_range(0..specials.len())];
        let metric = metrics[rng.random_range(0..4)];
        let all = Hourly {
            start,
            values: &values,
        };
        if let Some(f) = check(metric, all, hour, value) {
            assert!(f.ratio.is_finite() && f.score.is_finite(), "{f:?}");
        }
        let _ = baseline(metric, all, hour);
        let mut d = Detector::default();
        let _ = d.step(hour, None);
    }
    // Every hour of a garbage series with enough history.
    let values: Vec<f64> = (0..3 * 168).map(|i| specials[i % specials.len()]).collect();
    for h in 0..168 {
        let all = history(&values);
        for &v in &specials {
            if let Some(f) = check(Metric::Requests, all, MONDAY + 2 * 168 + h, v) {
                assert!(f.ratio.is_finite() && f.score.is_finite(), "{f:?}");
            }
        }
    }
}
