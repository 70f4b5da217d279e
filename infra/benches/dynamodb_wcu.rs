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
//!
//! The batch-size runs are made again with three cost-allocation tag keys declared (`team`, 5
//! values; `project`, 12; `customer`, 300, past the bound of 100 kept values), tagged as the
//! ingest function tags them: three more workspace-wide views, and the writes that admit new
//! values to the workspace record.
//!
//! Then three traffic profiles for docs/COST.md (1, 10 and 100 million events a month, clients
//! flushing every few seconds, compaction once a minute): write units per event at the batch
//! size each volume gives, and the process CPU time per batch (the adapter, the AWS SDK and the
//! domain code; moto runs in another process). With `COST_INPUTS=FILE` they are also written
//! there as JSON, for `infra/aws/cost.py`.

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

async fn ingest_batches(
    store: &DynamoStore,
    ws: &WorkspaceId,
    batch: usize,
    batches: usize,
    per_compaction: usize,
    now: i64,
    tagged: bool,
) -> usize {
    let ctx = Context {
        now_ms: now,
        source: "production",
        plan: Plan::Team,
        prices: PriceTable::bundled(),
        custom: llmtrack_shared::domain::pricing::custom::Rules::none(),
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
    // Fixed in the hour, so runs compare: 50 minutes of events from :55 two hours ago, every
    // value in both hours they cross (the costlier case: each is a rollup item in each hour).
    let start = (now.div_euclid(3_600_000) - 2) * 3_600_000 + 55 * 60_000;
    let mut event_bytes = 0;
    for b in 0..batches {
        let events: Vec<_> = (0..batch)
            .map(|i| {
                let n = b * batch + i;
                let v = json!({
                    "id": format!("0f8c2b1e-4a7d-4c1b-9e3f-{n:012}"),
                    // A steady stream: each batch covers half a minute, so it touches one hour or two.
                    "timestamp": start + (n as i64) * 300,
                    "provider": "openai",
                    "model": models[n % models.len()],
                    "feature": FEATURES[n % 3],
                    "user_id": format!("user-{}", n % 50),
                    "input_tokens": 1200, "cached_input_tokens": 400, "output_tokens": 300,
                    "latency_ms": 300.0 + ((n * 7919) % 4000) as f64,
                    "status": if n.is_multiple_of(20) { "error" } else { "success" },
                    "metadata": {"region": "eu-west-1", "attempt": 1}
                });
                let mut v = v;
                if tagged {
                    v["metadata"]["team"] = json!(format!("team-{}", n % 5));
                    v["metadata"]["project"] = json!(format!("project-{}", n % 12));
                    v["metadata"]["customer"] = json!(format!("customer-{}", (n * 7) % 300));
                }
                event::validate(&serde_json::value::to_raw_value(&v).unwrap(), &ctx)
                    .unwrap()
                    .0
            })
            .collect();
        let mut events = events;
        if tagged {
            // As the ingest function does: the record as read with the key, values admitted.
            let keys = store.workspace(ws).await.unwrap().unwrap().tags;
            llmtrack_shared::usecases::tag_events(store, ws, &keys, &mut events)
                .await
                .unwrap();
        }
        event_bytes += events
            .iter()
            .map(|e| DynamoStore::event_item_bytes(ws, e))
            .sum::<usize>();
        store.ingest(ws, &events, &quota).await.unwrap();
        if (b + 1) % per_compaction == 0 || b + 1 == batches {
            store.compact_now(ws).await.unwrap();
        }
    }
    event_bytes
}

/// User plus system CPU time of this process so far, in seconds (Linux: /proc/self/stat, in
/// clock ticks of 10 ms, so only differences over many batches are meaningful).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are the 14th and 15th fields of the line: 12th and 13th after ')'.
    (tick(11) + tick(12)) / 100.0
}

