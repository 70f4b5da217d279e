//! `anomaly` alert rules over HTTP, driven by a test clock: three weeks of hourly traffic with
//! a daily and weekly rhythm, then a normal day (nothing told), a cost spike (told once, with
//! the hour of the week and the feature behind it, then resolved once) and an outage of
//! requests (told once, resolved once) — on SQLite. Then per-value rules: one feature's cost
//! spikes while the workspace's total barely moves, and the rules watching that feature (a
//! filter) and each feature (`each`) tell it once and its end once; the total's stays quiet —
//! on SQLite and on DynamoDB (there with each hour's calls of a feature merged into one event).

use std::sync::Arc;

use chrono::{Datelike, Timelike};
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::time::to_datetime;
use llmtrack_shared::ports::DynStore;
use serde_json::{Value, json};

use crate::support::*;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

struct World {
    app: TestApp,
    clock: Arc<TestClock>,
    owner: Browser,
    ws: String,
    ingest: String,
}

/// How an hour departs from its usual traffic.
#[derive(Clone, Copy, PartialEq)]
enum Hour {
    Usual,
    /// 8× the usual cost: 80% of the excess from a new `summarize` feature, 20% from `chat`
    /// calls costing more; only 5 more calls.
    CostSpike,
    /// No calls at all.
    Outage,
}

/// The usual calls of an epoch hour: 60 an office hour (08:00–20:00 UTC) on weekdays, 45 at
/// weekends, 15 a night hour (10 at weekends), give or take 5%.
fn usual_calls(hour: i64) -> usize {
    let t = to_datetime(hour * HOUR);
    let weekend = t.weekday().num_days_from_monday() >= 5;
    let day = (8..20).contains(&t.hour());
    let base: i64 = match (day, weekend) {
        (true, false) => 60,
        (true, true) => 45,
        (false, false) => 15,
        (false, true) => 10,
    };
    // A fixed wobble, so the weeks are not identical.
    let wobble = (hour * 7919).rem_euclid(11) - 5;
    usize::try_from(base + base * wobble / 100).unwrap()
}

/// The events of an epoch hour: 60% `chat` and 40% `search` calls at $0.10 each.
fn events_of(hour: i64, kind: Hour) -> Vec<Value> {
    if kind == Hour::Outage {
        return Vec::new();
    }
    let n = usual_calls(hour);
    let usual_cost = n as f64 * 0.10;
    let chat = n * 6 / 10;
    let step = 50 * 60_000 / n as i64;
    let mut events: Vec<Value> = (0..n)
        .map(|i| {
            let feature = if i < chat { "chat" } else { "search" };
            let mut cost = 0.10;
            if kind == Hour::CostSpike && i < chat {
                // The chat calls' share of the excess: 20% of 7× usual, spread over them.
                cost += 0.2 * 7.0 * usual_cost / chat as f64;
            }
            json!({"provider": "openai", "model": "gpt-4o", "timestamp": hour * HOUR + i as i64 * step,
                   "input_tokens": 100, "output_tokens": 50, "cost_usd": cost, "feature": feature})
        })
        .collect();
    if kind == Hour::CostSpike {
        for i in 0..5 {
            events.push(json!({"provider": "openai", "model": "gpt-4o",
                "timestamp": hour * HOUR + 55 * 60_000 + i, "input_tokens": 100, "output_tokens": 50,
                "cost_usd": 0.8 * 7.0 * usual_cost / 5.0, "feature": "summarize"}));
        }
    }
    events
}

async fn world(store: DynStore, dir: Option<tempfile::TempDir>, start: i64) -> World {
    let clock = TestClock::at(start);
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
    async fn post(&self, events: Vec<Value>) {
        for batch in events.chunks(1_000) {
            let (status, body) = self
                .app
                .post_events(&self.ingest, &json!({ "events": batch }))
                .await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["accepted"], batch.len(), "{body}");
        }
    }

    /// Sends an hour's traffic during it, then evaluates just after it is over; returns the
    /// notifications sent.
    async fn hour(&self, hour: i64, kind: Hour) -> usize {
        self.hour_of(hour, events_of(hour, kind)).await
    }

    /// [`World::hour`] with the hour's events given.
    async fn hour_of(&self, hour: i64, events: Vec<Value>) -> usize {
        self.clock.set(hour * HOUR + 58 * 60_000);
        self.post(events).await;
        self.clock.set((hour + 1) * HOUR + 60_000);
        self.evaluate().await
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

    async fn state(&self, id: &str) -> Value {
        let (_, rule) = self
            .owner
            .get(&format!("/v1/workspaces/{}/alerts/{id}", self.ws))
            .await;
        rule["state"].clone()
    }
}

