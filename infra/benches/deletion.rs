//! Deletion speed on SQLite: a range deletion (one source, ten days, every aggregate rewritten)
//! and a whole-workspace purge of a workspace with 30 days of events, run by the deletion job as
//! `llmtrack serve` runs it. Reports events deleted per second, and the longest purge page: the
//! longest the single SQLite writer is held, which is how long other workspaces' ingest can wait
//! behind a deletion. Run with `make bench`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use llmtrack_deletion::job::{self, Deps, Spec};
use llmtrack_shared::adapters::folder::FolderArchive;
use llmtrack_shared::adapters::outbox::Outbox;
use llmtrack_shared::adapters::sqlite::SqliteStore;
use llmtrack_shared::domain::deletion::Scope;
use llmtrack_shared::domain::event::{self, Context, Event};
use llmtrack_shared::domain::ids::{UserId, WorkspaceId};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::domain::rollup::{Dimension, View};
use llmtrack_shared::domain::time::{HOUR_MS, month_of};
use llmtrack_shared::ports::{DynStore, Quota, SystemClock};
use serde_json::json;

const DAYS: i64 = 30;
const MODELS: [&str; 3] = ["gpt-4o", "gpt-4o-mini", "o3"];
const FEATURES: [&str; 3] = ["chat", "search", "summarize"];

fn events(n: usize, now: i64, prices: &PriceTable) -> Vec<Event> {
    let span = DAYS * 24 * HOUR_MS;
    (0..n)
        .map(|i| {
            let source = if i % 2 == 0 { "production" } else { "staging" };
            let ts = now - span + (i as i64 * span / n as i64);
            let raw = json!({
                "id": format!("ev-{i}"), "timestamp": ts, "provider": "openai",
                "model": MODELS[i % 3],
                "feature": FEATURES[i % 3],
                "user_id": format!("user-{}", i % 50),
                "input_tokens": 500 + i % 700, "output_tokens": 100 + i % 300,
                "latency_ms": 200 + (i * 7919) % 3000,
                "status": if i % 20 == 0 { "error" } else { "success" },
            });
            let ctx = Context {
                now_ms: now,
                source,
                plan: Plan::Team,
                prices,
                custom: llmtrack_shared::domain::pricing::custom::Rules::none(),
            };
            let raw = serde_json::value::to_raw_value(&raw).unwrap();
            event::validate(&raw, &ctx).unwrap().0
        })
        .collect()
}

async fn fill(store: &DynStore, ws: &WorkspaceId, n: usize, now: i64) {
    let prices = PriceTable::bundled();
    for chunk in events(n, now, prices).chunks(1_000) {
        // Quota is reserved per month: one batch per month, as ingest would receive them.
        let mut by_month: BTreeMap<String, Vec<Event>> = BTreeMap::new();
        for e in chunk {
            by_month
                .entry(month_of(e.ts_ms))
                .or_default()
                .push(e.clone());
        }
        for (month, batch) in by_month {
            let quota = Quota {
                month,
                limit: u64::MAX,
            };
            store.ingest(ws, &batch, &quota).await.unwrap();
        }
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; under `cargo test` this runs as a quick smoke test.
    let n = if std::env::args().any(|a| a == "--bench") {
        300_000
    } else {
        2_000
    };
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("bench.sqlite3")).unwrap());
    let now = chrono::Utc::now().timestamp_millis();
    let ws = llmtrack::admin::create_workspace(store.as_ref(), "Bench", Plan::Team, now)
        .await
        .unwrap()
        .id;
    let t = Instant::now();
    fill(&store, &ws, n, now).await;
    println!(
        "filled {n} events over {DAYS} days in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let deps = Deps {
        store: job::DeletionPorts::of(&store),
        clock: Arc::new(SystemClock),
        archive: Arc::new(
            FolderArchive::open(&dir.path().join("archive"), "http://127.0.0.1:1").unwrap(),
        ),
        mailer: Arc::new(Outbox::new(dir.path().join("outbox")).unwrap()),
        payments: None,
        public_url: "http://127.0.0.1:1".into(),
        page: job::PURGE_PAGE,
        in_flight_ms: 0,
        backups: llmtrack_shared::domain::deletion::Backups::Operator,
    };
    let spec = |scope| Spec {
        scope,
        requested_by: UserId::generate(now),
        notify: None,
        purge_after_ms: now,
    };

    // A range: staging's events of the ten days in the middle of the month.
    let from = now - 20 * 24 * HOUR_MS;
    let range = spec(Scope::Usage {
        from_ms: from,
        to_ms: from + 10 * 24 * HOUR_MS,
        source: Some("staging".into()),
    });
    let j = job::new_job(&ws, &range, now).unwrap();
    assert!(store.begin_deletion(&j, false).await.unwrap());
    let t = Instant::now();
    job::run(&deps, j.clone(), None).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    let done = store.job(&ws, &j.id).await.unwrap().unwrap();
    let deleted = done.result.as_ref().unwrap()["deleted"]["events"]
        .as_u64()
        .unwrap();
    println!(
        "range deletion: {deleted} events in {secs:.2} s ({:.0} events/s), 240 hours' rollups rewritten",
        deleted as f64 / secs
    );

    // The whole workspace, page by page as the job runs it, each page timed.
    let whole = job::new_job(&ws, &spec(Scope::Workspace), now).unwrap();
    assert!(store.begin_deletion(&whole, true).await.unwrap());
    let left = store
        .rollups(&ws, &View::of(Dimension::Total), 0, i64::MAX / 2)
        .await
        .unwrap()
        .iter()
        .map(|(_, r)| r.requests)
        .sum::<u64>();
    let t = Instant::now();
    let (mut pages, mut longest) = (0, Duration::ZERO);
    loop {
        let p = Instant::now();
        let page = store.purge_workspace(&ws, job::PURGE_PAGE).await.unwrap();
        longest = longest.max(p.elapsed());
        pages += 1;
        if page.done {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "workspace purge: {left} events and their rollups in {secs:.2} s ({:.0} events/s), {pages} pages of {}, longest page {:.1} ms",
        left as f64 / secs,
        job::PURGE_PAGE,
        longest.as_secs_f64() * 1000.0
    );
}
