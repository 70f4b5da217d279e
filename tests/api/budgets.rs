//! Budgets over HTTP, with a test clock: admins write them (checked field by field, audited,
//! another workspace's ids 404), `/v1/stats/budgets` shows each one's spend, remainder and
//! forecast against sums computed here, and `/v1/budgets/check` answers an application's ingest
//! key allow, warn and deny as the spend of the call's feature, user and source crosses each
//! budget's thresholds; the month is the workspace's, not UTC's — on SQLite and DynamoDB.

use std::sync::Arc;

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::DynStore;
use serde_json::{Value, json};

use crate::support::*;

/// 2026-12-01 05:00 UTC: 18:00 on December 1st in Auckland (UTC+13), whose December began at
/// 2026-11-30 11:00 UTC.
const NOW: i64 = 1_796_101_200_000;
/// 2026-11-30 10:00 UTC: still November in Auckland.
const AUCKLAND_NOVEMBER: i64 = 1_796_032_800_000;
/// 2026-11-30 12:00 UTC: December in Auckland, November in UTC.
const AUCKLAND_DECEMBER: i64 = 1_796_040_000_000;

struct World {
    app: TestApp,
    owner: Browser,
    ws: String,
    ingest: String,
    batch_key: String,
    read: String,
}

async fn world(store: DynStore, dir: Option<tempfile::TempDir>) -> World {
    let app = spawn_app_with(store, TestClock::at(NOW), dir, None).await;
    let owner = app.sign_in("owner@example.com").await;
    let (status, ws) = owner
        .post(
            "/v1/workspaces",
            json!({"name": "Acme", "timezone": "Pacific/Auckland"}),
        )
        .await;
    assert_eq!(status, 201, "{ws}");
    let ws = ws["id"].as_str().unwrap().to_owned();
    let id = WorkspaceId::parse(&ws).unwrap();
    app.store.set_plan(&id, Plan::Pro).await.unwrap();
    World {
        ingest: app.key(&id, Scope::Ingest, "production").await,
        batch_key: app.key(&id, Scope::Ingest, "batch").await,
        read: app.key(&id, Scope::Read, "dashboards").await,
        app,
        owner,
        ws,
    }
}

impl World {
    fn path(&self, rest: &str) -> String {
        format!("/v1/workspaces/{}/budgets{rest}", self.ws)
    }

    /// One event per (timestamp, feature, user, cost), sent with `key`.
    async fn spend(&self, key: &str, calls: &[(i64, &str, &str, f64)]) {
        let events: Vec<Value> = calls
            .iter()
            .map(|(ts, feature, user, cost)| {
                let mut e = json!({"provider": "openai", "model": "gpt-4o", "timestamp": ts, "feature": feature,
                       "input_tokens": 100, "output_tokens": 10, "cost_usd": cost});
                if !user.is_empty() {
                    e["user_id"] = json!(user);
                }
                e
            })
            .collect();
        let (status, body) = self
            .app
            .post_events(key, &json!({ "events": events }))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn check(&self, key: &str, query: &str) -> Value {
        let (status, body) = self
            .app
            .get_with_key(key, &format!("/v1/budgets/check{query}"))
            .await;
        assert_eq!(status, 200, "{query}: {body}");
        body
    }

    async fn add(&self, body: Value) -> Value {
        let (status, b) = self.owner.post(&self.path(""), body).await;
        assert_eq!(status, 201, "{b}");
        b
    }
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap_or(f64::NAN) - b).abs() < 1e-6
}

