//! Local HTTP ingest throughput: the real app over SQLite on loopback, batches of 100 events,
//! several concurrent clients (budget: 50,000 events/s on a 2-core machine). Run with `make bench`.
//! Request bodies are serialised before the clock starts so the figure is the server's.

use std::sync::Arc;
use std::time::Instant;

use llmtrack_shared::adapters::sqlite::SqliteStore;
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::{DynStore, SystemClock};
use serde_json::json;

const FEATURES: [&str; 3] = ["chat", "search", "summarize"];

const BATCH: usize = 100;
const CLIENTS: usize = 8;

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; under `cargo test` this runs as a quick smoke test.
    let batches_per_client = if std::env::args().any(|a| a == "--bench") {
        250
    } else {
        2
    };
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(SqliteStore::open(&dir.path().join("bench.sqlite3")).unwrap());
    let now = chrono::Utc::now().timestamp_millis();
    let ws = llmtrack::admin::create_workspace(store.as_ref(), "Bench", Plan::Team, now)
        .await
        .unwrap();
    let (_, key) = llmtrack::admin::create_key(
        store.as_ref(),
        ws.id.as_str(),
        "bench",
        "production",
        Scope::Ingest,
        now,
    )
    .await
    .unwrap();
    let key = key.expose().to_owned();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mail = tempfile::tempdir().unwrap();
    let app = llmtrack::app(llmtrack::Parts {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        mailer: Arc::new(
            llmtrack_shared::adapters::outbox::Outbox::new(mail.path().join("outbox")).unwrap(),
        ),
        web: llmtrack_shared::config::WebConfig::new(&format!("http://{addr}"), vec![]).unwrap(),
        archive: Arc::new(
            llmtrack_shared::adapters::folder::FolderArchive::open(
                &mail.path().join("archive"),
                &format!("http://{addr}"),
            )
            .unwrap(),
        ),
        stripe: None,
        alert_key: b"test alert signing key, 32 bytes..".to_vec(),
        // The alert tests run their webhook receivers on this machine.
        allow_local_webhooks: true,
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let models = [
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet-4-20250514",
        "gemini-2.5-flash",
        "in-house-7b",
    ];
    let bodies: Vec<Vec<Vec<u8>>> = (0..CLIENTS)
        .map(|c| {
            (0..batches_per_client)
                .map(|b| {
                    let events: Vec<_> = (0..BATCH)
                        .map(|i| {
                            let n = (c * batches_per_client + b) * BATCH + i;
                            json!({
                                "id": format!("bench-{n}"),
                                "timestamp": now - (n as i64 % 86_400) * 1000,
                                "provider": "openai",
                                "model": models[n % models.len()],
                                "feature": FEATURES[n % 3],
                                "user_id": format!("user-{}", n % 50),
                                "input_tokens": 1200,
                                "cached_input_tokens": 400,
                                "output_tokens": 300,
                                "latency_ms": 200.0 + (n % 2000) as f64,
                                "status": if n.is_multiple_of(20) { "error" } else { "success" },
                                "metadata": {"region": "eu-west-1"}
                            })
                        })
                        .collect();
                    serde_json::to_vec(&json!({ "events": events })).unwrap()
                })
                .collect()
        })
        .collect();

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let url = format!("http://{addr}/v1/events");
    let start = Instant::now();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|batches| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            tokio::spawn(async move {
                for body in batches {
                    let resp = http
                        .post(&url)
                        .bearer_auth(&key)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 200);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    let events = (CLIENTS * batches_per_client * BATCH) as f64;
    println!(
        "http_ingest: {events} events in batches of {BATCH} from {CLIENTS} clients over SQLite: {:.2} s, {:.0} events/s",
        elapsed.as_secs_f64(),
        events / elapsed.as_secs_f64()
    );
}
