//! `any_value` alert rules over HTTP, driven by a test clock: every end-user over an amount in
//! the window is told once, the largest first, at most five a run and one digest for the rest;
//! a new offender is told on the next run, one that falls back under and returns is told again,
//! and a rule by requests works per feature — on SQLite and DynamoDB.

use std::sync::Arc;

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::{Clock as _, DynStore};
use serde_json::{Value, json};

use crate::support::*;

const HOUR: i64 = 3_600_000;

struct World {
    app: TestApp,
    clock: Arc<TestClock>,
    owner: Browser,
    ws: String,
    ingest: String,
}

async fn world(store: DynStore, dir: Option<tempfile::TempDir>) -> World {
    let clock = TestClock::at(now_ms());
    let app = spawn_app_with(store, clock.clone(), dir, None).await;
    let owner = app.sign_in("owner@example.com").await;
    let (_, ws) = owner.post("/v1/workspaces", json!({"name": "Acme"})).await;
    let ws = ws["id"].as_str().unwrap().to_owned();
    let id = WorkspaceId::parse(&ws).unwrap();
    app.store.set_plan(&id, Plan::Team).await.unwrap();
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
    /// One event per (user, cost, feature), now.
    async fn spend(&self, calls: &[(&str, f64, &str)]) {
        let now = self.clock.now_ms();
        let events: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (user, cost, feature))| {
                json!({"provider": "openai", "model": "gpt-4o", "timestamp": now - i as i64,
                       "input_tokens": 10, "output_tokens": 5, "cost_usd": cost,
                       "user_id": user, "feature": feature})
            })
            .collect();
        let (status, body) = self
            .app
            .post_events(&self.ingest, &json!({ "events": events }))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn evaluate(&self) -> usize {
        llmtrack_alerts::evaluate::all(&self.app.parts.alerts().deps)
            .await
            .unwrap()
            .notifications
    }

    fn alert_mails(&self) -> Vec<String> {
        self.app
            .mails_to("owner@example.com")
            .into_iter()
            .filter(|m| m.contains("LLMtrack alert"))
            .collect()
    }

    async fn rule(&self, body: Value) -> String {
        let (status, rule) = self
            .owner
            .post(&format!("/v1/workspaces/{}/alerts", self.ws), body)
            .await;
        assert_eq!(status, 201, "{rule}");
        rule["id"].as_str().unwrap().to_owned()
    }
}

async fn each_user_is_told_once(w: &World) {
    let id = w
        .rule(json!({"name": "Heavy users", "condition": {"metric": "any_value", "dimension": "user", "over_usd": 5, "window_hours": 24}}))
        .await;
    // Eight users over $5 (u1 at $6 … u8 at $13), two under, events without a user.
    let mut calls: Vec<(String, f64)> =
        (1..=8).map(|i| (format!("u{i}"), 5.0 + i as f64)).collect();
    calls.push(("small1".into(), 1.0));
    calls.push(("small2".into(), 4.99));
    let owned: Vec<(&str, f64, &str)> = calls
        .iter()
        .map(|(u, c)| (u.as_str(), *c, "chat"))
        .collect();
    w.spend(&owned).await;
    let (status, body) = w
        .app
        .post_events(&w.ingest, &json!({"events": [{"provider": "openai", "model": "gpt-4o", "timestamp": w.clock.now_ms(), "input_tokens": 1, "output_tokens": 1, "cost_usd": 50.0}]}))
        .await;
    assert_eq!(status, 200, "{body}");

    assert_eq!(
        w.evaluate().await,
        6,
        "five users one by one, then a digest"
    );
    let mails = w.alert_mails();
    assert_eq!(mails.len(), 6);
    for (mail, user) in mails.iter().zip(["u8", "u7", "u6", "u5", "u4"]) {
        assert!(
            mail.contains(&format!("for user `{user}`")),
            "largest first: {mail}"
        );
    }
    assert!(
        mails[0].contains("at $13.00 (threshold $5.00)"),
        "{}",
        mails[0]
    );
    assert!(
        mails[5].contains(
            "3 more over the threshold (any user over $5.00 (last 24 h)): `u3`, `u2`, `u1`"
        ),
        "{}",
        mails[5]
    );
    assert!(
        mails.iter().all(|m| !m.contains("small")),
        "under the threshold"
    );
    assert_eq!(w.evaluate().await, 0, "nothing new: nothing told");

    // A new user goes over: told alone on the next run.
    w.clock.set(w.clock.now_ms() + HOUR);
    w.spend(&[("u9", 7.0, "chat")]).await;
    assert_eq!(w.evaluate().await, 1);
    assert!(
        w.alert_mails()
            .last()
            .unwrap()
            .contains("at $7.00 (threshold $5.00) for user `u9`")
    );

    // A day later all fell out of the window: ok, quietly; u9 spends again and is told again.
    w.clock.set(w.clock.now_ms() + 25 * HOUR);
    assert_eq!(w.evaluate().await, 0);
    let (_, rule) = w
        .owner
        .get(&format!("/v1/workspaces/{}/alerts/{id}", w.ws))
        .await;
    assert_eq!(rule["state"], "ok", "{rule}");
    w.spend(&[("u9", 6.0, "chat")]).await;
    assert_eq!(w.evaluate().await, 1);
    let (_, history) = w
        .owner
        .get(&format!("/v1/workspaces/{}/alerts/{id}/history", w.ws))
        .await;
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["transition"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 8);
    assert_eq!(kinds.iter().filter(|k| **k == "digest").count(), 1);
    let (_, rule) = w
        .owner
        .get(&format!("/v1/workspaces/{}/alerts/{id}", w.ws))
        .await;
    assert_eq!(
        rule["values"],
        json!(["u9"]),
        "the values over are shown: {rule}"
    );
}

#[tokio::test]
async fn any_value_rules_tell_each_user_once_on_sqlite() {
    let (store, dir) = sqlite_store();
    let w = world(Arc::new(store), Some(dir)).await;
    each_user_is_told_once(&w).await;

    // By requests, per feature, with a filter refused.
    let (status, body) = w
        .owner
        .post(
            &format!("/v1/workspaces/{}/alerts", w.ws),
            json!({"name": "x", "condition": {"metric": "any_value", "dimension": "feature", "over_requests": 3, "window_hours": 1},
                   "filter": {"dimension": "model", "value": "gpt-4o"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("leave `filter` out")
    );
    w.rule(json!({"name": "Busy features", "condition": {"metric": "any_value", "dimension": "feature", "over_requests": 3, "window_hours": 1}}))
        .await;
    w.clock.set(w.clock.now_ms() + 2 * HOUR);
    w.spend(&[
        ("a", 0.1, "search"),
        ("b", 0.1, "search"),
        ("c", 0.1, "search"),
        ("d", 0.1, "search"),
        ("e", 0.1, "chat"),
    ])
    .await;
    assert_eq!(w.evaluate().await, 1, "search made 4 requests, chat 1");
    assert!(
        w.alert_mails()
            .last()
            .unwrap()
            .contains("at 4 requests (threshold 3 requests) for feature `search`")
    );
}

#[tokio::test]
async fn any_value_rules_tell_each_user_once_on_dynamodb() {
    let store = dynamo_store().await;
    let w = world(Arc::new(store), None).await;
    each_user_is_told_once(&w).await;
}
