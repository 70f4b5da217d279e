//! Helpers shared by the test binaries: stores (SQLite in a temp dir, DynamoDB on moto), a running
//! app on a random port (zero2prod's `spawn_app`), and recomputation of rollups from raw events.
#![allow(dead_code)]

pub mod openapi;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use llmtrack_shared::adapters::dynamodb::DynamoStore;
use llmtrack_shared::adapters::sqlite::SqliteStore;
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::event::Event;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::rollup::{self, Dimension, Rollup, RollupKey, View};
use llmtrack_shared::ports::{Clock, DynClock, DynStore, Store, SystemClock};
use serde_json::Value;

/// A clock tests can set.
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn at(ms: i64) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicI64::new(ms)))
    }
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn sqlite_store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("test.sqlite3")).expect("open sqlite");
    (store, dir)
}

/// The moto server `make test` started. moto's reset is global, so every test makes its own table.
pub fn moto_endpoint() -> String {
    std::env::var("MOTO_ENDPOINT")
        .expect("MOTO_ENDPOINT is not set: run the tests with `make test`, which starts moto")
}

pub fn dynamo_client() -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Every item of the store's table, read raw.
pub async fn scan_table(
    store: &DynamoStore,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    store
        .client()
        .scan()
        .table_name(store.table())
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .expect("scan")
}

pub fn s3_client() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        // moto has no per-bucket host names.
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A bucket of its own per test: moto's reset is global.
pub async fn s3_archive() -> llmtrack_shared::adapters::s3::S3Archive {
    let bucket = format!(
        "llmtrack-test-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let archive = llmtrack_shared::adapters::s3::S3Archive::new(s3_client(), &bucket);
    archive
        .create_bucket()
        .await
        .expect("create bucket on moto");
    archive
}

pub async fn dynamo_store() -> DynamoStore {
    let table = format!(
        "llmtrack-test-{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let store = DynamoStore::new(dynamo_client(), &table);
    store.create_table().await.expect("create table on moto");
    store
}

/// Every rollup of every dimension, recomputed from the raw events the store holds.
pub async fn recomputed(store: &dyn Store, ws: &WorkspaceId) -> BTreeMap<RollupKey, Rollup> {
    let events = all_events(store, ws).await;
    rollup::fold(&events).into_iter().collect()
}

/// Tests keep their events within the last two days (DynamoDB lists events hour by hour).
pub async fn all_events(store: &dyn Store, ws: &WorkspaceId) -> Vec<Event> {
    all_events_between(store, ws, now_ms() - 2 * 86_400_000, now_ms() + 3_600_000).await
}

pub async fn all_events_between(
    store: &dyn Store,
    ws: &WorkspaceId,
    from_ms: i64,
    to_ms: i64,
) -> Vec<Event> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .events(ws, from_ms, to_ms, after.clone(), 500)
            .await
            .expect("events");
        let Some(last) = page.last() else { break };
        after = Some((last.ts_ms, last.id.clone()));
        out.extend(page);
    }
    out
}

/// The stored rollups of every workspace-wide view and of the given narrower views.
pub async fn stored_rollups(
    store: &dyn Store,
    ws: &WorkspaceId,
    also: impl IntoIterator<Item = View>,
) -> BTreeMap<RollupKey, Rollup> {
    let mut views: BTreeSet<View> = Dimension::ALL.into_iter().map(View::of).collect();
    views.extend(also);
    let mut out = BTreeMap::new();
    for v in views {
        for (k, r) in store
            .rollups(ws, &v, 0, i64::MAX / 2)
            .await
            .expect("rollups")
        {
            out.insert(k, r);
        }
    }
    out
}

/// Asserts the stored rollups are exactly what the stored raw events give.
pub async fn assert_rollups_match_events(store: &dyn Store, ws: &WorkspaceId) {
    let events = all_events(store, ws).await;
    assert_rollups_match(store, ws, &events).await;
}

pub async fn assert_rollups_match_events_between(
    store: &dyn Store,
    ws: &WorkspaceId,
    from_ms: i64,
    to_ms: i64,
) {
    let events = all_events_between(store, ws, from_ms, to_ms).await;
    assert_rollups_match(store, ws, &events).await;
}

async fn assert_rollups_match(store: &dyn Store, ws: &WorkspaceId, events: &[Event]) {
    let expected: BTreeMap<RollupKey, Rollup> = rollup::fold(events).into_iter().collect();
    let views = expected.keys().map(|k| k.view.clone());
    let actual = stored_rollups(store, ws, views.collect::<Vec<_>>()).await;
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "rollup keys differ from a recomputation"
    );
    for (k, r) in &expected {
        assert!(
            actual[k].same_as(r),
            "rollup {k:?} differs from a recomputation:\nstored {:?}\nexpected {r:?}",
            actual[k]
        );
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub store: DynStore,
    /// Where the app's emails go (the local mail adapter).
    pub outbox: std::path::PathBuf,
    /// What the app is made of: for running its background upkeep in a test.
    pub parts: llmtrack::Parts,
    _dir: Option<tempfile::TempDir>,
    _mail_dir: tempfile::TempDir,
}

