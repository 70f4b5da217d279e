//! Repricing through the API, on both stores: a dry run counts what today's prices would change
//! by model (before and after) and changes nothing; applying it rewrites the events' costs and
//! every rollup of their hours, leaves sent costs alone, and is audited. Ranges that cannot be
//! repriced are refused naming the field, one repricing runs at a time, and another
//! workspace's jobs are not found.

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::event::CostSource;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::time::HOUR_MS;
use llmtrack_shared::ports::SystemClock;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::support::*;

/// Polls a repricing until it is done; returns it.
async fn done(b: &Browser, path: &str) -> Value {
    for _ in 0..800 {
        let (status, job) = b.get(path).await;
        assert_eq!(status, 200, "{job}");
        if job["state"] == "done" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("repricing {path} did not finish");
}

fn model<'a>(job: &'a Value, name: &str) -> &'a Value {
    job["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == name)
        .unwrap_or_else(|| panic!("no {name} in {job}"))
}

async fn repricing_applies_todays_prices_to_stored_events(app: TestApp) {
    let owner = app.sign_in("owner@example.com").await;
    let (_, ws) = owner.post("/v1/workspaces", json!({"name": "Acme"})).await;
    let ws = ws["id"].as_str().unwrap().to_owned();
    let id = WorkspaceId::parse(&ws).unwrap();
    let ingest = app.key(&id, Scope::Ingest, "production").await;
    let earlier = (now_ms() / HOUR_MS - 3) * HOUR_MS + 60_000;
    let call = |i: i64, model: &str| {
        json!({"id": format!("e{i}"), "timestamp": earlier + i * 600_000, "provider": "openai",
               "model": model, "input_tokens": 1000, "output_tokens": 200})
    };
    let mut events: Vec<Value> = (0..4).map(|i| call(i, "gpt-4o")).collect();
    events.push(call(4, "GPT-4o"));
    let mut sent = call(5, "gpt-4o");
    sent["cost_usd"] = json!(0.01);
    events.push(sent);
    events.push(
        json!({"id": "own", "timestamp": earlier, "provider": "acme",
        "model": "in-house-7b", "input_tokens": 1000, "output_tokens": 200}),
    );
    let (status, body) = app.post_events(&ingest, &json!({ "events": events })).await;
    assert_eq!((status, &body["unpriced"]), (200, &json!(1)), "{body}");
    let before = all_events(app.store.as_ref(), &id).await;

    // Prices negotiated since: 20% off gpt-4o, and a price for the in-house model.
    let prices = format!("/v1/workspaces/{ws}/prices");
    for rule in [
        json!({"provider": "openai", "model": "gpt-4o", "kind": "discount", "percent": 20}),
        json!({"provider": "acme", "model": "in-house-*", "kind": "rates",
               "rates": {"input": 0.5, "output": 1.5}}),
    ] {
        assert_eq!(owner.post(&prices, rule).await.0, 201);
    }

    // Refused, naming the field.
    let repricing = format!("/v1/workspaces/{ws}/repricing");
    for (body, field) in [
        (json!({"to": now_ms() + HOUR_MS}), "to"),
        (json!({"from": "2026-13-01"}), "from"),
        (json!({"from": earlier, "to": earlier - HOUR_MS}), "from"),
    ] {
        let (status, err) = owner.post(&repricing, body).await;
        assert_eq!(status, 400, "{err}");
        assert_eq!(err["error"]["code"], "invalid_repricing", "{err}");
        assert!(
            err["error"]["message"].as_str().unwrap().starts_with(field),
            "{err}"
        );
    }

    // The dry run (the default) counts, by canonical model, and changes nothing.
    let (status, job) = owner.post(&repricing, json!({})).await;
    assert_eq!((status, &job["dry_run"]), (202, &json!(true)), "{job}");
    let job = done(
        &owner,
        &format!("{repricing}/{}", job["id"].as_str().unwrap()),
    )
    .await;
    let gpt = model(&job, "gpt-4o");
    assert_eq!(
        (&gpt["events"], &gpt["changed"], &gpt["kept"]),
        (&json!(6), &json!(5), &json!(1)),
        "{job}"
    );
    // Five calls at $0.0045 and one sent at $0.01; after: five at $0.0036.
    let usd = |v: &Value| v.as_f64().unwrap();
    assert!(
        (usd(&gpt["cost_before_usd"]) - 0.0325).abs() < 1e-12,
        "{job}"
    );
    assert!((usd(&gpt["cost_after_usd"]) - 0.028).abs() < 1e-12, "{job}");
    let own = model(&job, "in-house-7b");
    assert_eq!(
        (&own["unpriced_before"], &own["unpriced_after"]),
        (&json!(1), &json!(0))
    );
    assert!(
        (usd(&own["cost_after_usd"]) - 0.0008).abs() < 1e-12,
        "{job}"
    );
    assert_eq!(
        (&job["total"]["events"], &job["rewritten"]),
        (&json!(7), &json!(0))
    );
    assert_eq!(all_events(app.store.as_ref(), &id).await, before);

    // Applied: the events and every rollup of their hours follow.
    let (status, job) = owner.post(&repricing, json!({"dry_run": false})).await;
    assert_eq!(status, 202, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    let job = done(&owner, &format!("{repricing}/{job_id}")).await;
    assert_eq!(
        (&job["rewritten"], &job["total"]["changed"]),
        (&json!(6), &json!(6)),
        "{job}"
    );
    let after = all_events(app.store.as_ref(), &id).await;
    let by_id = |i: &str| after.iter().find(|e| e.id == i).unwrap();
    assert_eq!(by_id("e0").cost_pico, Some(3_600_000_000));
    assert_eq!(by_id("e4").cost_source, Some(CostSource::WorkspacePrice));
    assert_eq!(by_id("own").cost_pico, Some(800_000_000));
    assert_eq!(by_id("e5"), before.iter().find(|e| e.id == "e5").unwrap());
    assert_rollups_match_events(app.store.as_ref(), &id).await;
    // The analytics read the rollups: five calls at $0.0036, one sent at $0.01, one at $0.0008.
    let read = app.key(&id, Scope::Read, "scripts").await;
    let from = chrono::DateTime::from_timestamp_millis(earlier - HOUR_MS)
        .unwrap()
        .to_rfc3339();
    let (status, summary) = app
        .summary(&read, &format!("?from={}", urlencode(&from)))
        .await;
    assert_eq!(status, 200, "{summary}");
    assert!(
        (usd(&summary["metrics"]["cost_usd"]) - 0.0288).abs() < 1e-9,
        "{summary}"
    );

    // A second dry run finds nothing left to change.
    let (_, again) = owner.post(&repricing, json!({})).await;
    let again = done(
        &owner,
        &format!("{repricing}/{}", again["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(again["total"]["changed"], 0, "{again}");

    // Applying is audited; dry runs change nothing and are not.
    let (_, audit) = owner.get(&format!("/v1/workspaces/{ws}/audit")).await;
    let reprices: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "data.reprice")
        .collect();
    assert_eq!(reprices.len(), 1, "{audit}");
    assert_eq!(reprices[0]["target"], json!(job_id));

    // One applied at a time; a dry run may run beside it.
    let mut running = app.store.job(&id, &job_id).await.unwrap().unwrap();
    running.id = "rep_running".into();
    running.state = llmtrack_shared::ports::JobState::Running;
    app.store.create_job(&running).await.unwrap();
    let (status, err) = owner.post(&repricing, json!({"dry_run": false})).await;
    assert_eq!(status, 409, "{err}");
    assert_eq!(owner.post(&repricing, json!({})).await.0, 202);

    // Another workspace's members find neither the job nor the way to start one.
    let other = app.sign_in("other@example.com").await;
    assert_eq!(other.get(&format!("{repricing}/{job_id}")).await.0, 404);
    assert_eq!(other.post(&repricing, json!({})).await.0, 404);
    let (_, theirs) = other.post("/v1/workspaces", json!({"name": "Other"})).await;
    let theirs = theirs["id"].as_str().unwrap();
    assert_eq!(
        other
            .get(&format!("/v1/workspaces/{theirs}/repricing/{job_id}"))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn repricing_applies_todays_prices_to_stored_events_on_sqlite() {
    repricing_applies_todays_prices_to_stored_events(spawn_app().await).await;
}

#[tokio::test]
async fn repricing_applies_todays_prices_to_stored_events_on_dynamodb() {
    let store = Arc::new(dynamo_store().await);
    repricing_applies_todays_prices_to_stored_events(
        spawn_app_on(store, Arc::new(SystemClock), None).await,
    )
    .await;
}
