//! Local HTTP ingest under load: the real app behind `llmtrack serve`'s own server loop, over
//! SQLite, on loopback; batches of 100 events from 4 and from 16 concurrent clients, as live
//! traffic (concurrent batches of the same minutes) and as a backfill (each client hours of its
//! own). Reports events/s and the p50/p99/max latency of a request, and sets them against a bare
//! SQLite insert of the same rows (the same table layout and pragmas, one thread, one
//! transaction per batch) measured in the same run. Budgets: p99 under 50 ms at 4 clients; at least half the bare
//! insert's rate. Run with `make bench`; under `cargo test` it runs as a quick smoke test.
//! Request bodies are serialised before the clock starts so the figures are the server's.
//! The same calls are also sent as OpenTelemetry exports (`POST /otlp/v1/traces`, protobuf):
//! each LLM span inside its HTTP server span, 100 calls (200 spans) a request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmtrack_shared::adapters::sqlite::SqliteStore;
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::event::{self, Context};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::ports::{DynStore, SystemClock};
use serde_json::{Value, json};

const FEATURES: [&str; 3] = ["chat", "search", "summarize"];
const MODELS: [&str; 5] = [
    "gpt-4o",
    "gpt-4o-mini",
    "claude-sonnet-4-20250514",
    "gemini-2.5-flash",
    "in-house-7b",
];
const BATCH: usize = 100;

/// Event `n` of a run: five models, three features, 50 end-users, over the last day.
fn event(n: usize, now: i64) -> Value {
    json!({
        "id": format!("bench-{n}"),
        "timestamp": now - (n as i64 % 86_400) * 1000,
        "provider": "openai",
        "model": MODELS[n % MODELS.len()],
        "feature": FEATURES[n % 3],
        "user_id": format!("user-{}", n % 50),
        "input_tokens": 1200,
        "cached_input_tokens": 400,
        "output_tokens": 300,
        "latency_ms": 200.0 + (n % 2000) as f64,
        "status": if n.is_multiple_of(20) { "error" } else { "success" },
        "metadata": {"region": "eu-west-1"}
    })
}

/// Event `n` as an instrumented app exports it: the HTTP server span, and the chat span
/// (GenAI attributes) inside it.
fn spans(n: usize, now: i64) -> [opentelemetry_proto::tonic::trace::v1::Span; 2] {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::trace::v1::{Span, Status, status::StatusCode};
    let kv = |key: &str, value: Value| KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    };
    let text = |key: &str, v: &str| kv(key, Value::StringValue(v.into()));
    let int = |key: &str, v: i64| kv(key, Value::IntValue(v));
    let e = event(n, now);
    let start = e["timestamp"].as_i64().unwrap() as u64 * 1_000_000;
    let trace: Vec<u8> = (n as u128).to_be_bytes().to_vec();
    let call = Span {
        trace_id: trace.clone(),
        span_id: (n as u64 * 2 + 1).to_be_bytes().to_vec(),
        parent_span_id: (n as u64 * 2).to_be_bytes().to_vec(),
        name: format!("chat {}", e["model"].as_str().unwrap()),
        kind: 3,
        start_time_unix_nano: start,
        end_time_unix_nano: start + e["latency_ms"].as_f64().unwrap() as u64 * 1_000_000,
        attributes: vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.provider.name", "openai"),
            text("gen_ai.request.model", e["model"].as_str().unwrap()),
            int("gen_ai.usage.input_tokens", 1200),
            int("gen_ai.usage.cache_read.input_tokens", 400),
            int("gen_ai.usage.output_tokens", 300),
            text("llmtrack.feature", e["feature"].as_str().unwrap()),
            text("user.id", e["user_id"].as_str().unwrap()),
        ],
        status: (e["status"] == "error").then(|| Status {
            code: StatusCode::Error as i32,
            ..Status::default()
        }),
        ..Span::default()
    };
    let server = Span {
        trace_id: trace,
        span_id: (n as u64 * 2).to_be_bytes().to_vec(),
        name: "POST /answer".into(),
        kind: 2,
        start_time_unix_nano: start - 2_000_000,
        end_time_unix_nano: call.end_time_unix_nano + 1_000_000,
        attributes: vec![
            text("http.request.method", "POST"),
            text("http.route", "/answer"),
        ],
        ..Span::default()
    };
    [server, call]
}

