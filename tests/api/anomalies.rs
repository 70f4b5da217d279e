//! `anomaly` alert rules over HTTP, driven by a test clock: three weeks of hourly traffic with
//! a daily and weekly rhythm, then a normal day (nothing told), a cost spike (told once, with
//! the hour of the week and the feature behind it, then resolved once) and an outage of
//! requests (told once, resolved once) — on SQLite.

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
        self.clock.set(hour * HOUR + 58 * 60_000);
        self.post(events_of(hour, kind)).await;
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

    // A filter is refused; a bad dimension is named.
    let (status, body) = w
        .owner
        .post(
            &format!("/v1/workspaces/{}/alerts", w.ws),
            json!({"name": "x", "condition": {"metric": "anomaly", "on": "cost"},
                   "filter": {"dimension": "model", "value": "gpt-4o"}}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("leave `filter` out"),
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