/// Starts the real app (every function's router) on a random port over its own SQLite store.
pub async fn spawn_app() -> TestApp {
    spawn_app_with_clock(Arc::new(SystemClock)).await
}

pub async fn spawn_app_with_clock(clock: DynClock) -> TestApp {
    let (store, dir) = sqlite_store();
    spawn_app_on(Arc::new(store), clock, Some(dir)).await
}

pub async fn spawn_app_on(
    store: DynStore,
    clock: DynClock,
    dir: Option<tempfile::TempDir>,
) -> TestApp {
    spawn_app_with(store, clock, dir, None).await
}

/// The app with Stripe configured (`stripe`: its API pointed at a local server).
pub async fn spawn_app_with(
    store: DynStore,
    clock: DynClock,
    dir: Option<tempfile::TempDir>,
    stripe: Option<llmtrack_shared::config::StripeConfig>,
) -> TestApp {
    // No test reaches the real providers: a port nothing listens on, unless a test gives its own.
    let providers = llmtrack_shared::adapters::providers::ProviderClient::new(
        "http://127.0.0.1:9/v1",
        "http://127.0.0.1:9",
    );
    spawn_app_full(store, clock, dir, stripe, Arc::new(providers)).await
}

/// The app with its providers' billing APIs pointed at `providers` (local fakes).
pub async fn spawn_app_full(
    store: DynStore,
    clock: DynClock,
    dir: Option<tempfile::TempDir>,
    stripe: Option<llmtrack_shared::config::StripeConfig>,
    providers: llmtrack_shared::ports::DynProviderApi,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mail_dir = tempfile::tempdir().expect("temp dir");
    let outbox = mail_dir.path().join("outbox");
    let parts = llmtrack::Parts {
        store: store.clone(),
        sqlite: None,
        clock,
        mailer: Arc::new(
            llmtrack_shared::adapters::outbox::Outbox::new(outbox.clone()).expect("outbox"),
        ),
        web: llmtrack_shared::config::WebConfig::new(&format!("http://{addr}"), vec![])
            .expect("web config"),
        archive: Arc::new(
            llmtrack_shared::adapters::folder::FolderArchive::open(
                &mail_dir.path().join("archive"),
                &format!("http://{addr}"),
            )
            .expect("archive"),
        ),
        stripe: stripe.map(|c| {
            Arc::new(llmtrack_shared::adapters::stripe::StripeApi::new(c).expect("stripe"))
                as Arc<dyn llmtrack_shared::ports::Payments>
        }),
        alert_key: b"test alert signing key, 32 bytes..".to_vec(),
        // The alert tests run their webhook receivers on this machine.
        allow_local_webhooks: true,
        providers,
        vault: Arc::new(
            llmtrack_shared::adapters::keyfile::KeyFileVault::open_or_create(mail_dir.path())
                .expect("vault"),
        ),
    };
    let app = llmtrack::app(parts.clone()).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    TestApp {
        addr,
        http: reqwest::Client::new(),
        store,
        outbox,
        parts,
        _dir: dir,
        _mail_dir: mail_dir,
    }
}

/// A signed-in browser: sends its session cookie and the dashboard's Origin, as the SPA would.
#[derive(Clone)]
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: Option<String>,
    pub origin: Option<String>,
}