struct Run {
    /// Events a month the profile stands for (0: the fixed-batch runs).
    monthly: u64,
    batch: usize,
    batches: usize,
    per_compaction: usize,
    /// With three tag keys declared.
    tagged: bool,
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; under `cargo test` this runs as a quick smoke test.
    let bench = std::env::args().any(|a| a == "--bench");
    let run = |monthly, batch, batches, per_compaction| Run {
        monthly,
        batch,
        batches,
        per_compaction,
        tagged: false,
    };
    let tagged = |batch, batches, per_compaction| Run {
        tagged: true,
        ..run(0, batch, batches, per_compaction)
    };
    let runs: Vec<Run> = if bench {
        vec![
            run(0, 100, 10, 1),
            run(0, 100, 30, 10),
            run(0, 100, 100, 100),
            tagged(100, 10, 1),
            tagged(100, 30, 10),
            tagged(100, 100, 100),
            // Profiles: events a second = monthly / 2.59 million; clients send a batch every
            // 13, 6.5 and 2.6 seconds, so a once-a-minute compaction folds 5, 9 and 23 batches.
            run(1_000_000, 5, 50, 5),
            run(10_000_000, 25, 45, 9),
            run(100_000_000, 100, 46, 23),
        ]
    } else {
        vec![
            run(0, 100, 1, 1),
            tagged(100, 2, 1),
            run(1_000_000, 5, 2, 2),
        ]
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
    let mut profiles = Vec::new();
    for r in &runs {
        let ws = Workspace {
            id: WorkspaceId::generate(now),
            name: "Bench".into(),
            plan: Plan::Team,
            timezone: "UTC".into(),
            created_ms: now,
            deleting: None,
            prices: Default::default(),
            budgets: Default::default(),
            digest: Default::default(),
            tags: Default::default(),
            spans: Default::default(),
        };
        store.create_workspace(&ws).await.unwrap();
        if r.tagged {
            let keys = ["team", "project", "customer"].map(str::to_owned);
            let declared = ws
                .tags
                .declare(&keys, now - 3 * 3_600_000)
                .unwrap()
                .unwrap();
            assert!(store.set_tags(&ws.id, &declared).await.unwrap());
        }
        store.capacity().reset();
        let cpu = cpu_seconds();
        let event_bytes = ingest_batches(
            &store,
            &ws.id,
            r.batch,
            r.batches,
            r.per_compaction,
            now,
            r.tagged,
        )
        .await;
        let cpu_ms_per_batch = (cpu_seconds() - cpu) * 1000.0 / r.batches as f64;
        let events = (r.batch * r.batches) as f64;
        let c = store.capacity();
        let sized = c.sized_write_units() as f64 / events;
        let requests = c.write_requests() as f64 / r.batches as f64;
        if r.monthly == 0 {
            println!(
                "dynamodb_wcu: {events} events in batches of {}{}, compaction every {} batches: {} write requests; reported {:.1} WCU ({:.3}/event); sized {} WCU ({sized:.3}/event)",
                r.batch,
                if r.tagged { " with 3 tag keys" } else { "" },
                r.per_compaction,
                c.write_requests(),
                c.reported_write_units(),
                c.reported_write_units() / events,
                c.sized_write_units(),
            );
        } else {
            println!(
                "dynamodb_wcu profile: {} events a month, batches of {}, compaction every {} batches: sized {sized:.3} WCU/event, {requests:.1} write requests/batch, CPU {cpu_ms_per_batch:.2} ms/batch",
                r.monthly, r.batch, r.per_compaction,
            );
            profiles.push(json!({
                "monthly_events": r.monthly,
                "batch": r.batch,
                "batches_per_compaction": r.per_compaction,
                "wcu_per_event": sized,
                "write_requests_per_batch": requests,
                "cpu_ms_per_batch": cpu_ms_per_batch,
                "event_item_bytes": event_bytes as f64 / events,
            }));
        }
    }
    if let Ok(path) = std::env::var("COST_INPUTS") {
        let doc = json!({
            "command": "COST_INPUTS=FILE infra/scripts/with-moto cargo bench -p llmtrack --bench dynamodb_wcu",
            "measured_on": llmtrack_shared::domain::time::rfc3339(now),
            "profiles": profiles,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
        println!("dynamodb_wcu: profiles written to {path}");
    }
}
