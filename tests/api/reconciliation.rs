//! Reconciliation with the providers' bills over HTTP, against local fakes of OpenAI's and
//! Anthropic's billing APIs that answer from the fixtures: connecting (keys checked, sealed, never
//! shown), the 30-day backfill, figures equal to the fixtures' sums to the cent, re-imports that
//! change nothing, retries, an interrupted import that resumes, coverage and drift against
//! hand-computed figures, removal, and the coverage and drift alerts — on SQLite and DynamoDB.

use std::sync::Arc;

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::DynStore;
use serde_json::{Value, json};

use crate::fake_providers::*;
use crate::support::*;

/// 2026-08-03 12:00 UTC: the fixtures' days (August 1st and 2nd) are inside the 30-day backfill.
const NOW: i64 = 1_785_758_400_000;
const AUG_1: i64 = 1_785_542_400_000;
const AUG_2: i64 = 1_785_628_800_000;

struct World {
    app: TestApp,
    fake: FakeProviders,
    clock: Arc<TestClock>,
    owner: Browser,
    ws: String,
    ingest: String,
}

async fn world(store: DynStore) -> World {
    let fake = FakeProviders::start().await;
    let clock = TestClock::at(NOW);
    let app = spawn_app_full(store, clock.clone(), None, None, Arc::new(fake.client())).await;
    let owner = app.sign_in("owner@example.com").await;
    let (_, ws) = owner.post("/v1/workspaces", json!({"name": "Acme"})).await;
    let ws = ws["id"].as_str().unwrap().to_owned();
    let id = WorkspaceId::parse(&ws).unwrap();
    app.store.set_plan(&id, Plan::Pro).await.unwrap();
    let ingest = app.key(&id, Scope::Ingest, "production").await;
    World {
        app,
        fake,
        clock,
        owner,
        ws,
        ingest,
    }
}

impl World {
    fn path(&self, rest: &str) -> String {
        format!("/v1/workspaces/{}/connections{rest}", self.ws)
    }

    async fn connect(&self, provider: &str, key: &str) -> (u16, Value) {
        self.owner
            .post(
                &self.path(""),
                json!({"provider": provider, "admin_key": key}),
            )
            .await
    }

