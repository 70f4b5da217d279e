//! Alerts to Slack, against a local stand-in for Slack's incoming webhooks that answers as Slack
//! does (`ok`; `no_service` for a removed webhook, `channel_is_archived`, `invalid_payload`,
//! `no_text`, 429 when rate limited): the URL checked and sealed (only a hint is ever shown,
//! and neither the store's files nor its table hold it), one readable message per transition
//! with a button to the rule's page, Slack's refusals named in the history, and rate limits
//! retried — on SQLite and DynamoDB.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::{Clock as _, DynStore};
use serde_json::{Value, json};

use crate::support::*;

/// The secret part of the webhook the tests connect: it must never be stored or shown.
const TOKEN: &str = "xK9fQ2LmZr7TpW4vNb8sYc3H";

/// Slack's incoming webhooks, as documented (api.slack.com/messaging/webhooks, "Handling
/// errors"): a known webhook takes a JSON message with `text` or `blocks` and answers `ok`;
/// Slack's refusals are a status with a short code in plain text.
#[derive(Clone, Default)]
struct FakeSlack {
    base: String,
    /// Webhook token → what it answers: `ok` or a refusal code.
    hooks: Arc<Mutex<HashMap<String, &'static str>>>,
    /// Statuses to answer next, before looking at the message (429, 503).
    fail: Arc<Mutex<Vec<u16>>>,
    messages: Arc<Mutex<Vec<Value>>>,
}

impl FakeSlack {
    async fn start() -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let slack = FakeSlack {
            base: format!("http://{}", listener.local_addr().unwrap()),
            ..FakeSlack::default()
        };
        let state = slack.clone();
        let app = axum::Router::new().route(
            "/services/{team}/{channel}/{token}",
            axum::routing::post(
                move |Path((_, _, token)): Path<(String, String, String)>,
                      headers: HeaderMap,
                      body: Bytes| {
                    let state = state.clone();
                    async move { state.answer(&token, &headers, &body) }
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        slack
    }

    fn answer(&self, token: &str, headers: &HeaderMap, body: &[u8]) -> (StatusCode, String) {
        if let Some(status) = self.fail.lock().unwrap().pop() {
            return (StatusCode::from_u16(status).unwrap(), "rate_limited".into());
        }
        let refusal =
            |status: u16, code: &str| (StatusCode::from_u16(status).unwrap(), code.into());
        match self.hooks.lock().unwrap().get(token) {
            None => return refusal(404, "no_service"),
            Some(&"channel_is_archived") => return refusal(410, "channel_is_archived"),
            Some(_) => {}
        }
        let json = headers
            .get("content-type")
            .is_some_and(|c| c.as_bytes().starts_with(b"application/json"));
        let Some(message) = serde_json::from_slice::<Value>(body).ok().filter(|_| json) else {
            return refusal(400, "invalid_payload");
        };
        let text = message["text"].as_str().unwrap_or_default();
        if text.is_empty() && message.get("blocks").is_none() {
            return refusal(400, "no_text");
        }
        if !blocks_are_valid(&message["blocks"]) {
            return refusal(400, "invalid_blocks");
        }
        self.messages.lock().unwrap().push(message);
        (StatusCode::OK, "ok".into())
    }

    fn hook(&self, token: &str, answer: &'static str) -> String {
        self.hooks.lock().unwrap().insert(token.into(), answer);
        format!("{}/services/T0ACME01/B0ALERTS/{token}", self.base)
    }

    fn messages(&self) -> Vec<Value> {
        self.messages.lock().unwrap().clone()
    }
}

/// What Slack checks of Block Kit that a message from us could get wrong: known block types,
/// mrkdwn sections under 3,000 characters, buttons with a label and a URL.
fn blocks_are_valid(blocks: &Value) -> bool {
    let Some(blocks) = blocks.as_array() else {
        return blocks.is_null();
    };
    blocks.len() <= 50
        && blocks.iter().all(|b| match b["type"].as_str() {
            Some("section") => b["text"]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty() && t.chars().count() <= 3_000),
            Some("actions") => b["elements"].as_array().is_some_and(|e| {
                e.iter().all(|e| {
                    e["type"] == "button"
                        && e["text"]["type"] == "plain_text"
                        && e["url"].as_str().is_some_and(|u| u.starts_with("http"))
                })
            }),
            _ => false,
        })
}

struct World {
    app: TestApp,
    clock: Arc<TestClock>,
    owner: Browser,
    ws: String,
    ingest: String,
    slack: FakeSlack,
}

async fn world(store: DynStore, dir: Option<tempfile::TempDir>) -> World {
    let clock = TestClock::at(now_ms());
    let app = spawn_app_with(store, clock.clone(), dir, None).await;
    let owner = app.sign_in("owner@example.com").await;
    let (_, ws) = owner
        .post("/v1/workspaces", json!({"name": "Acme <Labs>"}))
        .await;
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
        slack: FakeSlack::start().await,
    }
}

impl World {
    fn rules(&self) -> String {
        format!("/v1/workspaces/{}/alerts", self.ws)
    }

