//! Cost-allocation tags over HTTP, with a test clock: an admin declares tag keys (checked, other
//! workspaces' ids 404), events carry their values in metadata, breakdowns and series by
//! `tag:<key>` add up to the total to the cent, a key's values past its bound count under
//! `(other)` (said in the answer), a replay counts nothing twice, a key declared in place of a
//! removed one never shows the old key's values, and the FOCUS export sums to the same cost
//! with the tags in its `Tags` column — on SQLite and DynamoDB.

use std::collections::BTreeMap;
use std::sync::Arc;

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::focus;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::tags::{MAX_TAG_VALUES, OTHER};
use llmtrack_shared::ports::DynStore;
use serde_json::{Value, json};

use crate::support::*;

/// 2026-12-01 05:20 UTC.
const NOW: i64 = 1_796_102_400_000;
const HOUR: i64 = 3_600_000;
/// Events in the batch: more distinct `customer` values than a key keeps.
const EVENTS: usize = MAX_TAG_VALUES + 5;

struct World {
    app: TestApp,
    clock: Arc<TestClock>,
    owner: Browser,
    ws: String,
    ingest: String,
    read: String,
}

async fn world(store: DynStore, dir: Option<tempfile::TempDir>) -> World {
    let clock = TestClock::at(NOW);
    let app = spawn_app_with(store, clock.clone(), dir, None).await;
    let owner = app.sign_in("owner@example.com").await;
    let (status, ws) = owner
        .post("/v1/workspaces", json!({"name": "Acme", "timezone": "UTC"}))
        .await;
    assert_eq!(status, 201, "{ws}");
    let ws = ws["id"].as_str().unwrap().to_owned();
    let id = WorkspaceId::parse(&ws).unwrap();
    app.store.set_plan(&id, Plan::Pro).await.unwrap();
    World {
        ingest: app.key(&id, Scope::Ingest, "production").await,
        read: app.key(&id, Scope::Read, "dashboards").await,
        app,
        clock,
        owner,
        ws,
    }
}

fn team_of(i: usize) -> &'static str {
    ["growth", "search", ""][i % 3]
}

/// Picodollars of event `i`: exact sums to compare with.
fn cost_pico(i: usize) -> i128 {
    (i as i128 % 7 + 1) * 1_250_000_000
}

impl World {
    fn tags_path(&self) -> String {
        format!("/v1/workspaces/{}/tags", self.ws)
    }

