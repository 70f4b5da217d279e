//! Ingest CPU per event: parse, validate, price and fold into rollup deltas, for a batch of 100
//! realistic events (budget: 2 µs per event on one core). Run with `make bench`.

use criterion::{Criterion, Throughput, criterion_group};
use llmtrack_shared::domain::event::{self, Context};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::domain::pricing::custom::{Rules, WorkspacePrices};
use llmtrack_shared::domain::rollup::{Groups, Select};
use serde_json::json;

const FEATURES: [&str; 3] = ["chat", "search", "summarize"];

fn body(now: i64) -> Vec<u8> {
    let models = [
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet-4-20250514",
        "gemini-2.5-flash",
        "in-house-7b",
    ];
    let events: Vec<_> = (0..100)
        .map(|i| {
            json!({
                "id": format!("0f8c2b1e-4a7d-4c1b-9e3f-{i:012}"),
                "timestamp": now - i * 1000,
                "provider": "openai",
                "model": models[i as usize % models.len()],
                "feature": FEATURES[i as usize % 3],
                "user_id": format!("user-{}", i % 7),
                "input_tokens": 1200 + i,
                "cached_input_tokens": 400,
                "output_tokens": 300,
                "reasoning_tokens": 50,
                "latency_ms": 850.0 + i as f64,
                "status": if i % 20 == 0 { "error" } else { "success" },
                "metadata": {"region": "eu-west-1", "attempt": 1, "streamed": true}
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "events": events })).unwrap()
}

/// A workspace with its own prices, as a team with negotiated rates has them: discounts for two
/// providers, one model's own rates, a pattern for in-house models, one rule no longer in force.
fn workspace_prices() -> WorkspacePrices {
    serde_json::from_value(json!({"version": 5, "rules": [
        {"id": "pr_1", "provider": "openai", "model": "*", "kind": "discount", "percent": 12,
         "effective_from": "2025-01-01", "updated_at": "2025-01-01T00:00:00Z"},
        {"id": "pr_2", "provider": "anthropic", "model": "claude-*", "kind": "discount", "percent": 8,
         "updated_at": "2025-01-01T00:00:00Z"},
        {"id": "pr_3", "provider": "openai", "model": "gpt-4o-mini", "kind": "rates",
         "rates": {"input": 0.12, "output": 0.5}, "updated_at": "2025-01-01T00:00:00Z"},
        {"id": "pr_4", "provider": "*", "model": "in-house-*", "kind": "rates",
         "rates": {"input": 0.05, "output": 0.1}, "updated_at": "2025-01-01T00:00:00Z"},
        {"id": "pr_5", "provider": "google", "model": "*", "kind": "discount", "percent": 20,
         "effective_to": "2024-01-01", "updated_at": "2024-01-01T00:00:00Z"}
    ]}))
    .unwrap()
}

/// What ingest computes for the rollups of a batch, in both stores: the batch's groups, the total
/// view's deltas (written at once), and the groups encoded as the batch's delta (the other 16
/// views are expanded from it when the store folds it, work shared by many batches).
fn rollup_deltas(events: &[event::Event]) -> (usize, Vec<u8>) {
    let groups = Groups::of(events);
    let total = groups.views(Select::Core);
    (total.len(), postcard::to_stdvec(&groups).unwrap())
}

fn ingest_cpu(c: &mut Criterion) {
    let now = chrono::Utc::now().timestamp_millis();
    let body = body(now);
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(100));
    let ctx = context(now, Rules::none());
    group.bench_function("parse+validate+price+rollup, batch of 100", |b| {
        b.iter(|| whole_path(&body, &ctx))
    });
    let custom = workspace_prices();
    let custom = custom.ready();
    let with_rules = context(now, &custom);
    group.bench_function("with 5 workspace price rules", |b| {
        b.iter(|| whole_path(&body, &with_rules))
    });
    // The parts, to see where the time goes.
    let raw = event::split_body(&body).unwrap();
    let events: Vec<_> = raw
        .iter()
        .map(|r| event::validate(r, &ctx).unwrap().0)
        .collect();
    group.bench_function("part: split body", |b| {
        b.iter(|| std::hint::black_box(event::split_body(&body).unwrap()))
    });
    group.bench_function("part: validate+price", |b| {
        b.iter(|| {
            raw.iter()
                .map(|r| event::validate(r, &ctx).unwrap().0)
                .collect::<Vec<_>>()
        })
    });
    group.bench_function("part: rollup deltas", |b| {
        b.iter(|| std::hint::black_box(rollup_deltas(&events)))
    });
    group.finish();
}

/// With `INGEST_CPU_ITERATIONS=N`, runs the whole path N times and exits: a fixed amount of work
/// whose instructions `valgrind --tool=cachegrind` counts exactly, where timings on a shared
/// machine vary by a third from run to run (docs/PERFORMANCE.md). `INGEST_CPU_RULES=1` prices
/// with the workspace rules above.
fn fixed_work(iterations: usize) {
    let now = 1_764_547_200_000; // 2025-12-01, a fixed time: the same prices every run.
    let body = body(now);
    let custom = match std::env::var("INGEST_CPU_RULES").as_deref() {
        Ok("1") => workspace_prices(),
        _ => WorkspacePrices::default(),
    };
    let custom = custom.ready();
    let ctx = context(now, &custom);
    for _ in 0..iterations {
        whole_path(&body, &ctx);
    }
}

fn context<'a>(now: i64, custom: &'a Rules<'a>) -> Context<'a> {
    Context {
        now_ms: now,
        source: "production",
        plan: Plan::Pro,
        prices: PriceTable::bundled(),
        custom,
    }
}

/// A batch through the whole path: split, validate and price each event, the rollup work.
fn whole_path(body: &[u8], ctx: &Context) {
    let raw = event::split_body(body).unwrap();
    let events: Vec<_> = raw
        .iter()
        .map(|r| event::validate(r, ctx).unwrap().0)
        .collect();
    std::hint::black_box(rollup_deltas(&events));
}

criterion_group!(benches, ingest_cpu);

fn main() {
    match std::env::var("INGEST_CPU_ITERATIONS") {
        Ok(n) => fixed_work(n.parse().expect("INGEST_CPU_ITERATIONS is a number")),
        Err(_) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
