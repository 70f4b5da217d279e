//! DynamoDB write units per event at batch size 100 (budget: 1.3; the floor is 1.0, one small item
//! per event). Runs the DynamoDB adapter against the DynamoDB-compatible server `make bench` starts
//! (moto) and reports two figures: the units the server reported in ConsumedCapacity, and the
//! units DynamoDB would charge by its sizing rule (one per started KiB of each item written),
//! computed from the items the adapter actually sent. moto reports a flat unit per write request,
//! so the sized figure is the one to compare with the budget.
//!
//! Wide rollup views (end-users, dimensions within a feature or source) are written as one delta
//! item per batch and folded into rollup items by compaction, which the ingest function runs at
//! most once a minute per workspace and instance. Its writes are shared by every batch since the
//! last run, so the figure depends on how many batches one run folds: reported for 1 (a workspace
//! sending one batch a minute), 10 and 100.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use llmtrack_shared::adapters::dynamodb::DynamoStore;
use llmtrack_shared::domain::event::{self, Context};
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::domain::time::month_of;
use llmtrack_shared::ports::prelude::*;
use llmtrack_shared::ports::{Quota, Workspace};
use serde_json::json;

const FEATURES: [&str; 3] = ["chat", "search", "summarize"];

const BATCH: usize = 100;

async fn ingest_batches(
    store: &DynamoStore,
    ws: &WorkspaceId,
    batches: usize,
    per_compaction: usize,
    now: i64,
) {
    let ctx = Context {
        now_ms: now,
        source: "production",
        plan: Plan::Team,
        prices: PriceTable::bundled(),
    };
    let models = [
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet-4-20250514",
        "gemini-2.5-flash",
        "in-house-7b",
    ];
    let quota = Quota {
        month: month_of(now),
        limit: 10_000_000,
    };
    for b in 0..batches {
        let events: Vec<_> = (0..BATCH)
            .map(|i| {
                let n = b * BATCH + i;
                let v = json!({
                    "id": format!("0f8c2b1e-4a7d-4c1b-9e3f-{n:012}"),
                    // A steady stream: each batch covers half a minute, so it touches one hour or two.
                    "timestamp": now - 3_600_000 + (n as i64) * 300,
                    "provider": "openai",
                    "model": models[n % models.len()],
                    "feature": FEATURES[n % 3],
                    "user_id": format!("user-{}", n % 50),
                    "input_tokens": 1200, "cached_input_tokens": 400, "output_tokens": 300,
                    "latency_ms": 300.0 + ((n * 7919) % 4000) as f64,
                    "status": if n.is_multiple_of(20) { "error" } else { "success" },
                    "metadata": {"region": "eu-west-1", "attempt": 1}
                });
                event::validate(&serde_json::value::to_raw_value(&v).unwrap(), &ctx)
                    .unwrap()
                    .0
            })
            .collect();
        store.ingest(ws, &events, &quota).await.unwrap();
        if (b + 1) % per_compaction == 0 || b + 1 == batches {
            store.compact_now(ws).await.unwrap();
        }
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; under `cargo test` this runs as a quick smoke test.
    // (batches, batches per compaction run)
    let runs: &[(usize, usize)] = if std::env::args().any(|a| a == "--bench") {
        &[(10, 1), (30, 10), (100, 100)]
    } else {
        &[(1, 1)]
    };
    let endpoint = std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT: run with `make bench`");
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .build();
    // One writer: compaction may fold a batch as soon as it is finished.
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        &format!("bench-{}", ulid::Ulid::new().to_string().to_lowercase()),
    )
    .with_immediate_compaction();
    store.create_table().await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    for &(batches, per_compaction) in runs {
        let ws = Workspace {
            id: WorkspaceId::generate(now),
            name: "Bench".into(),
            plan: Plan::Team,
            timezone: "UTC".into(),
            created_ms: now,
            deleting: None,
        };
        store.create_workspace(&ws).await.unwrap();
        store.capacity().reset();
        ingest_batches(&store, &ws.id, batches, per_compaction, now).await;
        let events = (BATCH * batches) as f64;
        let c = store.capacity();
        println!(
            "dynamodb_wcu: {events} events in batches of {BATCH}, compaction every {per_compaction} batches: {} write requests; reported {:.1} WCU ({:.3}/event); sized {} WCU ({:.3}/event)",
            c.write_requests(),
            c.reported_write_units(),
            c.reported_write_units() / events,
            c.sized_write_units(),
            c.sized_write_units() as f64 / events
        );
    }
}
