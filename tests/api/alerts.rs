//! Alerts over HTTP: rules checked field by field and limited by the plan, rules driven through
//! ok, firing and resolved with a test clock (exactly one notification per transition on each
//! channel, the webhook's signature checked), budget thresholds, plan usage alerts, and test
//! notifications with a webhook retried after a failure.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::report::Month;
use llmtrack_shared::domain::signature::verify_signature;
use llmtrack_shared::ports::Clock as _;
use serde_json::{Value, json};

use crate::support::*;

/// A webhook receiver on loopback: keeps every delivery, answers with the next queued status
/// (200 once the queue is empty).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    answers: Arc<Mutex<Vec<u16>>>,
    url: String,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut r = Receiver {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            ..Receiver::default()
        };
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push((headers, body));
                    let next = state.answers.lock().unwrap().pop().unwrap_or(200);
                    StatusCode::from_u16(next).unwrap()
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r.url = r.url.clone();
        r
    }

    fn bodies(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect()
    }

    /// Every delivery's signature, checked with the rule's secret at `now_s`.
    fn assert_signed(&self, secret: &str) {
        for (headers, body) in self.got.lock().unwrap().iter() {
            let header = headers
                .get("llmtrack-signature")
                .and_then(|h| h.to_str().ok());
            let now = chrono::Utc::now().timestamp();
            verify_signature(header, body, &[secret.to_owned()], now)
                .unwrap_or_else(|e| panic!("bad signature {header:?}: {e:?}"));
            assert!(
                verify_signature(header, body, &["whsec_wrong".to_owned()], now).is_err(),
                "another secret does not verify"
            );
        }
    }
}

struct World {
    app: TestApp,
    clock: Arc<TestClock>,
    owner: Browser,
    ws: String,
    ingest: String,
}

async fn world(plan: Plan) -> World {
    let clock = TestClock::at(now_ms());
    let app = spawn_app_with_clock(clock.clone()).await;
    let owner = app.sign_in("owner@example.com").await;
    let (_, ws) = owner.post("/v1/workspaces", json!({"name": "Acme"})).await;
    let ws = ws["id"].as_str().unwrap().to_owned();
    let id = WorkspaceId::parse(&ws).unwrap();
    app.store.set_plan(&id, plan).await.unwrap();
    if plan != Plan::Free {
        llmtrack::admin::add_member(
            app.store.as_ref(),
            &ws,
            "admin@example.com",
            Role::Admin,
            now_ms(),
        )
        .await
        .unwrap();
        llmtrack::admin::add_member(
            app.store.as_ref(),
            &ws,
            "viewer@example.com",
            Role::Viewer,
            now_ms(),
        )
        .await
        .unwrap();
    }
    let ingest = app.key(&id, Scope::Ingest, "production").await;
    World {
        app,
        clock,
        owner,
        ws,
        ingest,
    }
}

impl World {
    fn rules(&self) -> String {
        format!("/v1/workspaces/{}/alerts", self.ws)
    }

    async fn send(&self, n: usize, error_every: usize, cost_usd: f64) {
        let now = self.clock.now_ms();
        let events: Vec<Value> = (0..n)
            .map(|i| {
                json!({"provider": "openai", "model": "gpt-4o", "timestamp": now - (i as i64) * 1000,
                    "input_tokens": 10, "output_tokens": 5, "latency_ms": 300, "cost_usd": cost_usd,
                    "status": if error_every > 0 && i % error_every == 0 { "error" } else { "success" }})
            })
            .collect();
        for chunk in events.chunks(1000) {
            let (status, body) = self
                .app
                .post_events(&self.ingest, &json!({"events": chunk}))
                .await;
            assert_eq!(status, 200, "{body}");
        }
    }

    async fn evaluate(&self) -> usize {
        llmtrack_alerts::evaluate::all(&self.app.parts.alerts().deps)
            .await
            .unwrap()
            .notifications
    }

    fn alert_mails(&self, to: &str) -> Vec<String> {
        self.app
            .mails_to(to)
            .into_iter()
            .filter(|m| m.contains("LLMtrack alert") || m.contains("LLMtrack test notification"))
            .collect()
    }
}