/// Events `first..first + BATCH` as one protobuf export.
fn otlp_body(first: usize, now: i64) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    use prost::Message as _;
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (first..first + BATCH).flat_map(|n| spans(n, now)).collect(),
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

/// How the calls are sent.
#[derive(Clone, Copy, PartialEq)]
enum Wire {
    /// `POST /v1/events`, a JSON batch.
    Json,
    /// `POST /otlp/v1/traces`, a protobuf export.
    Otlp,
}

struct Run {
    events: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, q: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l[((l.len() - 1) as f64 * q).round() as usize]
    }
}

/// The app on a fresh store, behind the server loop, with a team workspace and an ingest key:
/// its base URL and the key.
async fn start() -> (String, String, tempfile::TempDir) {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = llmtrack::app(llmtrack::Parts {
        store,
        sqlite: None,
        clock: Arc::new(SystemClock),
        mailer: Arc::new(
            llmtrack_shared::adapters::outbox::Outbox::new(dir.path().join("outbox")).unwrap(),
        ),
        web: llmtrack_shared::config::WebConfig::new(&format!("http://{addr}"), vec![]).unwrap(),
        archive: Arc::new(
            llmtrack_shared::adapters::folder::FolderArchive::open(
                &dir.path().join("archive"),
                &format!("http://{addr}"),
            )
            .unwrap(),
        ),
        stripe: None,
        alert_key: b"bench alert signing key, 32 bytes".to_vec(),
        allow_local_webhooks: false,
        providers: Arc::new(llmtrack_shared::adapters::providers::ProviderClient::new(
            "http://127.0.0.1:9/v1",
            "http://127.0.0.1:9",
        )),
        vault: Arc::new(
            llmtrack_shared::adapters::keyfile::KeyFileVault::open_or_create(dir.path()).unwrap(),
        ),
    });
    tokio::spawn(llmtrack::server::run(
        listener,
        app,
        llmtrack::server::Limits::default(),
        Vec::new(),
        std::future::pending(),
    ));
    (format!("http://{addr}"), key.expose().to_owned(), dir)
}

/// `clients` concurrent clients, each sending its batches one after another.
/// Which events each client sends.
#[derive(Clone, Copy, PartialEq)]
enum Traffic {
    /// Batches dealt round-robin: what clients send at the same moment is of the same minutes,
    /// as when several instances of an application report their calls as they happen.
    Live,
    /// Each client a contiguous range of its own, hours apart from the others' (a backfill of
    /// history from several workers): concurrent batches share fewer rollup rows.
    Backfill,
}

impl Traffic {
    fn name(self) -> &'static str {
        match self {
            Traffic::Live => "live traffic",
            Traffic::Backfill => "backfill, a range each",
        }
    }
}

