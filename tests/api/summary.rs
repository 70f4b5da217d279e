//! The summary endpoint against exact answers: totals, costs and latency percentiles computed
//! from the raw events.

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::plan::Plan;
use serde_json::{Value, json};

use crate::support::*;

/// The exact percentile the API's percentiles approximate: rank floor(q·(n−1)).
fn exact_percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() as f64 - 1.0)) as usize]
}

#[tokio::test]
async fn summary_totals_equal_a_direct_computation() {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Pro).await;
    let key = app.key(&ws, Scope::Ingest, "production").await;
    let read = app.key(&ws, Scope::Read, "scripts").await;
    let now = now_ms();
    let events: Vec<Value> = (0..400)
        .map(|i| event(i, now - (i as i64) * 300_000))
        .collect();
    for chunk in events.chunks(100) {
        assert_eq!(
            app.post_events(&key, &json!({"events": chunk})).await.0,
            200
        );
    }
    let from = chrono::DateTime::from_timestamp_millis(now - 400 * 300_000 - 3_600_000)
        .unwrap()
        .to_rfc3339();
    let (status, s) = app
        .summary(&read, &format!("?from={}", urlencode(&from)))
        .await;
    assert_eq!(status, 200, "{s}");
    let s = &s["metrics"];

    let sum = |f: &str| {
        events
            .iter()
            .map(|e| e[f].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(s["requests"], 400);
    assert_eq!(
        s["errors"].as_u64().unwrap(),
        events.iter().filter(|e| e["status"] == "error").count() as u64
    );
    assert_eq!(s["tokens"]["input"].as_u64().unwrap(), sum("input_tokens"));
    assert_eq!(
        s["tokens"]["output"].as_u64().unwrap(),
        sum("output_tokens")
    );
    assert_eq!(
        s["tokens"]["cached_input"].as_u64().unwrap(),
        sum("cached_input_tokens")
    );
    assert_eq!(
        s["tokens"]["reasoning"].as_u64().unwrap(),
        sum("reasoning_tokens")
    );
    let unpriced = events
        .iter()
        .filter(|e| e["model"] == "in-house-7b" && e.get("cost_usd").is_none())
        .count();
    assert_eq!(s["unpriced"].as_u64().unwrap(), unpriced as u64);
    let mut latencies: Vec<f64> = events
        .iter()
        .map(|e| e["latency_ms"].as_f64().unwrap())
        .collect();
    latencies.sort_by(f64::total_cmp);
    for (name, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
        let exact = exact_percentile(&latencies, q);
        let got = s["latency_ms"][name].as_f64().unwrap();
        assert!(
            (got - exact).abs() <= exact * 0.01,
            "{name}: {got} vs exact {exact}"
        );
    }
    // Cost: recomputed from the stored, priced events.
    let stored = all_events(app.store.as_ref(), &ws).await;
    let cost: i64 = stored.iter().filter_map(|e| e.cost_pico).sum();
    assert!((s["cost_usd"].as_f64().unwrap() - cost as f64 / 1e12).abs() < 1e-9);
}

#[tokio::test]
async fn summary_clamps_to_the_plan_window_and_rejects_bad_ranges() {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Free).await;
    let read = app.key(&ws, Scope::Read, "scripts").await;
    let (status, s) = app.summary(&read, "?from=last_30d").await;
    assert_eq!(status, 200);
    assert_eq!(s["covered"]["clamped"], true, "the free plan shows 7 days");
    let (status, s) = app
        .summary(&read, "?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")
        .await;
    assert_eq!(status, 400);
    assert!(s["error"]["message"].as_str().unwrap().contains("before"));
    let (status, s) = app.summary(&read, "?from=yesterday").await;
    assert_eq!(status, 400);
    assert!(s["error"]["message"].as_str().unwrap().contains("`from`"));
}