    async fn send(&self, events: &[Value]) -> Value {
        let (status, body) = self
            .app
            .post_events(&self.ingest, &json!({ "events": events }))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn breakdown(&self, by: &str) -> Value {
        let (status, body) = self
            .app
            .get_with_key(
                &self.read,
                &format!("/v1/stats/breakdown?by={by}&from=last_24h&limit=1000"),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn export(&self, format: &str) -> String {
        let resp = self
            .app
            .http
            .post(self.app.url("/v1/exports"))
            .bearer_auth(&self.read)
            .json(&json!({"kind": "focus", "format": format, "from": "last_24h"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }
}

fn batch() -> Vec<Value> {
    (0..EVENTS)
        .map(|i| {
            let mut metadata = json!({"customer": format!("c{i:03}")});
            if !team_of(i).is_empty() {
                metadata["team"] = json!(team_of(i));
            }
            json!({"id": format!("call-{i}"), "provider": "openai", "model": "gpt-4o",
                   "timestamp": NOW - 10 * 60_000, "feature": "search",
                   "input_tokens": 100, "output_tokens": 10,
                   "cost_usd": cost_pico(i) as f64 / 1e12, "metadata": metadata})
        })
        .collect()
}

fn usd(pico: i128) -> f64 {
    pico as f64 / 1e12
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

async fn tags_break_down_spend(w: &World) {
    // Nothing declared: a tag grouping says which keys exist.
    let (status, body) = w.owner.get(&w.tags_path()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keys"], json!([]));
    let (status, body) = w
        .app
        .get_with_key(&w.read, "/v1/stats/breakdown?by=tag:team")
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_dimension");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("declares no tag keys")
    );

    // Checked key by key.
    for (keys, field) in [
        (json!(["a", "b", "c", "d"]), "keys"),
        (json!(["team", "team"]), "keys[1]"),
        (json!(["team", "has space"]), "keys[1]"),
        (json!([""]), "keys[0]"),
    ] {
        let (status, body) = w.owner.put(&w.tags_path(), json!({ "keys": keys })).await;
        assert_eq!(status, 400, "{keys}: {body}");
        assert_eq!(body["error"]["code"], "invalid_tags");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("{field}:")), "{message}");
    }
    let (status, body) = w
        .owner
        .put(&w.tags_path(), json!({"keys": ["team", "customer"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keys"][0]["dimension"], "tag:team");
    assert_eq!(body["keys"][1]["dimension"], "tag:customer");

    // A batch whose `customer` values overflow the bound; then the same batch again.
    let first = w.send(&batch()).await;
    assert_eq!(first["accepted"], EVENTS);
    let again = w.send(&batch()).await;
    assert_eq!(again["duplicates"], EVENTS);

    let total: i128 = (0..EVENTS).map(cost_pico).sum();
    let team = w.breakdown("tag:team").await;
    assert_eq!(team["by"], "tag1");
    assert_eq!(team["tag"]["key"], "team");
    assert_eq!(team["tag"]["overflowed"], false);
    let rows: BTreeMap<String, (u64, f64)> = team["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["value"].as_str().unwrap().to_owned(),
                (
                    r["metrics"]["requests"].as_u64().unwrap(),
                    r["metrics"]["cost_usd"].as_f64().unwrap(),
                ),
            )
        })
        .collect();
    for name in ["growth", "search", ""] {
        let members: Vec<usize> = (0..EVENTS).filter(|i| team_of(*i) == name).collect();
        let want = usd(members.iter().map(|i| cost_pico(*i)).sum());
        let (requests, cost) = rows[name];
        assert_eq!(requests, members.len() as u64, "team `{name}`");
        assert!(close(cost, want), "team `{name}`: {cost} against {want}");
    }
    assert_eq!(rows.len(), 3);
    let sum: f64 = rows.values().map(|(_, c)| c).sum();
    assert!(close(sum, usd(total)), "the rows add up to the total");

    // The first MAX_TAG_VALUES customers kept, the rest under (other), and said so.
    let customer = w.breakdown("tag:customer").await;
    assert_eq!(customer["tag"]["overflowed"], true);
    assert_eq!(customer["tag"]["max_values"], MAX_TAG_VALUES);
    assert_eq!(customer["total_rows"], MAX_TAG_VALUES + 1);
    let other = customer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["value"] == OTHER)
        .expect("an (other) row");
    assert_eq!(other["metrics"]["requests"], 5);
    let other_cost: i128 = (MAX_TAG_VALUES..EVENTS).map(cost_pico).sum();
    assert!(close(
        other["metrics"]["cost_usd"].as_f64().unwrap(),
        usd(other_cost)
    ));

    // A series split by a tag.
    let (status, series) = w
        .app
        .get_with_key(
            &w.read,
            "/v1/stats/timeseries?by=tag:team&from=last_24h&granularity=hour",
        )
        .await;
    assert_eq!(status, 200, "{series}");
    assert_eq!(series["tag"]["key"], "team");
    let values: Vec<&str> = series["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["value"].as_str().unwrap())
        .collect();
    assert!(
        values.contains(&"growth") && values.contains(&"search"),
        "{values:?}"
    );

    let (status, body) = w
        .app
        .get_with_key(&w.read, "/v1/stats/breakdown?by=tag:project")
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tag:team, tag:customer"),
        "{body}"
    );

    // FOCUS: the same cost, one row per combination of tags, tags in `Tags`.
    let csv_text = w.export("csv").await;
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, focus::HEADER.map(str::to_owned).to_vec());
    let rows: Vec<BTreeMap<String, String>> = reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(str::to_owned))
                .collect()
        })
        .collect();
    let combos: std::collections::BTreeSet<(&str, String)> = (0..EVENTS)
        .map(|i| {
            let customer = if i < MAX_TAG_VALUES {
                format!("c{i:03}")
            } else {
                OTHER.to_owned()
            };
            (team_of(i), customer)
        })
        .collect();
    assert_eq!(
        rows.len(),
        combos.len(),
        "one row per (team, customer) here"
    );
    let billed: f64 = rows
        .iter()
        .map(|r| r["BilledCost"].parse::<f64>().unwrap())
        .sum();
    assert!(close(billed, usd(total)), "{billed} against {}", usd(total));
    let requests: u64 = rows
        .iter()
        .map(|r| r["x_Requests"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(requests, EVENTS as u64, "the replay is not in the bill");
    assert!(rows.iter().all(|r| r["BillingAccountId"] == w.ws
        && r["ChargeCategory"] == "Usage"
        && r["BillingCurrency"] == "USD"
        && r["ProviderName"] == "OpenAI"
        && r["SkuId"] == "gpt-4o"
        && r["SubAccountId"] == "production"
        && r["ChargePeriodStart"] == "2026-12-01T00:00:00Z"));
    let tags: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::from_str(&r["Tags"]).unwrap())
        .collect();
    assert!(
        tags.contains(&json!({"team": "growth", "customer": "c000"})),
        "{tags:?}"
    );
    assert!(
        tags.contains(&json!({"customer": "c002"})),
        "no team: no team tag"
    );
    let overflowed = combos.iter().filter(|(_, c)| c == OTHER).count();
    assert_eq!(
        tags.iter().filter(|t| t["customer"] == OTHER).count(),
        overflowed
    );
    let jsonl = w.export("jsonl").await;
    let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert!(
        first["BilledCost"].is_number() && first["Tags"].is_object(),
        "{first}"
    );
    assert!(first["RegionId"].is_null());

    // `team` replaced by `project`, which takes its slot from the next hour only: the old
    // key's values never show as the new key's.
    let (status, body) = w
        .owner
        .put(&w.tags_path(), json!({"keys": ["customer", "project"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let project = w.breakdown("tag:project").await;
    assert_eq!(project["rows"], json!([]), "{project}");
    w.clock.set(NOW + HOUR);
    w.send(&[
        json!({"provider": "openai", "model": "gpt-4o", "cost_usd": 0.5,
                    "input_tokens": 1, "output_tokens": 1, "metadata": {"project": "apollo"}}),
    ])
    .await;
    let project = w.breakdown("tag:project").await;
    let values: Vec<&str> = project["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, vec!["apollo"]);
    let (_, body) = w.owner.get(&w.tags_path()).await;
    assert_eq!(body["keys"][1]["values"], json!(["apollo"]));
}

#[tokio::test]
async fn tags_on_sqlite() {
    let (store, dir) = sqlite_store();
    let w = world(Arc::new(store), Some(dir)).await;
    tags_break_down_spend(&w).await;

    // Deleting the usage data takes the values it alone carried off the keys.
    let (status, accepted) = w
        .owner
        .post(
            &format!("/v1/workspaces/{}/deletions", w.ws),
            json!({"scope": "usage", "confirm": "Acme", "from": "2026-11-30T00:00:00Z",
                   "to": "2026-12-01T07:00:00Z"}),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let job = format!(
        "/v1/workspaces/{}/deletions/{}",
        w.ws,
        accepted["id"].as_str().unwrap()
    );
    let mut state = Value::Null;
    for _ in 0..400 {
        let (_, j) = w.owner.get(&job).await;
        state = j["state"].clone();
        if state == "done" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(state, "done");
    let (_, body) = w.owner.get(&w.tags_path()).await;
    assert_eq!(body["keys"][0]["values"], json!([]), "{body}");
    assert_eq!(body["keys"][0]["overflowed"], false);
    assert_eq!(body["keys"][1]["values"], json!([]));

    // Another workspace's tags are 404; a member who is not an admin may read, not write.
    let stranger = w.app.sign_in("stranger@example.com").await;
    let (status, _) = stranger.get(&w.tags_path()).await;
    assert_eq!(status, 404);
    let (status, _) = stranger
        .put(&w.tags_path(), json!({"keys": ["team"]}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn tags_on_dynamodb() {
    let store = dynamo_store().await;
    let w = world(Arc::new(store), None).await;
    tags_break_down_spend(&w).await;
}