async fn http_run(clients: usize, batches_per_client: usize, traffic: Traffic, wire: Wire) -> Run {
    let (base, key, _dir) = start().await;
    let (url, content_type) = match wire {
        Wire::Json => (format!("{base}/v1/events"), "application/json"),
        Wire::Otlp => (format!("{base}/otlp/v1/traces"), "application/x-protobuf"),
    };
    let now = chrono::Utc::now().timestamp_millis();
    let bodies: Vec<Vec<Vec<u8>>> = (0..clients)
        .map(|c| {
            (0..batches_per_client)
                .map(|b| {
                    let batch = match traffic {
                        Traffic::Live => b * clients + c,
                        Traffic::Backfill => c * batches_per_client + b,
                    };
                    let first = batch * BATCH;
                    match wire {
                        Wire::Json => {
                            let events: Vec<Value> =
                                (first..first + BATCH).map(|n| event(n, now)).collect();
                            serde_json::to_vec(&json!({ "events": events })).unwrap()
                        }
                        Wire::Otlp => otlp_body(first, now),
                    }
                })
                .collect()
        })
        .collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|batches| {
            let (http, url, key) = (http.clone(), url.clone(), key.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(batches.len());
                for body in batches {
                    let sent = Instant::now();
                    let resp = http
                        .post(&url)
                        .bearer_auth(&key)
                        .header("content-type", content_type)
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 200);
                    resp.bytes().await.unwrap();
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    Run {
        events: clients * batches_per_client * BATCH,
        elapsed: start.elapsed(),
        latencies,
    }
}

/// The floor: the same events, validated and serialised beforehand, inserted into a table laid
/// out like the store's (same keys and indexes, same pragmas), one transaction per batch.
fn bare_sqlite(batches: usize) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let c = rusqlite::Connection::open(dir.path().join("bare.sqlite3")).unwrap();
    c.pragma_update(None, "journal_mode", "WAL").unwrap();
    c.pragma_update(None, "synchronous", "NORMAL").unwrap();
    c.pragma_update(None, "cache_size", -65_536).unwrap();
    c.pragma_update(None, "wal_autocheckpoint", 10_000).unwrap();
    c.execute_batch(
        "CREATE TABLE events (workspace_id TEXT NOT NULL, ts_ms INTEGER NOT NULL, id TEXT NOT NULL,
             idempotency_key TEXT, expires_ms INTEGER NOT NULL, body TEXT NOT NULL,
             PRIMARY KEY (workspace_id, ts_ms, id)) WITHOUT ROWID;
         CREATE UNIQUE INDEX events_by_key ON events (workspace_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
         CREATE INDEX events_by_expiry ON events (expires_ms);",
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let ctx = Context {
        now_ms: now,
        source: "production",
        plan: Plan::Team,
        prices: PriceTable::bundled(),
        custom: llmtrack_shared::domain::pricing::custom::Rules::none(),
    };
    // (ts_ms, id, idempotency key, expires_ms, body): the columns the bare insert writes.
    type Row = (i64, String, Option<String>, i64, String);
    let rows: Vec<Vec<Row>> = (0..batches)
        .map(|b| {
            (b * BATCH..(b + 1) * BATCH)
                .map(|n| {
                    let raw = serde_json::value::to_raw_value(&event(n, now)).unwrap();
                    let e = event::validate(&raw, &ctx).unwrap().0;
                    let body = serde_json::to_string(&e).unwrap();
                    (
                        e.ts_ms,
                        e.id.clone(),
                        e.idempotency_key(),
                        e.expires_ms,
                        body,
                    )
                })
                .collect()
        })
        .collect();
    let mut c = c;
    let mut latencies = Vec::with_capacity(batches);
    let start = Instant::now();
    for batch in rows {
        let t = Instant::now();
        let tx = c.transaction().unwrap();
        {
            let mut insert = tx
                .prepare_cached("INSERT INTO events VALUES ('ws_bench', ?1, ?2, ?3, ?4, ?5)")
                .unwrap();
            for (ts, id, key, expires, body) in batch {
                insert
                    .execute(rusqlite::params![ts, id, key, expires, body])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        latencies.push(t.elapsed());
    }
    Run {
        events: batches * BATCH,
        elapsed: start.elapsed(),
        latencies,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; under `cargo test` this runs as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let total_batches = if full { 2000 } else { 32 };
    let bare = tokio::task::spawn_blocking(move || bare_sqlite(total_batches))
        .await
        .unwrap();
    println!(
        "bare SQLite insert: {} events in batches of {BATCH}, 1 thread: {:.0} events/s (a batch: p50 {:.2} ms, p99 {:.2} ms)",
        bare.events,
        bare.rate(),
        ms(bare.percentile(0.5)),
        ms(bare.percentile(0.99)),
    );
    for (clients, traffic) in [
        (4, Traffic::Live),
        (16, Traffic::Live),
        (4, Traffic::Backfill),
        (16, Traffic::Backfill),
    ] {
        let run = http_run(clients, total_batches / clients, traffic, Wire::Json).await;
        println!(
            "http_ingest: {} events in batches of {BATCH} from {clients} clients ({}): {:.0} events/s ({:.2}x the bare insert); request p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            run.events,
            traffic.name(),
            run.rate(),
            run.rate() / bare.rate(),
            ms(run.percentile(0.5)),
            ms(run.percentile(0.99)),
            ms(*run.latencies.iter().max().unwrap()),
        );
    }
    for clients in [4, 16] {
        let run = http_run(clients, total_batches / clients, Traffic::Live, Wire::Otlp).await;
        println!(
            "otlp_ingest: {} LLM spans ({} spans) in exports of {BATCH} calls from {clients} clients (live traffic): {:.0} LLM spans/s ({:.2}x the bare insert); request p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            run.events,
            run.events * 2,
            run.rate(),
            run.rate() / bare.rate(),
            ms(run.percentile(0.5)),
            ms(run.percentile(0.99)),
            ms(*run.latencies.iter().max().unwrap()),
        );
    }
}