impl Browser {
    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        if let Some(o) = &self.origin {
            req = req.header("origin", o);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        checked(method, path, resp).await
    }
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("PATCH", path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("PUT", path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send("DELETE", path, None).await
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A browser on the dashboard's origin, not signed in.
    pub fn browser(&self) -> Browser {
        Browser {
            http: self.http.clone(),
            base: self.url(""),
            cookie: None,
            origin: Some(self.url("")),
        }
    }

    /// Every file the app keeps on disk: its SQLite files (when it made them), the outbox and
    /// the archive.
    pub fn data_files(&self) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        let mut pending: Vec<std::path::PathBuf> = self
            ._dir
            .iter()
            .map(|d| d.path().to_owned())
            .chain([self._mail_dir.path().to_owned()])
            .collect();
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }

    /// Every email to `to` in the outbox, oldest first, as text.
    pub fn mails_to(&self, to: &str) -> Vec<String> {
        let mut mails: Vec<(std::path::PathBuf, String)> = std::fs::read_dir(&self.outbox)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p, text)
            })
            .filter(|(_, text)| {
                text.lines()
                    .any(|l| l.eq_ignore_ascii_case(&format!("To: {to}")))
            })
            .collect();
        mails.sort();
        mails
            .into_iter()
            .map(|(_, t)| quoted_printable_decoded(&t))
            .collect()
    }

    /// The newest email to `to` in the outbox, as text.
    pub fn last_mail_to(&self, to: &str) -> String {
        self.mails_to(to)
            .pop()
            .unwrap_or_else(|| panic!("no email to {to} in the outbox"))
    }

    /// Signs in by emailed code, as a person would: ask for a code, read it from the outbox, verify.
    pub async fn sign_in(&self, email: &str) -> Browser {
        let mut b = self.browser();
        let (status, body) = b
            .post("/v1/auth/email", serde_json::json!({"email": email}))
            .await;
        assert_eq!(status, 202, "{body}");
        let code = code_in(&self.last_mail_to(email));
        let resp = self
            .http
            .post(self.url("/v1/auth/verify"))
            .header("origin", self.url(""))
            .json(&serde_json::json!({"email": email, "code": code}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
            "{set_cookie}"
        );
        b.cookie = Some(set_cookie.split(';').next().unwrap().to_owned());
        b
    }

    pub async fn workspace(&self, plan: Plan) -> WorkspaceId {
        llmtrack::admin::create_workspace(self.store.as_ref(), "Acme", plan, now_ms())
            .await
            .expect("workspace")
            .id
    }

    /// A raw key of the given scope for the workspace.
    pub async fn key(&self, ws: &WorkspaceId, scope: Scope, source: &str) -> String {
        let (_, raw) = llmtrack::admin::create_key(
            self.store.as_ref(),
            ws.as_str(),
            "test key",
            source,
            scope,
            now_ms(),
        )
        .await
        .expect("key");
        raw.expose().to_owned()
    }

    pub async fn post_events(&self, key: &str, body: &Value) -> (u16, Value) {
        self.post_raw(key, "application/json", serde_json::to_vec(body).unwrap())
            .await
    }

    pub async fn post_raw(&self, key: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url("/v1/events"))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        checked("POST", "/v1/events", resp).await
    }

    /// A GET with an API key (analytics, as scripts and the dashboard's read key do).
    pub async fn get_with_key(&self, key: &str, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        checked("GET", path, resp).await
    }

    pub async fn summary(&self, key: &str, query: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.url(&format!("/v1/stats/summary{query}")))
            .bearer_auth(key)
            .send()
            .await
            .expect("request");
        checked("GET", "/v1/stats/summary", resp).await
    }
}

/// The status and JSON body (Null when there is none), after checking both against the OpenAPI
/// document.
pub async fn checked(method: &str, path: &str, resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.json().await.unwrap_or(Value::Null);
    openapi::check(method, path, status, content_type.as_deref(), &body);
    (status, body)
}

/// Undoes quoted-printable soft line breaks and escapes, so links read whole.
fn quoted_printable_decoded(s: &str) -> String {
    let joined = s.replace("=\r\n", "").replace("=\n", "");
    let mut out = String::with_capacity(joined.len());
    let mut rest = joined.as_str();
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let hex = rest
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 3..];
            }
            None => {
                out.push('=');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The 6-digit code in a sign-in email.
pub fn code_in(mail: &str) -> String {
    let subject = mail
        .lines()
        .find(|l| l.starts_with("Subject:"))
        .expect("subject");
    subject.rsplit(' ').next().unwrap().trim().to_owned()
}

/// A realistic event: mixed providers, models, features and statuses, decided by `i`.
pub fn event(i: usize, ts_ms: i64) -> Value {
    let models = [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-20250514"),
        ("google", "gemini-2.5-flash"),
        ("acme", "in-house-7b"),
    ];
    let (provider, model) = models[i % models.len()];
    let features = ["chat", "search", "summarize"];
    let mut e = serde_json::json!({
        "id": format!("evt-{i}"),
        "timestamp": ts_ms,
        "provider": provider,
        "model": model,
        "feature": features[i % features.len()],
        "user_id": format!("user-{}", i % 7),
        "input_tokens": 500 + (i % 13) * 100,
        "cached_input_tokens": (i % 5) * 50,
        "output_tokens": 100 + (i % 11) * 20,
        "reasoning_tokens": (i % 3) * 10,
        "latency_ms": 200.0 + ((i * 7919) % 3000) as f64,
        "status": if i.is_multiple_of(10) { "error" } else { "success" },
        "metadata": {"region": "eu", "attempt": (i % 3) as i64, "cached": i.is_multiple_of(2)}
    });
    if i.is_multiple_of(17) {
        e["cost_usd"] = serde_json::json!(0.0125);
    }
    e
}

/// A query-string value, escaped (times carry `:` and `+`).
pub fn urlencode(s: &str) -> String {
    s.replace('%', "%25")
        .replace('+', "%2B")
        .replace(':', "%3A")
        .replace(' ', "%20")
        .replace('&', "%26")
}

/// A free port on loopback, for a server process the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 10 s) until a server process answers `GET /healthz` at `base`; panics naming
/// `what` if it never does.
pub async fn wait_for_health(base: &str, what: &str) {
    let http = reqwest::Client::new();
    for _ in 0..400 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{what} did not start");
}