async fn budgets_answer_as_spend_grows(w: &World) {
    let search = w
        .add(
            json!({"name": "Search", "amount_usd": 10, "period": {"kind": "month"},
                    "scope": {"dimension": "feature", "value": "search"}}),
        )
        .await;
    assert_eq!(
        (search["warn_pct"].as_u64(), search["deny"].as_bool()),
        (Some(80), Some(true))
    );
    w.add(json!({"name": "Everything, weekly", "amount_usd": 100, "period": {"kind": "rolling", "days": 7},
                 "warn_pct": 50, "deny": false}))
        .await;
    w.add(
        json!({"name": "Batch jobs", "amount_usd": 1, "period": {"kind": "month"},
                 "scope": {"dimension": "source", "value": "batch"}}),
    )
    .await;

    // November in Auckland does not count for the month budgets; the rolling week does.
    w.spend(
        &w.ingest,
        &[
            (AUCKLAND_NOVEMBER, "search", "u1", 40.0),
            (AUCKLAND_DECEMBER, "search", "u1", 3.0),
            (NOW - 60_000, "search", "u2", 4.0),
            (NOW - 60_000, "chat", "u2", 2.5),
        ],
    )
    .await;
    let c = w.check(&w.ingest, "?feature=search&user=u1").await;
    assert_eq!(c["decision"], "allow", "{c}");
    assert!(
        close(&c["remaining_usd"], 3.0),
        "min(10 - 7, 100 - 49.5): {c}"
    );
    let names: Vec<&str> = c["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["Search", "Everything, weekly"],
        "the batch budget is for the batch key"
    );
    assert!(
        close(&c["budgets"][0]["spent_usd"], 7.0) && close(&c["budgets"][0]["used_pct"], 70.0),
        "{c}"
    );
    assert_eq!(
        c["budgets"][1]["decision"], "allow",
        "49.5 of 100 is under 50%"
    );

    // 85%: warn. Over: deny, while other features are allowed (the weekly one only warns).
    w.spend(&w.ingest, &[(NOW - 30_000, "search", "u3", 1.5)])
        .await;
    let c = w.check(&w.ingest, "?feature=search").await;
    assert_eq!(c["decision"], "warn", "{c}");
    assert_eq!(c["budgets"][1]["decision"], "warn", "51 of 100 passes 50%");
    w.spend(&w.ingest, &[(NOW - 20_000, "search", "u3", 2.0)])
        .await;
    let c = w
        .check(&w.ingest, "?feature=search&model=openai/GPT-4o")
        .await;
    assert_eq!(c["decision"], "deny", "{c}");
    assert!(close(&c["remaining_usd"], 0.0));
    assert!(close(&c["budgets"][0]["spent_usd"], 10.5));
    let c = w.check(&w.ingest, "?feature=chat").await;
    assert_eq!(c["decision"], "warn", "{c}");
    // The batch key's source has its own budget: its spend counts there only.
    let c = w.check(&w.batch_key, "").await;
    assert_eq!(
        c["decision"], "warn",
        "the weekly budget; batch spent nothing yet: {c}"
    );
    w.spend(&w.batch_key, &[(NOW - 10_000, "nightly", "", 1.25)])
        .await;
    let c = w.check(&w.batch_key, "?feature=nightly").await;
    assert_eq!(c["decision"], "deny", "{c}");
    let batch = c["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "Batch jobs")
        .unwrap();
    assert_eq!(batch["decision"], "deny", "{c}");

    // The dashboard's view: each budget's spend against the sums, and the month forecast.
    let (status, stats) = w
        .owner
        .get(&format!("/v1/stats/budgets?workspace={}", w.ws))
        .await;
    assert_eq!(status, 200, "{stats}");
    let by_name = |n: &str| {
        stats["budgets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["budget"]["name"] == n)
            .unwrap()["status"]
            .clone()
    };
    let s = by_name("Search");
    assert!(
        close(&s["spent_usd"], 10.5) && s["decision"] == "deny",
        "{s}"
    );
    assert_eq!(s["period_start"], "2026-11-30T11:00:00.000Z", "{s}");
    assert!(s["forecast_usd"].as_f64().unwrap() >= 10.5, "{s}");
    let week = by_name("Everything, weekly");
    assert!(
        close(
            &week["spent_usd"],
            40.0 + 3.0 + 4.0 + 2.5 + 1.5 + 2.0 + 1.25
        ),
        "{week}"
    );
    assert!(week["forecast_usd"].is_null());
    assert!(close(&by_name("Batch jobs")["spent_usd"], 1.25));
    let (status, by_key) = w.app.get_with_key(&w.read, "/v1/stats/budgets").await;
    assert_eq!(status, 200);
    assert_eq!(by_key["budgets"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn budgets_on_sqlite() {
    let (store, dir) = sqlite_store();
    let w = world(Arc::new(store), Some(dir)).await;
    budgets_answer_as_spend_grows(&w).await;

    // Checked field by field.
    for (body, field) in [
        (
            json!({"name": "x", "amount_usd": 0, "period": {"kind": "month"}}),
            "amount_usd",
        ),
        (
            json!({"name": "", "amount_usd": 5, "period": {"kind": "month"}}),
            "name",
        ),
        (
            json!({"name": "x", "amount_usd": 5, "period": {"kind": "rolling", "days": 91}}),
            "period",
        ),
        (
            json!({"name": "x", "amount_usd": 5, "period": {"kind": "month"}, "warn_pct": 0}),
            "warn_pct",
        ),
        (
            json!({"name": "x", "amount_usd": 5, "period": {"kind": "month"}, "scope": {"dimension": "status", "value": "error"}}),
            "scope",
        ),
    ] {
        let (status, e) = w.owner.post(&w.path(""), body.clone()).await;
        assert_eq!(status, 400, "{body}: {e}");
        assert_eq!(e["error"]["code"], "invalid_budget");
        assert!(
            e["error"]["message"].as_str().unwrap().starts_with(field),
            "{body}: {e}"
        );
    }
    let (status, e) = w
        .owner
        .post(
            &w.path(""),
            json!({"name": "x", "amount_usd": 5, "period": {"kind": "yearly"}}),
        )
        .await;
    assert_eq!(status, 400, "{e}");

    // Replace keeps the id; remove; audited; another workspace's ids 404.
    let (_, list) = w.owner.get(&w.path("")).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, b) = w
        .owner
        .put(&w.path(&format!("/{id}")), json!({"name": "Search, raised", "amount_usd": 20, "period": {"kind": "month"}, "scope": {"dimension": "feature", "value": "search"}}))
        .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["id"], id.as_str());
    assert_eq!(
        w.check(&w.ingest, "?feature=search").await["budgets"][0]["decision"],
        "allow"
    );
    let stranger = w.app.sign_in("stranger@example.com").await;
    let (_, other) = stranger
        .post("/v1/workspaces", json!({"name": "Other"}))
        .await;
    let foreign = format!(
        "/v1/workspaces/{}/budgets/{id}",
        other["id"].as_str().unwrap()
    );
    assert_eq!(stranger.delete(&foreign).await.0, 404);
    assert_eq!(stranger.delete(&w.path(&format!("/{id}"))).await.0, 404);
    assert_eq!(w.owner.delete(&w.path(&format!("/{id}"))).await.0, 204);
    assert_eq!(w.owner.delete(&w.path(&format!("/{id}"))).await.0, 404);
    let (_, audit) = w.owner.get(&format!("/v1/workspaces/{}/audit", w.ws)).await;
    let audit = audit.to_string();
    for action in ["budget.created", "budget.updated", "budget.deleted"] {
        assert!(audit.contains(action), "{action}");
    }

    // The check takes the ingest key only, and names an unknown parameter.
    let (status, _) = w.app.get_with_key(&w.read, "/v1/budgets/check").await;
    assert_eq!(status, 403);
    let (status, e) = w
        .app
        .get_with_key(&w.ingest, "/v1/budgets/check?team=x")
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(e.to_string().contains("team"), "{e}");
    let (status, _) = w.app.get_with_key("llmt_nope", "/v1/budgets/check").await;
    assert_eq!(status, 401);
    // Nothing applies in a workspace without budgets: allow, nothing remaining to say.
    let other_id = WorkspaceId::parse(other["id"].as_str().unwrap()).unwrap();
    let key = w.app.key(&other_id, Scope::Ingest, "production").await;
    let c = w.check(&key, "?feature=search").await;
    assert_eq!(
        c,
        json!({"decision": "allow", "remaining_usd": null, "budgets": []})
    );
}

#[tokio::test]
async fn budgets_on_dynamodb() {
    let store = dynamo_store().await;
    let w = world(Arc::new(store), None).await;
    budgets_answer_as_spend_grows(&w).await;
}

/// An alert rule that follows a budget (`budget_id`): the budget's amount, month (Auckland's)
/// and end-user scope; thresholds the budget's `warn_pct` and 100, each told once. An unknown
/// budget or a filter beside it is refused naming the field; once the budget is deleted the rule
/// says so and is not evaluated.
async fn a_rule_following_a_budget_tells_warn_and_100_once_each(w: &World) {
    let budget = w
        .add(
            json!({"name": "Power user", "amount_usd": 10, "period": {"kind": "month"},
                    "scope": {"dimension": "user", "value": "u_7"}, "warn_pct": 80}),
        )
        .await;
    let id = budget["id"].as_str().unwrap();
    let rules = format!("/v1/workspaces/{}/alerts", w.ws);
    for (body, needle) in [
        (
            json!({"name": "x", "condition": {"metric": "budget", "budget_id": "bdg_nope"}}),
            "budget_id",
        ),
        (
            json!({"name": "x", "condition": {"metric": "budget", "budget_id": id},
                   "filter": {"dimension": "feature", "value": "search"}}),
            "filter",
        ),
        (
            json!({"name": "x", "condition": {"metric": "budget", "budget_id": id, "budget_usd": 5}}),
            "budget_usd",
        ),
    ] {
        let (status, err) = w.owner.post(&rules, body.clone()).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(needle),
            "{err}"
        );
    }
    let (status, rule) = w
        .owner
        .post(
            &rules,
            json!({"name": "Power user", "condition": {"metric": "budget", "budget_id": id}}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let rule_path = format!("{rules}/{}", rule["id"].as_str().unwrap());
    let evaluate = || async {
        llmtrack_alerts::evaluate::all(&w.app.parts.alerts().deps)
            .await
            .unwrap()
            .notifications
    };
    let alert_mails = || {
        w.app
            .mails_to("owner@example.com")
            .into_iter()
            .filter(|m| m.contains("LLMtrack alert"))
            .collect::<Vec<_>>()
    };

    // Auckland's November and another end-user do not count: $5 of $10.
    w.spend(
        &w.ingest,
        &[
            (AUCKLAND_NOVEMBER, "chat", "u_7", 40.0),
            (AUCKLAND_DECEMBER, "chat", "u_7", 2.0),
            (NOW - 60_000, "search", "u_7", 3.0),
            (NOW - 60_000, "search", "u_8", 30.0),
        ],
    )
    .await;
    assert_eq!(evaluate().await, 0);
    // $8.50: past the budget's warn_pct (80), told once.
    w.spend(&w.ingest, &[(NOW - 30_000, "chat", "u_7", 3.5)])
        .await;
    assert_eq!(evaluate().await, 1);
    assert_eq!(evaluate().await, 0);
    // $10.50: past 100, told once.
    w.spend(&w.ingest, &[(NOW - 20_000, "chat", "u_7", 2.0)])
        .await;
    assert_eq!(evaluate().await, 1);
    assert_eq!(evaluate().await, 0);
    let mails = alert_mails();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert!(mails[0].contains("85.0%"), "{}", mails[0]);
    assert!(mails[1].contains("105.0%"), "{}", mails[1]);
    let (_, r) = w.owner.get(&rule_path).await;
    assert_eq!(
        (r["state"].as_str(), r["level"].as_u64()),
        (Some("firing"), Some(2)),
        "{r}"
    );
    assert!(r.get("problem").is_none(), "{r}");

    // The budget deleted: the rule says so, and is not evaluated (nor does it fail the run).
    let (status, _) = w.owner.delete(&w.path(&format!("/{id}"))).await;
    assert_eq!(status, 204);
    w.spend(&w.ingest, &[(NOW - 10_000, "chat", "u_7", 20.0)])
        .await;
    assert_eq!(evaluate().await, 0);
    assert_eq!(alert_mails().len(), 2);
    let (_, r) = w.owner.get(&rule_path).await;
    assert!(
        r["problem"].as_str().is_some_and(|p| p.contains("deleted")),
        "{r}"
    );
}

#[tokio::test]
async fn budget_rules_on_sqlite() {
    let (store, dir) = sqlite_store();
    let w = world(Arc::new(store), Some(dir)).await;
    a_rule_following_a_budget_tells_warn_and_100_once_each(&w).await;
}

#[tokio::test]
async fn budget_rules_on_dynamodb() {
    let store = dynamo_store().await;
    let w = world(Arc::new(store), None).await;
    a_rule_following_a_budget_tells_warn_and_100_once_each(&w).await;
}