    async fn reconciliation(&self, from: &str, to: &str) -> Value {
        let (status, body) = self
            .owner
            .get(&format!(
                "/v1/stats/reconciliation?workspace={}&from={from}&to={to}",
                self.ws
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// What LLMtrack's events say: half of gpt-4o's August 1st, and all of Sonnet's August 2nd.
    async fn send_events(&self) {
        let events = json!({"events": [
            {"id": "a", "timestamp": AUG_1 + 3_600_000, "provider": "openai", "model": "gpt-4o",
             "input_tokens": 750_000, "cached_input_tokens": 150_000, "output_tokens": 125_000,
             "cost_usd": 2.9375},
            {"id": "b", "timestamp": AUG_2 + 3_600_000, "provider": "anthropic",
             "model": "claude-sonnet-4-20250514", "input_tokens": 1_100_000,
             "output_tokens": 150_000, "cost_usd": 5.55},
        ]});
        let (status, body) = self.app.post_events(&self.ingest, &events).await;
        assert_eq!(status, 200, "{body}");
    }
}

fn model<'a>(r: &'a Value, provider: &str, name: &str) -> &'a Value {
    r["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["provider"] == provider && m["model"] == name)
        .unwrap_or_else(|| panic!("no {provider} {name} in {}", r["models"]))
}

fn causes(figures: &Value) -> Vec<&str> {
    figures["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect()
}

fn billed_cost(r: &Value, provider: &str) -> f64 {
    r["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["provider"] == provider)
        .map(|m| m["billed"]["cost_usd"].as_f64().unwrap())
        .sum()
}

/// The whole path on one store: refused keys, both providers connected and backfilled, the
/// fixtures' figures to the cent, coverage and drift as worked out by hand, a re-import that
/// changes nothing, and removal.
async fn connect_import_and_reconcile(store: DynStore) -> World {
    let w = world(store).await;
    // Several pages per import: at most one day per page.
    w.fake.set_page_cap(Some(1));

    // Keys the providers refuse, and fields that are wrong, say so.
    let (status, body) = w.connect("openai", OPENAI_PROJECT_KEY).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "provider_key_refused");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api.usage.read"),
        "{body}"
    );
    let (status, body) = w.connect("anthropic", ANTHROPIC_API_KEY).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = w.connect("gemini", OPENAI_ADMIN_KEY).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_connection"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("provider")
    );

    // Connected: the key is checked, sealed, shown by its last four characters only, and the last
    // 30 days are imported before the answer.
    let (status, openai) = w.connect("openai", OPENAI_ADMIN_KEY).await;
    assert_eq!(status, 201, "{openai}");
    assert_eq!(openai["key_hint"], "…wxyz");
    assert_eq!(openai["imported_through"], "2026-08-03");
    assert_eq!(openai["last_import"]["ok"], true, "{openai}");
    assert_eq!(openai["last_import"]["days"], 30);
    let (status, anthropic) = w.connect("anthropic", ANTHROPIC_ADMIN_KEY).await;
    assert_eq!(status, 201, "{anthropic}");
    assert_eq!(anthropic["last_import"]["ok"], true, "{anthropic}");
    let (status, list) = w.owner.get(&w.path("")).await;
    assert_eq!(status, 200);
    assert_eq!(list["connections"].as_array().unwrap().len(), 2);
    for secret in [OPENAI_ADMIN_KEY, ANTHROPIC_ADMIN_KEY] {
        for body in [&openai, &anthropic, &list] {
            assert!(!body.to_string().contains(&secret[..16]), "{body}");
        }
    }
    // Paged to the end: the fixture days came one page at a time.
    let costs = w.fake.requests_to("costs");
    assert!(costs.iter().any(|r| r.param("page").is_some()), "{costs:?}");
    assert!(
        w.fake
            .requests_to("usage_report/messages")
            .iter()
            .any(|r| r.params("group_by") == ["model", "workspace_id"])
    );

    w.send_events().await;
    let r = w.reconciliation("2026-08-01", "2026-08-03").await;

    // The fixtures' sums, to the cent: OpenAI $7.03 + $4.9475, Anthropic 1705.6685 + 1203.085
    // cents.
    assert_eq!(r["total"]["billed"]["cost_usd"], 41.065035);
    assert!((billed_cost(&r, "openai") - 11.9775).abs() < 1e-9);
    assert!((billed_cost(&r, "anthropic") - 29.087535).abs() < 1e-9);
    assert_eq!(r["days"][0]["day"], "2026-08-01");
    assert_eq!(r["days"][0]["billed"]["cost_usd"], 24.086685);
    assert_eq!(r["days"][1]["billed"]["cost_usd"], 16.97835);
    // 12,330,000 OpenAI tokens and 9,558,571 Anthropic ones; 875,000 + 1,250,000 seen.
    assert_eq!(r["total"]["billed"]["total_tokens"], 21_888_571);
    assert_eq!(r["total"]["tracked"]["total_tokens"], 2_125_000);
    assert_eq!(r["total"]["coverage_pct"], 9.71);
    assert_eq!(r["total"]["tracked"]["cost_usd"], 8.4875);
    assert_eq!(r["total"]["drift_pct"], -79.33);

    // gpt-4o (billed under its dated name): 2,930,000 tokens for $10.05, a third of them seen.
    let gpt4o = model(&r, "openai", "gpt-4o-2024-08-06");
    assert_eq!(gpt4o["tracked_model"], "gpt-4o");
    assert_eq!(gpt4o["billed"]["total_tokens"], 2_930_000);
    assert_eq!(
        gpt4o["billed"]["tokens"],
        json!({"input": 2_100_000, "cached_input": 400_000, "cache_write": 0, "output": 430_000})
    );
    assert_eq!(gpt4o["billed"]["requests"], 1_050);
    assert_eq!(gpt4o["billed"]["cost_usd"], 10.05);
    assert_eq!(
        gpt4o["tracked"]["tokens"],
        json!({"input": 600_000, "cached_input": 150_000, "cache_write": 0, "output": 125_000})
    );
    assert_eq!(gpt4o["coverage_pct"], 29.86);
    assert_eq!(gpt4o["drift_usd"], -7.1125);
    assert_eq!(gpt4o["drift_pct"], -70.77);
    assert_eq!(causes(gpt4o), ["missing_events"]);
    // gpt-4o-mini was billed but never sent.
    let mini = model(&r, "openai", "gpt-4o-mini-2024-07-18");
    assert_eq!(causes(mini), ["untracked_model"]);
    assert_eq!(mini["billed"]["cost_usd"], 1.9275);
    // Sonnet: August 2nd seen in full (and priced alike), August 1st not at all.
    let sonnet = model(&r, "anthropic", "claude-sonnet-4-20250514");
    assert_eq!(sonnet["billed"]["total_tokens"], 3_400_000);
    assert_eq!(sonnet["billed"]["requests"], Value::Null);
    assert_eq!(sonnet["billed"]["cost_usd"], 13.83);
    assert_eq!(sonnet["coverage_pct"], 36.76);
    assert_eq!(sonnet["drift_pct"], -59.87);
    // Web search (17 requests at a cent) and code execution (5 cents) are tied to no model.
    let other = model(&r, "anthropic", "");
    assert_eq!(other["billed"]["cost_usd"], 0.22);
    assert_eq!(causes(other), ["not_tied_to_model"]);
    // The fixtures bill at the table's rates: no price to offer.
    assert_eq!(r["prices"], json!([]));

    // A re-import of the same days changes nothing.
    for c in [&openai, &anthropic] {
        let (status, body) = w
            .owner
            .post(
                &w.path(&format!("/{}/import", c["id"].as_str().unwrap())),
                json!({"from": "2026-07-25", "to": "2026-08-04"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["last_import"]["days"], 10);
    }
    assert_eq!(w.reconciliation("2026-08-01", "2026-08-03").await, r);

    // Another workspace's connection is not found; a removal takes the figures with it.
    let stranger = w.app.sign_in("stranger@example.com").await;
    let (_, other_ws) = stranger
        .post("/v1/workspaces", json!({"name": "Other"}))
        .await;
    let foreign = format!(
        "/v1/workspaces/{}/connections/{}",
        other_ws["id"].as_str().unwrap(),
        openai["id"].as_str().unwrap()
    );
    assert_eq!(stranger.delete(&foreign).await.0, 404);
    let mine = w.path(&format!("/{}", openai["id"].as_str().unwrap()));
    assert_eq!(stranger.delete(&mine).await.0, 404);
    assert_eq!(w.owner.delete(&mine).await.0, 204);
    assert_eq!(w.owner.delete(&mine).await.0, 404);
    let after = w.reconciliation("2026-08-01", "2026-08-03").await;
    assert_eq!(billed_cost(&after, "openai"), 0.0);
    assert!((billed_cost(&after, "anthropic") - 29.087535).abs() < 1e-9);
    let (_, audit) = w.owner.get(&format!("/v1/workspaces/{}/audit", w.ws)).await;
    let audit = audit.to_string();
    assert!(audit.contains("connection.created") && audit.contains("connection.deleted"));
    assert!(!audit.contains(&OPENAI_ADMIN_KEY[..16]));
    w
}

#[tokio::test]
async fn both_providers_import_and_reconcile_on_sqlite() {
    let (store, dir) = sqlite_store();
    let w = connect_import_and_reconcile(Arc::new(store)).await;
    // The admin keys are nowhere in the store's files, nor in the app's other files.
    let mut haystack = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        haystack.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    for file in w.app.data_files() {
        haystack.extend(std::fs::read(file).unwrap());
    }
    let haystack = String::from_utf8_lossy(&haystack);
    for key in [OPENAI_ADMIN_KEY, ANTHROPIC_ADMIN_KEY] {
        assert!(!haystack.contains(&key[..16]), "an admin key is stored");
    }
}

#[tokio::test]
async fn both_providers_import_and_reconcile_on_dynamodb() {
    let store = dynamo_store().await;
    let table = store.clone();
    connect_import_and_reconcile(Arc::new(store)).await;
    let items = format!("{:?}", scan_table(&table).await);
    assert!(items.contains("CONN#"), "the connection is in the table");
    for key in [OPENAI_ADMIN_KEY, ANTHROPIC_ADMIN_KEY] {
        assert!(!items.contains(&key[..16]), "an admin key is in the table");
    }
}

/// Rate limits and server errors are retried; an import cut off midway keeps the weeks it got
/// and the next run resumes after them, ending with the same figures as an import in one go.
#[tokio::test]
async fn imports_retry_and_resume_where_they_stopped() {
    let (store, _dir) = sqlite_store();
    let w = world(Arc::new(store)).await;
    w.fake.fail_next(1, 429, Some(1));
    w.fake.fail_next(1, 500, None);
    let (status, conn) = w.connect("openai", OPENAI_ADMIN_KEY).await;
    assert_eq!(status, 201, "{conn}");
    assert_eq!(conn["last_import"]["ok"], true, "{conn}");
    let whole = w.reconciliation("2026-07-05", "2026-08-04").await;
    let id = conn["id"].as_str().unwrap().to_owned();
    assert_eq!(w.owner.delete(&w.path(&format!("/{id}"))).await.0, 204);

    // Six requests answered (the key's check of both APIs, then two weeks of usage and costs),
    // then the provider fails for good.
    w.fake.fail_after(6, 503);
    let (status, cut) = w.connect("openai", OPENAI_ADMIN_KEY).await;
    assert_eq!(status, 201, "{cut}");
    assert_eq!(cut["last_import"]["ok"], false);
    assert_eq!(cut["last_import"]["days"], 14);
    assert_eq!(cut["imported_through"], "2026-07-18");
    let message = cut["last_import"]["message"].as_str().unwrap();
    assert!(message.contains("unavailable"), "{message}");

    // The next scheduled run (an hour later: failed imports are retried sooner) resumes on the
    // 19th, and the figures are those of the import in one go.
    w.fake.stop_failing();
    w.fake.clear_requests();
    w.clock.set(NOW + 3_600_000);
    let done = llmtrack_reconciliation::import::all(&w.app.parts.reconciliation().deps)
        .await
        .unwrap();
    assert_eq!((done.connections, done.failed), (1, 0));
    let first = &w.fake.requests_to("usage/completions")[0];
    assert_eq!(first.param("start_time"), Some("1784419200"), "July 19th");
    let resumed = w.reconciliation("2026-07-05", "2026-08-04").await;
    assert_eq!(resumed["total"], whole["total"]);
    assert_eq!(resumed["days"], whole["days"]);
    // Nothing else is due until twelve hours after.
    w.clock.set(NOW + 2 * 3_600_000);
    let again = llmtrack_reconciliation::import::all(&w.app.parts.reconciliation().deps)
        .await
        .unwrap();
    assert_eq!(again.connections, 0);
}

/// Coverage and drift alerts fire once when the events stop covering the bill, and resolve once
/// when they do again.
#[tokio::test]
async fn coverage_and_drift_alerts_fire_and_resolve_once() {
    let (store, _dir) = sqlite_store();
    let w = world(Arc::new(store)).await;
    let (status, body) = w.connect("openai", OPENAI_ADMIN_KEY).await;
    assert_eq!(status, 201, "{body}");
    let rules = format!("/v1/workspaces/{}/alerts", w.ws);
    for condition in [
        json!({"metric": "coverage", "under_pct": 90, "days": 3}),
        json!({"metric": "drift", "over_pct": 10, "days": 3}),
    ] {
        let (status, body) = w
            .owner
            .post(&rules, json!({"name": "Bill", "condition": condition}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = w
        .owner
        .post(
            &rules,
            json!({"name": "x", "condition": {"metric": "drift", "over_pct": 10, "days": 3},
                   "filter": {"dimension": "model", "value": "gpt-4o"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    let evaluate = || async {
        llmtrack_alerts::evaluate::all(&w.app.parts.alerts().deps)
            .await
            .unwrap()
            .notifications
    };
    // No events at all for July 31st to August 2nd: coverage 0%, drift -100%.
    assert_eq!(evaluate().await, 2);
    assert_eq!(evaluate().await, 0, "once per transition");
    let mails = w.app.mails_to("owner@example.com");
    assert!(
        mails
            .iter()
            .any(|m| m.contains("tokens the providers billed")),
        "{mails:?}"
    );

    // Events for every billed call, priced as billed: both resolve, once.
    let mut events = Vec::new();
    for (i, (ts, model, uncached, cached, output, cost)) in [
        (AUG_1, "gpt-4o", 1_200_000, 300_000, 250_000, 5.875),
        (AUG_1, "gpt-4o-mini", 4_000_000, 1_000_000, 800_000, 1.155),
        (AUG_2, "gpt-4o", 900_000, 100_000, 180_000, 4.175),
        (AUG_2, "gpt-4o-mini", 2_500_000, 500_000, 600_000, 0.7725),
    ]
    .into_iter()
    .enumerate()
    {
        events.push(
            json!({"id": format!("e{i}"), "timestamp": ts + 60_000, "provider": "openai",
            "model": model, "input_tokens": uncached + cached, "cached_input_tokens": cached,
            "output_tokens": output, "cost_usd": cost}),
        );
    }
    let (status, body) = w
        .app
        .post_events(&w.ingest, &json!({"events": events}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(evaluate().await, 2);
    assert_eq!(evaluate().await, 0);
    let r = w.reconciliation("2026-07-31", "2026-08-03").await;
    assert_eq!(r["total"]["coverage_pct"], 100.0);
    assert_eq!(r["total"]["drift_usd"], 0.0);
}

/// `llmtrack admin connections …` as an operator runs it, debug logs on: the key goes in on
/// standard input and comes out nowhere (output, logs, the data directory's files).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_connects_without_showing_or_logging_the_key() {
    let fake = FakeProviders::start().await;
    let dir = tempfile::tempdir().unwrap();
    llmtrack::open_store(dir.path()).unwrap();
    let data = dir.path().to_owned();
    let (openai, anthropic) = (fake.openai_base(), fake.anthropic_base());
    let cli = move |args: Vec<&'static str>, stdin: Option<&'static str>| {
        let (data, openai, anthropic) = (data.clone(), openai.clone(), anthropic.clone());
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_llmtrack"))
                .arg("admin")
                .arg("--data-dir")
                .arg(&data)
                .arg("--json")
                .args(&args)
                .env("OPENAI_API_BASE", openai)
                .env("ANTHROPIC_API_BASE", anthropic)
                .env("RUST_LOG", "debug")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut input = child.stdin.take().unwrap();
            input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
            drop(input);
            let out = child.wait_with_output().unwrap();
            (
                out.status.success(),
                String::from_utf8(out.stdout).unwrap(),
                String::from_utf8(out.stderr).unwrap(),
            )
        })
    };
    let (ok, out, err) = cli(vec!["create-workspace", "--name", "Acme"], None)
        .await
        .unwrap();
    assert!(ok, "{err}");
    let ws: Value = serde_json::from_str(&out).unwrap();
    let ws: &'static str = ws["id"].as_str().unwrap().to_owned().leak();

    let mut seen = String::new();
    // Without a key, the command says how to give one.
    let (ok, _, err) = cli(
        vec![
            "connections",
            "add",
            "--workspace",
            ws,
            "--provider",
            "openai",
        ],
        None,
    )
    .await
    .unwrap();
    assert!(!ok && err.contains("standard input"), "{err}");
    // A key the provider refuses: its reason, and nothing saved.
    let (ok, _, err) = cli(
        vec![
            "connections",
            "add",
            "--workspace",
            ws,
            "--provider",
            "openai",
        ],
        Some(OPENAI_PROJECT_KEY),
    )
    .await
    .unwrap();
    assert!(!ok && err.contains("api.usage.read"), "{err}");
    seen.push_str(&err);
    let (ok, out, err) = cli(
        vec![
            "connections",
            "add",
            "--workspace",
            ws,
            "--provider",
            "openai",
        ],
        Some(OPENAI_ADMIN_KEY),
    )
    .await
    .unwrap();
    assert!(ok, "{err}");
    seen.push_str(&out);
    seen.push_str(&err);
    let conn: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(conn["key_hint"], "…wxyz");
    assert_eq!(conn["last_import"]["ok"], true, "{conn}");
    let id: &'static str = conn["id"].as_str().unwrap().to_owned().leak();
    for args in [
        vec!["connections", "list", "--workspace", ws],
        vec!["connections", "test", "--workspace", ws, "--connection", id],
        vec![
            "connections",
            "import",
            "--workspace",
            ws,
            "--connection",
            id,
        ],
        vec![
            "connections",
            "remove",
            "--workspace",
            ws,
            "--connection",
            id,
        ],
    ] {
        let (ok, out, err) = cli(args.clone(), None).await.unwrap();
        assert!(ok, "{args:?}: {err}");
        seen.push_str(&out);
        seen.push_str(&err);
    }
    assert!(seen.contains("connection"), "the logs and output were read");
    assert!(!seen.contains(&OPENAI_ADMIN_KEY[..16]), "{seen}");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            files.extend(std::fs::read(path).unwrap());
        }
    }
    assert!(!String::from_utf8_lossy(&files).contains(&OPENAI_ADMIN_KEY[..16]));
}