#[tokio::test]
async fn rules_are_checked_field_by_field_and_limited_by_the_plan() {
    let w = world(Plan::Free).await;
    let ok = json!({"name": "Daily spend", "condition": {"metric": "cost", "period": "day", "over_usd": 20}});
    for (body, needle) in [
        (
            json!({"name": "x", "condition": {"metric": "tokens", "over": 5}}),
            "metric",
        ),
        (
            json!({"name": "x", "condition": {"metric": "cost", "period": "day", "over_usd": -1}}),
            "over_usd",
        ),
        (
            json!({"name": "x", "condition": {"metric": "cost", "period": "day", "over_usd": 1e15}}),
            "over_usd",
        ),
        (
            json!({"name": "x", "condition": {"metric": "budget", "budget_usd": 0, "thresholds_pct": [50]}}),
            "budget_usd",
        ),
        (
            json!({"name": "x", "condition": {"metric": "error_rate", "over_pct": 5, "window_minutes": 3}}),
            "window_minutes",
        ),
        (
            json!({"name": "x", "condition": {"metric": "forecast", "budget_usd": 10}, "filter": {"dimension": "status", "value": "error"}}),
            "filter",
        ),
        (
            json!({"name": "x", "condition": {"metric": "forecast", "budget_usd": 10}, "filter": {"dimension": "colour", "value": "red"}}),
            "filter",
        ),
        (
            json!({"name": "x", "condition": {"metric": "forecast", "budget_usd": 10}, "webhook_url": "http://hooks.example.com/x"}),
            "https",
        ),
        (
            json!({"name": "x", "condition": {"metric": "forecast", "budget_usd": 10}, "webhook_url": "https://10.1.2.3/x"}),
            "public",
        ),
        (
            json!({"name": "x", "condition": {"metric": "forecast", "budget_usd": 10}, "webhook_url": "https://169.254.169.254/x"}),
            "public",
        ),
        (
            json!({"name": "x", "condition": {"metric": "forecast", "budget_usd": 10}, "webhook_url": "https://localhost/x"}),
            "public",
        ),
        (
            json!({"name": "x", "condition": {"metric": "forecast", "budget_usd": 10}, "email": false}),
            "channel",
        ),
        (
            json!({"condition": {"metric": "forecast", "budget_usd": 10}}),
            "name",
        ),
    ] {
        let (status, body) = w.owner.post(&w.rules(), body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{needle}: {body}"
        );
    }
    let (status, rule) = w.owner.post(&w.rules(), ok.clone()).await;
    assert_eq!(status, 201, "{rule}");
    assert_eq!(rule["state"], "ok");
    assert!(
        rule.get("webhook_secret").is_none(),
        "no webhook, no secret"
    );
    let (status, _) = w.owner.post(&w.rules(), ok.clone()).await;
    assert_eq!(status, 201);
    let (status, body) = w.owner.post(&w.rules(), ok.clone()).await;
    assert_eq!(status, 409, "the free plan's 2 rules: {body}");

    let id = rule["id"].as_str().unwrap();
    let (status, patched) = w
        .owner
        .patch(
            &format!("{}/{id}", w.rules()),
            json!({"name": "Spend", "filter": {"dimension": "model", "value": "gpt-4o"}}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["filter"]["value"], "gpt-4o");
    let (status, _) = w
        .owner
        .patch(
            &format!("{}/{id}", w.rules()),
            json!({"condition": {"metric": "cost"}}),
        )
        .await;
    assert_eq!(status, 400);
    let (status, list) = w.owner.get(&w.rules()).await;
    assert_eq!((status, list.as_array().unwrap().len()), (200, 2));
    let stranger = w.app.sign_in("stranger@example.com").await;
    let (status, _) = stranger.get(&format!("{}/{id}", w.rules())).await;
    assert_eq!(status, 404, "another workspace's rule");
    let (status, _) = w
        .owner
        .send("DELETE", &format!("{}/{id}", w.rules()), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = w.owner.get(&format!("{}/{id}", w.rules())).await;
    assert_eq!(status, 404);
    let (status, _) = w.owner.post(&w.rules(), ok).await;
    assert_eq!(status, 201, "room again after a delete");
}

#[tokio::test]
async fn an_error_rate_rule_fires_and_resolves_once_on_each_channel() {
    let w = world(Plan::Team).await;
    let hook = Receiver::start().await;
    let (status, rule) = w
        .owner
        .post(
            &w.rules(),
            json!({"name": "Errors", "condition": {"metric": "error_rate", "over_pct": 10, "window_minutes": 15, "min_requests": 10},
                   "webhook_url": hook.url}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let secret = rule["webhook_secret"].as_str().unwrap().to_owned();
    let id = rule["id"].as_str().unwrap().to_owned();

    // Healthy traffic: nothing.
    w.send(40, 0, 0.001).await;
    assert_eq!(w.evaluate().await, 0);
    // Half the requests fail: firing, once.
    w.clock.set(w.clock.now_ms() + 60_000);
    w.send(40, 2, 0.001).await;
    assert_eq!(w.evaluate().await, 1);
    assert_eq!(
        w.evaluate().await,
        0,
        "still firing: no second notification"
    );
    let (_, now) = w.owner.get(&format!("{}/{id}", w.rules())).await;
    assert_eq!(now["state"], "firing");
    // The window moves past the failures and traffic is healthy again: resolved, once.
    w.clock.set(w.clock.now_ms() + 20 * 60_000);
    w.send(40, 0, 0.001).await;
    assert_eq!(w.evaluate().await, 1);
    assert_eq!(w.evaluate().await, 0);

    let bodies = hook.bodies();
    let kinds: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["alert.firing", "alert.resolved"]);
    assert!(
        bodies[0]["text"].as_str().unwrap().contains("error rate"),
        "{}",
        bodies[0]
    );
    assert_eq!(bodies[0]["rule"]["id"], id.as_str());
    hook.assert_signed(&secret);
    for to in ["owner@example.com", "admin@example.com"] {
        let mails = w.alert_mails(to);
        assert_eq!(mails.len(), 2, "{to}: one firing, one resolved");
        assert!(mails[0].contains("is firing") && mails[1].contains("resolved"));
    }
    assert!(
        w.alert_mails("viewer@example.com").is_empty(),
        "viewers are not paged"
    );
    let (status, history) = w.owner.get(&format!("{}/{id}/history", w.rules())).await;
    assert_eq!(status, 200);
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["transition"]["kind"], "resolved", "newest first");
    assert!(
        history[1]["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["ok"] == true)
    );
}

#[tokio::test]
async fn a_budget_notifies_at_each_threshold_and_starts_over_next_month() {
    let w = world(Plan::Team).await;
    let (_, rule) = w
        .owner
        .post(
            &w.rules(),
            json!({"name": "Budget", "condition": {"metric": "budget", "budget_usd": 10, "thresholds_pct": [50, 80, 100]},
                   "filter": {"dimension": "source", "value": "production"}}),
        )
        .await;
    let id = rule["id"].as_str().unwrap().to_owned();
    w.send(10, 0, 0.6).await; // $6: 60%
    assert_eq!(w.evaluate().await, 1);
    w.send(1, 0, 0.6).await; // $6.60: still between 50 and 80
    assert_eq!(w.evaluate().await, 0);
    w.send(10, 0, 0.6).await; // $12.60: past 80 and 100 at once: one notification
    assert_eq!(w.evaluate().await, 1);
    assert_eq!(w.evaluate().await, 0);
    let mails = w.alert_mails("owner@example.com");
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(mails[1].contains("126.0%"), "{}", mails[1]);
    let (_, r) = w.owner.get(&format!("{}/{id}", w.rules())).await;
    assert_eq!(
        (r["state"].as_str(), r["level"].as_u64()),
        (Some("firing"), Some(3))
    );

    // A new month starts over, quietly.
    let next = Month::of(w.clock.now_ms()).next();
    w.clock.set(next.start_ms() + 3_600_000);
    assert_eq!(w.evaluate().await, 0);
    // Read from the store: a month ahead, the owner's session may have ended.
    let ws = WorkspaceId::parse(&w.ws).unwrap();
    let rule = w.app.store.alert_rule(&ws, &id).await.unwrap().unwrap();
    assert_eq!(rule.state.level, 0, "{:?}", rule.state);
    assert_eq!(rule.state.period, next.to_string());
}

#[tokio::test]
async fn owners_hear_at_80_and_100_percent_of_the_plan_once_each() {
    let w = world(Plan::Free).await;
    w.send(7_900, 0, 0.0).await;
    assert_eq!(w.evaluate().await, 0);
    w.send(200, 0, 0.0).await;
    assert_eq!(w.evaluate().await, 1);
    assert_eq!(w.evaluate().await, 0);
    w.send(1_900, 0, 0.0).await;
    assert_eq!(w.evaluate().await, 1);
    assert_eq!(w.evaluate().await, 0);
    let mails: Vec<String> = w
        .app
        .mails_to("owner@example.com")
        .into_iter()
        .filter(|m| m.contains("events for"))
        .collect();
    assert_eq!(mails.len(), 2);
    assert!(mails[0].contains("used 80%") && mails[1].contains("used 100%"));
}

#[tokio::test]
async fn a_test_notification_reaches_every_channel_and_retries_a_failing_webhook() {
    let w = world(Plan::Team).await;
    let hook = Receiver::start().await;
    let (_, rule) = w
        .owner
        .post(
            &w.rules(),
            json!({"name": "Latency", "condition": {"metric": "latency_p95", "over_ms": 2000, "window_minutes": 5},
                   "webhook_url": hook.url}),
        )
        .await;
    let id = rule["id"].as_str().unwrap();
    let secret = rule["webhook_secret"].as_str().unwrap().to_owned();
    // The receiver fails once, then takes it.
    hook.answers.lock().unwrap().push(503);
    let (status, event) = w
        .owner
        .post(&format!("{}/{id}/test", w.rules()), json!({}))
        .await;
    assert_eq!(status, 200, "{event}");
    let webhook = event["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["channel"] == "webhook")
        .unwrap()
        .clone();
    assert_eq!(
        (webhook["ok"].as_bool(), webhook["attempts"].as_u64()),
        (Some(true), Some(2))
    );
    assert_eq!(hook.bodies().len(), 2);
    assert_eq!(hook.bodies()[1]["type"], "alert.test");
    hook.assert_signed(&secret);
    assert_eq!(w.alert_mails("owner@example.com").len(), 1);
    let viewer = w.app.sign_in("viewer@example.com").await;
    let (status, _) = viewer
        .post(&format!("{}/{id}/test", w.rules()), json!({}))
        .await;
    assert_eq!(status, 403);
    let (_, history) = w.owner.get(&format!("{}/{id}/history", w.rules())).await;
    assert_eq!(history.as_array().unwrap().len(), 1);
}