    /// `n` requests a second apart, every `error_every`th failing (0: none).
    async fn send(&self, n: usize, error_every: usize) {
        let now = self.clock.now_ms();
        let events: Vec<Value> = (0..n)
            .map(|i| {
                json!({"provider": "openai", "model": "gpt-4o", "timestamp": now - (i as i64) * 1000,
                    "input_tokens": 10, "output_tokens": 5, "latency_ms": 300, "cost_usd": 0.001,
                    "status": if error_every > 0 && i % error_every == 0 { "error" } else { "success" }})
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

    async fn test_notification(&self, rule: &str) -> Value {
        let (status, sent) = self
            .owner
            .post(&format!("{}/{rule}/test", self.rules()), json!({}))
            .await;
        assert_eq!(status, 200, "{sent}");
        sent["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["channel"] == "slack")
            .cloned()
            .unwrap_or_else(|| panic!("no Slack delivery: {sent}"))
    }
}

/// A rule posting to Slack only: test, firing and resolved, one message each.
async fn fires_and_resolves_in_slack(w: &World) {
    let url = w.slack.hook(TOKEN, "ok");
    let (status, rule) = w
        .owner
        .post(
            &w.rules(),
            json!({"name": "Errors & retries", "email": false, "slack_webhook_url": url,
                   "condition": {"metric": "error_rate", "over_pct": 10, "window_minutes": 15, "min_requests": 10},
                   "filter": {"dimension": "model", "value": "gpt-4o"}}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let id = rule["id"].as_str().unwrap().to_owned();
    assert_eq!(rule["slack"], "127.0.0.1/services/T0ACME01/B0ALERTS/…Yc3H");
    assert!(rule.get("webhook_secret").is_none(), "{rule}");
    let (_, listed) = w.owner.get(&w.rules()).await;
    let (_, one) = w.owner.get(&format!("{}/{id}", w.rules())).await;
    for shown in [rule.to_string(), listed.to_string(), one.to_string()] {
        assert!(!shown.contains(TOKEN), "the webhook URL is shown: {shown}");
    }

    let delivery = w.test_notification(&id).await;
    assert_eq!(delivery["ok"], true, "{delivery}");
    w.send(40, 0).await;
    assert_eq!(w.evaluate().await, 0);
    w.clock.set(w.clock.now_ms() + 60_000);
    w.send(40, 2).await;
    assert_eq!(w.evaluate().await, 1);
    assert_eq!(w.evaluate().await, 0, "still firing: no second message");
    w.clock.set(w.clock.now_ms() + 20 * 60_000);
    w.send(40, 0).await;
    assert_eq!(w.evaluate().await, 1);
    assert_eq!(w.evaluate().await, 0);

    let messages = w.slack.messages();
    assert_eq!(messages.len(), 3, "test, firing, resolved: {messages:?}");
    let sections: Vec<&str> = messages
        .iter()
        .map(|m| m["blocks"][0]["text"]["text"].as_str().unwrap())
        .collect();
    assert!(sections[0].contains("test notification"), "{}", sections[0]);
    assert!(
        sections[1]
            .starts_with(":rotating_light: *Errors &amp; retries* is firing in Acme &lt;Labs&gt;"),
        "names are escaped for mrkdwn: {}",
        sections[1]
    );
    assert!(
        sections[1].contains("error rate over 10% (last 15 min) for model `gpt-4o`: *25.0%*"),
        "{}",
        sections[1]
    );
    assert!(sections[2].contains("resolved") && sections[2].contains("back to *0.0%*"));
    let link = format!("{}/workspaces/{}/alerts/{id}", w.app.url(""), w.ws);
    for m in &messages {
        assert_eq!(m["blocks"][1]["elements"][0]["url"], link.as_str(), "{m}");
        assert!(
            m["text"].as_str().unwrap().contains("Errors &amp; retries"),
            "{m}"
        );
    }
    assert!(messages[1]["text"].as_str().unwrap().contains("is firing"));
    assert!(
        w.app
            .mails_to("owner@example.com")
            .iter()
            .all(|m| !m.contains("LLMtrack alert")),
        "email is off for this rule"
    );
    let (_, history) = w.owner.get(&format!("{}/{id}/history", w.rules())).await;
    let channels: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["deliveries"].as_array().unwrap())
        .map(|d| d["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, vec!["slack"; 3]);
}

#[tokio::test]
async fn alerts_reach_slack_once_per_transition_on_sqlite() {
    let (store, dir) = sqlite_store();
    let w = world(Arc::new(store), Some(dir)).await;
    fires_and_resolves_in_slack(&w).await;
    let mut haystack = Vec::new();
    for file in w.app.data_files() {
        haystack.extend(std::fs::read(file).unwrap());
    }
    let haystack = String::from_utf8_lossy(&haystack);
    assert!(
        haystack.contains("alert-slack") || haystack.contains("…Yc3H"),
        "the rule is stored"
    );
    assert!(
        !haystack.contains(TOKEN),
        "the Slack webhook is stored in the clear"
    );
}

#[tokio::test]
async fn alerts_reach_slack_once_per_transition_on_dynamodb() {
    let store = dynamo_store().await;
    let table = store.clone();
    let w = world(Arc::new(store), None).await;
    fires_and_resolves_in_slack(&w).await;
    let items = format!("{:?}", scan_table(&table).await);
    assert!(items.contains("…Yc3H"), "the rule is in the table");
    assert!(
        !items.contains(TOKEN),
        "the Slack webhook is in the table in the clear"
    );
}

/// Only Slack webhook URLs are taken; Slack's refusals are named in the history and not
/// retried; rate limits are; removing the only channel is refused; a sealed URL copied to
/// another rule does not open.
#[tokio::test]
async fn slack_urls_are_checked_and_refusals_named() {
    let (store, dir) = sqlite_store();
    let w = world(Arc::new(store), Some(dir)).await;
    let condition = json!({"metric": "cost", "period": "day", "over_usd": 10});
    for (url, says) in [
        (
            "https://example.com/services/T1/B1/x",
            "must be a Slack incoming webhook",
        ),
        (
            "http://hooks.slack.com/services/T1/B1/x",
            "must be a Slack incoming webhook",
        ),
        (
            "https://hooks.slack.com:8443/services/T1/B1/x",
            "must be a Slack incoming webhook",
        ),
        ("https://hooks.slack.com/services/T1/x", "as Slack shows it"),
        (
            "https://hooks.slack.com/workflows/T1/B1/x",
            "as Slack shows it",
        ),
        (
            "https://hooks.slack.com/services/T1/B1/x?y=1",
            "must not carry a query",
        ),
        ("not a url", "is not a URL"),
    ] {
        let (status, body) = w
            .owner
            .post(
                &w.rules(),
                json!({"name": "Spend", "condition": condition, "slack_webhook_url": url}),
            )
            .await;
        assert_eq!(status, 400, "{url}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("`slack_webhook_url`") && message.contains(says),
            "{url}: {message}"
        );
    }
    let (status, ok) = w
        .owner
        .post(
            &w.rules(),
            json!({"name": "Real Slack", "condition": condition,
                   "slack_webhook_url": "https://hooks.slack.com/services/T0001/B0002/abcdefgh1234"}),
        )
        .await;
    assert_eq!(status, 201, "{ok}");
    assert_eq!(ok["slack"], "hooks.slack.com/services/T0001/B0002/…1234");

    // An archived channel: Slack's reason in the history, not retried.
    let url = w.slack.hook("archived0001", "channel_is_archived");
    let (status, rule) = w
        .owner
        .post(&w.rules(), json!({"name": "Spend", "condition": condition, "email": false, "slack_webhook_url": url}))
        .await;
    assert_eq!(status, 201, "{rule}");
    let id = rule["id"].as_str().unwrap().to_owned();
    let delivery = w.test_notification(&id).await;
    assert_eq!(delivery["ok"], false);
    assert_eq!(delivery["detail"], "HTTP 410 channel_is_archived");
    assert_eq!(delivery["attempts"], 1);

    // Rate limited once, then taken.
    let url = w.slack.hook(TOKEN, "ok");
    let (status, _) = w
        .owner
        .patch(
            &format!("{}/{id}", w.rules()),
            json!({"slack_webhook_url": url}),
        )
        .await;
    assert_eq!(status, 200);
    w.slack.fail.lock().unwrap().push(429);
    let delivery = w.test_notification(&id).await;
    assert_eq!(delivery["ok"], true, "{delivery}");
    assert_eq!(delivery["attempts"], 2);

    // A webhook removed on Slack's side.
    let gone = format!("{}/services/T0ACME01/B0ALERTS/removed00001", w.slack.base);
    w.owner
        .patch(
            &format!("{}/{id}", w.rules()),
            json!({"slack_webhook_url": gone}),
        )
        .await;
    assert_eq!(
        w.test_notification(&id).await["detail"],
        "HTTP 404 no_service"
    );

    // Slack was the only channel: it cannot be removed alone.
    let (status, body) = w
        .owner
        .patch(
            &format!("{}/{id}", w.rules()),
            json!({"slack_webhook_url": null}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs a channel")
    );
    let (status, body) = w
        .owner
        .patch(
            &format!("{}/{id}", w.rules()),
            json!({"slack_webhook_url": null, "email": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["slack"], Value::Null);

    // A sealed URL is bound to its rule: copied into another, it does not open.
    let stored = w
        .app
        .store
        .alert_rule(
            &WorkspaceId::parse(&w.ws).unwrap(),
            ok["id"].as_str().unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let mut other = w
        .app
        .store
        .alert_rule(&WorkspaceId::parse(&w.ws).unwrap(), &id)
        .await
        .unwrap()
        .unwrap();
    other.slack = stored.slack.clone();
    assert!(w.app.store.update_alert_rule(&mut other).await.unwrap());
    let delivery = w.test_notification(&id).await;
    assert_eq!(delivery["ok"], false);
    assert!(
        delivery["detail"]
            .as_str()
            .unwrap()
            .contains("set it again"),
        "{delivery}"
    );
}