/// "Saturday 06:00" for an epoch hour (the workspace is on UTC).
fn label(hour: i64) -> String {
    let t = to_datetime(hour * HOUR);
    format!(
        "{} {:02}:00",
        WEEKDAYS[t.weekday().num_days_from_monday() as usize],
        t.hour()
    )
}

#[tokio::test]
async fn anomaly_rules_tell_a_spike_and_an_outage_once_each_on_sqlite() {
    // Today 06:10 UTC (or yesterday's, if that is still ahead): the spike comes at night, the
    // outage in office hours.
    let now = now_ms();
    let mut start = now.div_euclid(DAY) * DAY + 6 * HOUR + 10 * 60_000;
    if start > now {
        start -= DAY;
    }
    let h0 = start / HOUR;
    let (store, dir) = sqlite_store();
    let w = world(Arc::new(store), Some(dir), start).await;

    // Three weeks of history, sent at once.
    let history: Vec<Value> = (h0 - 21 * 24..h0)
        .flat_map(|h| events_of(h, Hour::Usual))
        .collect();
    w.post(history).await;

    // Each feature within one model is not kept by the rollups: refused, naming `each`; a bad
    // dimension is named.
    let (status, body) = w
        .owner
        .post(
            &format!("/v1/workspaces/{}/alerts", w.ws),
            json!({"name": "x", "condition": {"metric": "anomaly", "on": "cost", "each": "feature"},
                   "filter": {"dimension": "model", "value": "gpt-4o"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`each` (feature) cannot be watched within a `model` filter"),
        "{body}"
    );
    let (status, body) = w
        .owner
        .post(
            &format!("/v1/workspaces/{}/alerts", w.ws),
            json!({"name": "x", "condition": {"metric": "anomaly", "on": "cost", "each": "status"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`each`"),
        "{body}"
    );
    // Each end-user would read every end-user's eight weeks every run: refused, with the ways
    // that are bounded named.
    let (status, body) = w
        .owner
        .post(
            &format!("/v1/workspaces/{}/alerts", w.ws),
            json!({"name": "x", "condition": {"metric": "anomaly", "on": "cost", "each": "user"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`any_value`"),
        "{body}"
    );
    let (status, body) = w
        .owner
        .post(
            &format!("/v1/workspaces/{}/alerts", w.ws),
            json!({"name": "x", "condition": {"metric": "anomaly", "on": "cost", "dimension": "status"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    let cost = w
        .rule(json!({"name": "Cost anomaly", "condition": {"metric": "anomaly", "on": "cost"}}))
        .await;
    let requests = w
        .rule(json!({"name": "Traffic anomaly", "condition": {"metric": "anomaly", "on": "requests", "dimension": "model"}}))
        .await;
    assert_eq!(w.evaluate().await, 0, "the last complete hour was usual");

    // A normal day: nothing.
    for h in h0..h0 + 24 {
        assert_eq!(w.hour(h, Hour::Usual).await, 0, "hour {}", label(h));
    }
    assert!(w.alert_mails().is_empty());

    // A spike of 8× the cost for 3 hours: told once, when its first hour is over.
    let spike = h0 + 24;
    assert_eq!(w.hour(spike, Hour::CostSpike).await, 1);
    let mails = w.alert_mails();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert!(mail.contains("Cost anomaly"), "{mail}");
    // "cost 8.0× usual for Saturday 06:00 ($8.00, usually $1.00)" (the outbox reader decodes
    // the body's quoted-printable bytes one by one, so "×" is not matched as such).
    assert!(mail.contains("is firing in Acme: cost 8.0"), "{mail}");
    assert!(
        mail.contains(&format!(" usual for {} ($", label(spike))),
        "{mail}"
    );
    assert!(mail.contains("80% from feature=summarize"), "{mail}");
    assert!(mail.contains("from feature=chat"), "{mail}");
    assert_eq!(w.state(&cost).await, "firing");
    assert_eq!(w.evaluate().await, 0, "told once");
    assert_eq!(w.hour(spike + 1, Hour::CostSpike).await, 0);
    assert_eq!(w.hour(spike + 2, Hour::CostSpike).await, 0);
    // Back to usual: resolved after two usual hours, once.
    assert_eq!(w.hour(spike + 3, Hour::Usual).await, 0);
    assert_eq!(w.hour(spike + 4, Hour::Usual).await, 1);
    let resolved = w.alert_mails().last().unwrap().clone();
    assert!(resolved.contains("\"Cost anomaly\" resolved"), "{resolved}");
    assert!(resolved.contains("usually $"), "{resolved}");
    assert_eq!(w.state(&cost).await, "ok");
    assert_eq!(w.hour(spike + 5, Hour::Usual).await, 0);

    // An outage of requests at noon: told at once, resolved once traffic is back.
    let outage = h0 + 30;
    assert_eq!(w.hour(outage, Hour::Outage).await, 1);
    let mail = w.alert_mails().last().unwrap().clone();
    assert!(mail.contains("Traffic anomaly"), "{mail}");
    assert!(
        mail.contains(&format!(
            "requests down to 0% of usual for {}",
            label(outage)
        )),
        "{mail}"
    );
    assert_eq!(w.state(&requests).await, "firing");
    assert_eq!(w.hour(outage + 1, Hour::Outage).await, 0);
    // The evaluator misses three hours: it catches up, traffic back, and resolves once.
    for h in outage + 2..outage + 5 {
        w.clock.set(h * HOUR + 58 * 60_000);
        w.post(events_of(h, Hour::Usual)).await;
    }
    w.clock.set((outage + 5) * HOUR + 60_000);
    assert_eq!(w.evaluate().await, 1);
    let resolved = w.alert_mails().last().unwrap().clone();
    assert!(
        resolved.contains("\"Traffic anomaly\" resolved"),
        "{resolved}"
    );
    assert_eq!(w.state(&requests).await, "ok");
    assert_eq!(w.evaluate().await, 0);
    assert_eq!(w.alert_mails().len(), 4);

    let (_, history) = w
        .owner
        .get(&format!("/v1/workspaces/{}/alerts/{cost}/history", w.ws))
        .await;
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["transition"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["resolved", "firing"]);
}

/// An hour's events at $0.30 a call, with a smaller `translate` feature beside `chat` and
/// `search`: a fifth as many calls at $0.20 each ($2.40 a weekday office hour of $20.40), or at
/// $0.80 in a spike of that feature, which moves the workspace's total by about a third (under
/// the 1.5× an anomaly needs). Translate's usual office hour stays over the $1 under which an
/// hour is too small to tell, so its anomaly can resolve.
fn with_translate(hour: i64, spike: bool) -> Vec<Value> {
    let mut events = events_of(hour, Hour::Usual);
    for e in &mut events {
        e["cost_usd"] = json!(0.30);
    }
    let cost = if spike { 0.80 } else { 0.20 };
    for i in 0..usual_calls(hour) / 5 {
        events.push(json!({"provider": "openai", "model": "gpt-4o",
            "timestamp": hour * HOUR + 52 * 60_000 + i as i64 * 1_000,
            "input_tokens": 100, "output_tokens": 50, "cost_usd": cost, "feature": "translate"}));
    }
    events
}

/// One event per feature for an hour's calls of that feature, costing what they cost together:
/// the same cost series with a fraction of the writes (DynamoDB through moto is slow).
fn merged(events: Vec<Value>) -> Vec<Value> {
    let mut by_feature: std::collections::BTreeMap<String, Value> = Default::default();
    for e in events {
        let feature = e["feature"].as_str().unwrap().to_owned();
        match by_feature.get_mut(&feature) {
            None => {
                by_feature.insert(feature, e);
            }
            Some(m) => {
                let cost = m["cost_usd"].as_f64().unwrap() + e["cost_usd"].as_f64().unwrap();
                m["cost_usd"] = json!(cost);
                for t in ["input_tokens", "output_tokens"] {
                    m[t] = json!(m[t].as_u64().unwrap() + e[t].as_u64().unwrap());
                }
            }
        }
    }
    by_feature.into_values().collect()
}

/// The start of the per-value tests: today 06:10 UTC (or yesterday's), so the spike comes in
/// office hours, 10:00 to 13:00.
fn per_value_start() -> i64 {
    let now = now_ms();
    let mut start = now.div_euclid(DAY) * DAY + 6 * HOUR + 10 * 60_000;
    if start > now {
        start -= DAY;
    }
    start
}

#[tokio::test]
async fn anomaly_rules_watch_one_value_or_each_value_on_sqlite() {
    let start = per_value_start();
    let (store, dir) = sqlite_store();
    let w = world(Arc::new(store), Some(dir), start).await;
    per_value_rules(&w, start / HOUR, false).await;
}

/// The same on DynamoDB, with each hour's calls of a feature merged into one event (the costs,
/// which the rules watch, unchanged).
#[tokio::test]
async fn anomaly_rules_watch_one_value_or_each_value_on_dynamodb() {
    let start = per_value_start();
    let w = world(Arc::new(dynamo_store().await), None, start).await;
    per_value_rules(&w, start / HOUR, true).await;
}

async fn per_value_rules(w: &World, h0: i64, merge: bool) {
    let with_translate = |h: i64, spike: bool| {
        let events = with_translate(h, spike);
        if merge { merged(events) } else { events }
    };
    let history: Vec<Value> = (h0 - 21 * 24..h0)
        .flat_map(|h| with_translate(h, false))
        .collect();
    w.post(history).await;

    let total = w
        .rule(json!({"name": "Total", "condition": {"metric": "anomaly", "on": "cost"}}))
        .await;
    let one = w
        .rule(json!({"name": "Translate", "condition": {"metric": "anomaly", "on": "cost", "dimension": "model"},
                     "filter": {"dimension": "feature", "value": "translate"}}))
        .await;
    let each = w
        .rule(json!({"name": "Any feature", "condition": {"metric": "anomaly", "on": "cost", "each": "feature"}}))
        .await;
    let (_, rule) = w
        .owner
        .get(&format!("/v1/workspaces/{}/alerts/{each}", w.ws))
        .await;
    assert_eq!(rule["condition"]["each"], "feature", "{rule}");
    assert_eq!(w.evaluate().await, 0, "the last complete hour was usual");
    for h in h0..h0 + 4 {
        assert_eq!(
            w.hour_of(h, with_translate(h, false)).await,
            0,
            "{}",
            label(h)
        );
    }

    // Translate costs 4× its usual for three hours: the two rules watching it tell it once
    // each, naming the feature; the total is quiet.
    let spike = h0 + 4;
    let mut sent = 0;
    for h in spike..spike + 3 {
        sent += w.hour_of(h, with_translate(h, true)).await;
    }
    assert_eq!(sent, 2, "{:?}", w.alert_mails());
    let mails = w.alert_mails();
    let firing = |name: &str| -> Vec<&String> {
        mails
            .iter()
            .filter(|m| m.contains(&format!("\"{name}\" is firing")))
            .collect()
    };
    assert!(firing("Total").is_empty(), "{mails:?}");
    for name in ["Translate", "Any feature"] {
        let told = firing(name);
        assert_eq!(told.len(), 1, "{name}: {mails:?}");
        assert!(told[0].contains("is firing in Acme: cost "), "{}", told[0]);
        assert!(told[0].contains(" on feature=translate ($"), "{}", told[0]);
    }
    assert_eq!(w.state(&one).await, "firing");
    assert_eq!(w.state(&each).await, "firing");
    assert_eq!(w.state(&total).await, "ok");
    let (_, rule) = w
        .owner
        .get(&format!("/v1/workspaces/{}/alerts/{each}", w.ws))
        .await;
    assert_eq!(rule["values"], json!(["translate"]), "{rule}");

    // Back to usual: each resolves once, after two usual hours, naming the feature.
    let mut sent = 0;
    for h in spike + 3..spike + 6 {
        sent += w.hour_of(h, with_translate(h, false)).await;
    }
    assert_eq!(sent, 2, "{:?}", w.alert_mails());
    let mails = w.alert_mails();
    assert_eq!(mails.len(), 4, "{mails:?}");
    let resolved: Vec<&String> = mails.iter().filter(|m| m.contains("resolved")).collect();
    assert_eq!(resolved.len(), 2, "{mails:?}");
    for m in resolved {
        assert!(m.contains("for feature `translate`"), "{m}");
    }
    for id in [&one, &each] {
        assert_eq!(w.state(id).await, "ok");
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
        assert_eq!(kinds, ["resolved", "firing"]);
    }
    let (_, history) = w
        .owner
        .get(&format!("/v1/workspaces/{}/alerts/{each}/history", w.ws))
        .await;
    assert_eq!(history[0]["transition"]["about"], "feature `translate`");
}
