//! The analytics API's edges: tenant isolation of cursors and exports, the plan's history
//! window, exports inline and as jobs, the forecast, and bad input.

use std::sync::Arc;

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::event::{self, Context};
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::domain::time::month_of;
use llmtrack_shared::ports::{Quota, Store};
use serde_json::{Value, json};

use crate::support::*;
use llmtrack_shared::ports::prelude::*;

const HOUR: i64 = 3_600_000;

async fn get(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    let resp = app
        .http
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Stores events straight through the store (faster than HTTP for volume, and able to place
/// events in the past as a long-lived workspace has them).
async fn store_events(store: &dyn Store, ws: &WorkspaceId, plan: Plan, times: &[i64], tag: &str) {
    let ctx = Context {
        now_ms: now_ms(),
        source: "production",
        plan,
        prices: PriceTable::bundled(),
        custom: llmtrack_shared::domain::pricing::custom::Rules::none(),
    };
    for (n, chunk) in times.chunks(1000).enumerate() {
        let mut events = Vec::new();
        for (i, ts) in chunk.iter().enumerate() {
            let raw = json!({
                "id": format!("{tag}-{n}-{i}"), "timestamp": ts, "provider": "openai", "model": "gpt-4o",
                "feature": tag, "user_id": format!("{tag}-user-{}", i % 9), "input_tokens": 1000 + i,
                "output_tokens": 200, "latency_ms": 100 + i % 700,
                "metadata": {"note": format!("{tag} padding to make rows realistically wide {i}")}
            });
            let raw = serde_json::value::to_raw_value(&raw).unwrap();
            events.push(event::validate(&raw, &ctx).expect("valid event").0);
        }
        let quota = Quota {
            month: month_of(now_ms()),
            limit: u64::MAX,
        };
        store.ingest(ws, &events, &quota).await.expect("ingest");
    }
}

#[tokio::test]
async fn cursors_and_exports_of_one_workspace_never_reach_another() {
    let app = spawn_app().await;
    let a = app.workspace(Plan::Pro).await;
    let b = app.workspace(Plan::Pro).await;
    let now = now_ms();
    let times: Vec<i64> = (0..120).map(|i| now - 60_000 * (i + 1)).collect();
    store_events(app.store.as_ref(), &a, Plan::Pro, &times, "alpha").await;
    store_events(app.store.as_ref(), &b, Plan::Pro, &times, "beta").await;
    let read_a = app.key(&a, Scope::Read, "dash").await;
    let read_b = app.key(&b, Scope::Read, "dash").await;

    // A's cursor, replayed by B, is refused; B's own pages never show A's events.
    let (status, page) = get(&app, &read_a, "/v1/events?limit=10&from=last_24h").await;
    assert_eq!(status, 200);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (status, body) = get(
        &app,
        &read_b,
        &format!("/v1/events?limit=10&from=last_24h&cursor={cursor}"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_cursor");
    // A cursor forged to name B's workspace but used with A's key: refused too.
    let forged = base64_url(&json!({"w": b.as_str(), "t": now, "i": "x"}).to_string());
    let (status, _) = get(&app, &read_a, &format!("/v1/events?cursor={forged}")).await;
    assert_eq!(status, 400);
    let (status, body) = get(&app, &read_a, "/v1/events?cursor=not-a-cursor").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
    let mut cursor = None::<String>;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/events?limit=50&from=last_24h&cursor={c}"),
            None => "/v1/events?limit=50&from=last_24h".to_owned(),
        };
        let (_, page) = get(&app, &read_b, &path).await;
        for e in page["events"].as_array().unwrap() {
            assert!(e["id"].as_str().unwrap().starts_with("beta"), "B saw {e}");
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }

    // Exports: A's contains only A's events; A's job is 404 for B.
    let resp = post(
        &app,
        &read_a,
        "/v1/exports",
        json!({"kind": "events", "format": "jsonl", "from": "last_24h"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body = resp.text().await.unwrap();
    assert_eq!(body.lines().count(), 120);
    assert!(body.lines().all(|l| l.contains("\"alpha-")) && !body.contains("beta"));
    let resp = post(
        &app,
        &read_a,
        "/v1/exports",
        json!({"kind": "events", "format": "csv", "workspace": b.as_str()}),
    )
    .await;
    assert_eq!(
        resp.status(),
        404,
        "a read key exports only its own workspace"
    );
    let job = app.store.unfinished_jobs().await.unwrap();
    assert!(job.is_empty());
}

fn base64_url(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test]
async fn large_exports_run_as_jobs_behind_expiring_links() {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Team).await;
    let other = app.workspace(Plan::Team).await;
    let now = now_ms();
    // About 200 bytes a CSV row: 40,000 events is over the 5 MB a response may carry.
    let times: Vec<i64> = (0..40_000).map(|i| now - 1000 * (i + 1)).collect();
    store_events(app.store.as_ref(), &ws, Plan::Team, &times, "big").await;
    let read = app.key(&ws, Scope::Read, "dash").await;
    let read_other = app.key(&other, Scope::Read, "dash").await;

    let resp = post(
        &app,
        &read,
        "/v1/exports",
        json!({"kind": "events", "format": "csv", "from": "last_7d"}),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let job: Value = resp.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    assert!(job["url"].is_null());
    let mut done = Value::Null;
    for _ in 0..200 {
        let (status, j) = get(&app, &read, &format!("/v1/exports/{id}")).await;
        assert_eq!(status, 200, "{j}");
        if j["state"] == "done" {
            done = j;
            break;
        }
        assert_ne!(j["state"], "failed", "{j}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(done["rows"], 40_000, "{done}");
    let (status, _) = get(&app, &read_other, &format!("/v1/exports/{id}")).await;
    assert_eq!(status, 404, "another workspace's export is not found");

    // The link downloads the file; the CSV parses and holds every event once.
    let url = done["url"].as_str().unwrap().to_owned();
    let resp = app.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let text = resp.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "id");
    let ids: std::collections::HashSet<String> =
        reader.records().map(|r| r.unwrap()[0].to_owned()).collect();
    assert_eq!(ids.len(), 40_000);
    // A tampered or expired link is refused.
    let tampered = url.replace("signature=", "signature=00");
    assert_eq!(app.http.get(&tampered).send().await.unwrap().status(), 403);
    let expired = regex_replace_expires(&url, now / 1000 - 10);
    assert_eq!(app.http.get(&expired).send().await.unwrap().status(), 403);

    // A breakdown export is small: answered inline, one row per value.
    let resp = post(
        &app,
        &read,
        "/v1/exports",
        json!({"kind": "breakdown", "format": "csv", "by": "user", "from": "last_7d"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert_eq!(text.lines().count(), 1 + 9, "{text}");
    assert!(text.starts_with("user,requests,errors,error_rate"));
}

fn regex_replace_expires(url: &str, expires: i64) -> String {
    let (head, tail) = url.split_once("expires=").unwrap();
    let rest = tail.split_once('&').map_or("", |(_, r)| r);
    format!("{head}expires={expires}&{rest}")
}

#[tokio::test]
async fn queries_never_show_data_past_the_plan_window() {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Free).await;
    let now = now_ms();
    // Kept by the store (TTL deletes late) but older than the free plan's 7 days.
    let old: Vec<i64> = (0..30).map(|i| now - 9 * 24 * HOUR - i * 60_000).collect();
    let recent: Vec<i64> = (0..20).map(|i| now - 2 * HOUR - i * 60_000).collect();
    // Validated as a longer plan would (the workspace was downgraded since).
    store_events(app.store.as_ref(), &ws, Plan::Team, &old, "old").await;
    store_events(app.store.as_ref(), &ws, Plan::Free, &recent, "new").await;
    let read = app.key(&ws, Scope::Read, "dash").await;

    let (status, s) = get(&app, &read, "/v1/stats/summary?from=last_30d").await;
    assert_eq!(status, 200);
    assert_eq!(s["metrics"]["requests"], 20);
    assert_eq!(s["covered"]["clamped"], true);
    assert_eq!(s["covered"]["history_days"], 7);
    let (_, b) = get(&app, &read, "/v1/stats/breakdown?by=feature&from=last_30d").await;
    assert_eq!(b["rows"].as_array().unwrap().len(), 1, "{b}");
    let (_, t) = get(
        &app,
        &read,
        "/v1/stats/timeseries?by=user&from=last_30d&granularity=day",
    )
    .await;
    let total: f64 = t["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["total"].as_f64().unwrap_or(0.0))
        .sum();
    assert!(total > 0.0 && t["covered"]["clamped"] == true);
    let (_, page) = get(&app, &read, "/v1/events?from=last_30d&limit=500").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 20);
    assert_eq!(page["clamped"], true);
    // A combination answered from raw events hides them too.
    let (_, s) = get(
        &app,
        &read,
        "/v1/stats/summary?from=last_30d&model=gpt-4o&user=old-user-1",
    )
    .await;
    assert_eq!(s["metrics"]["requests"], 0);
    let resp = post(
        &app,
        &read,
        "/v1/exports",
        json!({"kind": "events", "format": "jsonl", "from": "last_30d"}),
    )
    .await;
    assert_eq!(resp.text().await.unwrap().lines().count(), 20);
}

#[tokio::test]
async fn forecast_projects_the_month_from_rollups() {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Pro).await;
    let now = now_ms();
    let times: Vec<i64> = (0..24 * 20).map(|i| now - i * HOUR).collect();
    store_events(app.store.as_ref(), &ws, Plan::Pro, &times, "steady").await;
    let read = app.key(&ws, Scope::Read, "dash").await;
    let (status, f) = get(&app, &read, "/v1/stats/forecast").await;
    assert_eq!(status, 200, "{f}");
    let events = &f["events"];
    let (so_far, expected, low, high) = (
        events["so_far"].as_f64().unwrap(),
        events["expected"].as_f64().unwrap(),
        events["low"].as_f64().unwrap(),
        events["high"].as_f64().unwrap(),
    );
    assert!(so_far <= low && low <= expected && expected <= high, "{f}");
    // A steady 24 events a day: the month ends near what it has plus 24 a day to come.
    let left = f["days_in_month"].as_f64().unwrap() - f["days_elapsed"].as_f64().unwrap();
    let want = so_far + 24.0 * left;
    assert!((expected - want).abs() <= 0.05 * want, "{f}");
    assert!(f["cost_usd"]["expected"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn bad_analytics_input_gets_a_clear_4xx() {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Team).await;
    let read = app.key(&ws, Scope::Read, "dash").await;
    for (path, code, needle) in [
        (
            "/v1/stats/timeseries?metric=vibes",
            "invalid_metric",
            "`metric`",
        ),
        ("/v1/stats/breakdown?by=colour", "invalid_dimension", "`by`"),
        (
            "/v1/stats/breakdown?by=model&sort=nope",
            "invalid_metric",
            "`sort`",
        ),
        (
            "/v1/stats/summary?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "invalid_range",
            "before",
        ),
        (
            "/v1/stats/timeseries?granularity=hour&to=2026-12-01T00:00:00Z&from=2026-09-01T00:00:00Z",
            "invalid_range",
            "31 days",
        ),
        ("/v1/stats/summary?from=a&from=b", "invalid_query", "from"),
        ("/v1/stats/summary?from=yesterday", "invalid_time", "`from`"),
        (
            "/v1/stats/timeseries?tz=Mars/Olympus",
            "invalid_timezone",
            "`tz`",
        ),
        (
            "/v1/stats/timeseries?granularity=minute",
            "invalid_granularity",
            "`granularity`",
        ),
        (
            "/v1/stats/timeseries?by=model&top=500",
            "invalid_top",
            "`top`",
        ),
        (
            "/v1/stats/breakdown?by=model&limit=100000",
            "invalid_limit",
            "`limit`",
        ),
        ("/v1/events?limit=100000", "invalid_limit", "`limit`"),
        ("/v1/events?cursor=%%%", "invalid_cursor", "cursor"),
        ("/v1/events?meta=nokey", "invalid_filter", "`meta`"),
        (
            "/v1/stats/summary?status=maybe",
            "invalid_filter",
            "`status`",
        ),
    ] {
        let (status, body) = get(&app, &read, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }
    let resp = post(
        &app,
        &read,
        "/v1/exports",
        json!({"kind": "breakdown", "format": "csv"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let resp = post(
        &app,
        &read,
        "/v1/exports",
        json!({"kind": "everything", "format": "csv"}),
    )
    .await;
    assert_eq!(resp.status(), 400);
    let (status, _) = get(&app, &read, "/v1/exports/exp_nope").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_store_from_an_earlier_release_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llmtrack.sqlite3");
    let store = llmtrack_shared::adapters::sqlite::SqliteStore::open(&path).unwrap();
    let ws = llmtrack::admin::create_workspace(&store, "Old", Plan::Pro, now_ms())
        .await
        .unwrap()
        .id;
    let now = now_ms();
    let times: Vec<i64> = (0..50).map(|i| now - i * 600_000).collect();
    store_events(&store, &ws, Plan::Pro, &times, "legacy").await;
    drop(store);
    // Make it look like earlier schemas: no workspace timezone or key creator (before
    // accounts), rollups keyed by dimension (before views), no application id (before numbered
    // migrations).
    {
        let c = rusqlite_open(&path);
        c.execute_batch(
            "ALTER TABLE workspaces DROP COLUMN timezone;
             ALTER TABLE api_keys DROP COLUMN created_by;
             DROP TABLE rollups;
             CREATE TABLE rollups (workspace_id TEXT NOT NULL, dimension TEXT NOT NULL, hour INTEGER NOT NULL,
               value TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (workspace_id, dimension, hour, value)) WITHOUT ROWID;
             PRAGMA application_id = 0;",
        )
        .unwrap();
    }
    let store = llmtrack_shared::adapters::sqlite::SqliteStore::open(&path).unwrap();
    assert_rollups_match_events(&store, &ws).await;
    assert_eq!(store.workspace(&ws).await.unwrap().unwrap().timezone, "UTC");
    llmtrack::admin::create_workspace(&store, "New", Plan::Free, now_ms())
        .await
        .unwrap();
    llmtrack::admin::create_key(
        &store,
        ws.as_str(),
        "k",
        "production",
        Scope::Read,
        now_ms(),
    )
    .await
    .unwrap();
    let _ = Arc::new(store);
}

fn rusqlite_open(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[tokio::test]
async fn a_members_export_must_come_from_the_dashboard() {
    let app = spawn_app().await;
    let ada = app.sign_in("ada@example.com").await;
    let (status, ws) = ada.post("/v1/workspaces", json!({"name": "Acme"})).await;
    assert_eq!(status, 201, "{ws}");
    let id = ws["id"].as_str().unwrap();
    let body = json!({"kind": "events", "format": "csv", "workspace": id});
    let (status, _) = ada.post("/v1/exports", body.clone()).await;
    assert_eq!(status, 200, "from the dashboard's origin");
    let mut evil = ada.clone();
    evil.origin = Some("https://evil.example".into());
    let (status, err) = evil.post("/v1/exports", body).await;
    assert_eq!(status, 403, "{err}");
}

#[tokio::test]
async fn an_export_job_on_dynamodb_writes_to_s3_behind_a_presigned_link() {
    use llmtrack_query::export::{self, ExportKind, ExportSpec, Format};
    use llmtrack_shared::ports::{DynArchive, DynClock, DynStore, Job, JobState, SystemClock};

    let store: DynStore = Arc::new(dynamo_store().await);
    let archive: DynArchive = Arc::new(s3_archive().await);
    let clock: DynClock = Arc::new(SystemClock);
    let ws = llmtrack::admin::create_workspace(store.as_ref(), "Acme", Plan::Pro, now_ms())
        .await
        .unwrap()
        .id;
    let other = llmtrack::admin::create_workspace(store.as_ref(), "Other", Plan::Pro, now_ms())
        .await
        .unwrap()
        .id;
    let now = now_ms();
    let times: Vec<i64> = (0..60).map(|i| now - 60_000 * (i + 1)).collect();
    store_events(store.as_ref(), &ws, Plan::Pro, &times, "mine").await;
    store_events(store.as_ref(), &other, Plan::Pro, &times[..10], "theirs").await;
    let spec = ExportSpec {
        kind: ExportKind::Events,
        format: Format::Jsonl,
        from_ms: now - 2 * HOUR,
        to_ms: now,
        filters: Vec::new(),
        meta: None,
        by: None,
        tag: None,
        sort: None,
    };
    let job = Job {
        id: "exp_dynamo_s3".into(),
        workspace: ws.clone(),
        kind: export::JOB_KIND.into(),
        state: JobState::Queued,
        spec: serde_json::to_value(&spec).unwrap(),
        progress: Value::Null,
        result: None,
        created_ms: now,
        updated_ms: now,
        version: 0,
        expires_ms: None,
    };
    store.create_job(&job).await.unwrap();
    // As the jobs Lambda does with the job its stream record carries.
    export::run(
        &llmtrack_query::QueryPorts::of(&store),
        &archive,
        &clock,
        job.clone(),
    )
    .await
    .unwrap();
    let done = store.job(&ws, &job.id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Done, "{done:?}");
    let result = done.result.clone().unwrap();
    assert_eq!(result["rows"], 60);
    let key = result["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("exports/{ws}/")), "{key}");
    let body = String::from_utf8(archive.get(&key).await.unwrap().unwrap()).unwrap();
    assert_eq!(body.lines().count(), 60);
    assert!(!body.contains("theirs"));
    let url = archive
        .link(&key, "events.jsonl", std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let fetched = reqwest::get(&url).await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.text().await.unwrap(), body);
    // Run again (a retried stream record): a finished job is left as it is.
    export::run(
        &llmtrack_query::QueryPorts::of(&store),
        &archive,
        &clock,
        done.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        store.job(&ws, &job.id).await.unwrap().unwrap().version,
        done.version
    );
}
