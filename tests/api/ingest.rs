//! Ingest through the API: validation, per-event results, idempotency and limits.

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::plan::Plan;
use serde_json::{Value, json};

use crate::support::*;

async fn app_and_key() -> (TestApp, String, llmtrack_shared::domain::ids::WorkspaceId) {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Pro).await;
    let key = app.key(&ws, Scope::Ingest, "production").await;
    (app, key, ws)
}

fn ok_event() -> Value {
    json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 5})
}

fn with(field: &str, value: Value) -> Value {
    let mut e = ok_event();
    e[field] = value;
    e
}

/// Each bad event, sent alone (400 naming the field) and at index 1 of a batch with two good
/// events (207: the good ones stored, the bad one rejected with its index and field).
#[tokio::test]
async fn every_bad_event_is_rejected_with_its_field_and_the_rest_are_kept() {
    let (app, key, ws) = app_and_key().await;
    let now = now_ms();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("missing provider", json!({"model": "gpt-4o"}), "provider"),
        ("missing model", json!({"provider": "openai"}), "model"),
        ("empty model", with("model", json!("")), "model"),
        (
            "negative tokens",
            with("input_tokens", json!(-3)),
            "input_tokens",
        ),
        (
            "fractional tokens",
            with("output_tokens", json!(1.5)),
            "output_tokens",
        ),
        (
            "string tokens",
            with("output_tokens", json!("12")),
            "output_tokens",
        ),
        (
            "cached beyond input",
            json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "cached_input_tokens": 8, "cache_write_tokens": 5}),
            "cached_input_tokens",
        ),
        (
            "reasoning beyond output",
            json!({"provider": "openai", "model": "o3", "output_tokens": 10, "reasoning_tokens": 11}),
            "reasoning_tokens",
        ),
        ("negative cost", with("cost_usd", json!(-0.01)), "cost_usd"),
        (
            "negative latency",
            with("latency_ms", json!(-1)),
            "latency_ms",
        ),
        (
            "future timestamp",
            with("timestamp", json!(now + 6 * 60_000)),
            "timestamp",
        ),
        (
            "timestamp past the plan window",
            with("timestamp", json!(now - 91 * 86_400_000)),
            "timestamp",
        ),
        (
            "unparseable timestamp",
            with("timestamp", json!("yesterday")),
            "timestamp",
        ),
        ("unknown status", with("status", json!("ok")), "status"),
        (
            "nested metadata",
            with("metadata", json!({"a": {"b": 1}})),
            "metadata.a",
        ),
        (
            "array metadata",
            with("metadata", json!({"a": [1, 2]})),
            "metadata.a",
        ),
        (
            "too many metadata keys",
            with(
                "metadata",
                Value::Object((0..17).map(|i| (format!("k{i}"), json!(i))).collect()),
            ),
            "metadata",
        ),
        (
            "oversized metadata value",
            with("metadata", json!({"a": "x".repeat(300)})),
            "metadata.a",
        ),
        (
            "oversized metadata in total",
            with(
                "metadata",
                Value::Object(
                    (0..8)
                        .map(|i| (format!("k{i}"), json!("y".repeat(200))))
                        .collect(),
                ),
            ),
            "metadata",
        ),
        ("id too long", with("id", json!("i".repeat(129))), "id"),
        (
            "unknown field",
            with("input_token", json!(5)),
            "input_token",
        ),
        ("not an object", json!([1, 2]), ""),
    ];
    for (i, (what, bad, field)) in cases.iter().enumerate() {
        // Alone: 400 with a message naming the field.
        let (status, body) = app.post_events(&key, bad).await;
        if *what == "not an object" {
            assert_eq!(status, 400, "{what}: {body}");
            continue;
        }
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["rejected"], 1, "{what}");
        assert_eq!(
            body["results"][0]["error"]["field"], *field,
            "{what}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{what}: {body}"
        );

        // In a batch: the two good events around it are stored.
        let batch = json!({"events": [
            {"id": format!("good-a-{i}"), "provider": "openai", "model": "gpt-4o", "input_tokens": 1},
            bad,
            {"id": format!("good-b-{i}"), "provider": "openai", "model": "gpt-4o", "input_tokens": 1},
        ]});
        let (status, body) = app.post_events(&key, &batch).await;
        assert_eq!(status, 207, "{what}: {body}");
        assert_eq!(
            (body["accepted"].as_u64(), body["rejected"].as_u64()),
            (Some(2), Some(1)),
            "{what}"
        );
        assert_eq!(body["results"][1]["index"], 1);
        assert_eq!(body["results"][1]["status"], "rejected");
        assert_eq!(
            body["results"][1]["error"]["field"], *field,
            "{what}: {body}"
        );
        assert_eq!(body["results"][0]["status"], "accepted");
        assert_eq!(body["results"][2]["status"], "accepted");
    }
    let stored = all_events(app.store.as_ref(), &ws).await;
    assert_eq!(stored.len(), 2 * (cases.len() - 1));
}

#[tokio::test]
async fn bad_bodies_are_refused_whole() {
    let (app, key, ws) = app_and_key().await;
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed json",
            "application/json",
            b"{\"provider\": ".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "wrong content type",
            "text/plain",
            serde_json::to_vec(&ok_event()).unwrap(),
            415,
            "text/plain",
        ),
        (
            "empty batch",
            "application/json",
            br#"{"events": []}"#.to_vec(),
            400,
            "empty",
        ),
        (
            "events not a list",
            "application/json",
            br#"{"events": 3}"#.to_vec(),
            400,
            "events",
        ),
        (
            "a string",
            "application/json",
            br#""hello""#.to_vec(),
            400,
            "one event object",
        ),
        (
            "too many events",
            "application/json",
            serde_json::to_vec(&json!({"events": vec![ok_event(); 1001]})).unwrap(),
            400,
            "at most 1000",
        ),
        (
            "body too large",
            "application/json",
            vec![b' '; 5 * 1024 * 1024 + 1],
            413,
            "larger than",
        ),
    ];
    for (what, content_type, body, status, words) in cases {
        let (got, resp) = app.post_raw(&key, content_type, body).await;
        assert_eq!(got, status, "{what}: {resp}");
        assert!(
            resp["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(words),
            "{what}: {resp}"
        );
    }
    let resp = app
        .http
        .post(app.url("/v1/events"))
        .bearer_auth(&key)
        .body(serde_json::to_vec(&ok_event()).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415, "a missing content type is refused");
    assert!(all_events(app.store.as_ref(), &ws).await.is_empty());
}

#[tokio::test]
async fn a_batch_of_1000_is_accepted() {
    let (app, key, ws) = app_and_key().await;
    let now = now_ms();
    let events: Vec<_> = (0..1000).map(|i| event(i, now - i as i64 * 1000)).collect();
    let (status, body) = app.post_events(&key, &json!({"events": events})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1000);
    assert_rollups_match_events(app.store.as_ref(), &ws).await;
}

#[tokio::test]
async fn retries_are_counted_once_and_rollups_match_the_events() {
    let (app, key, ws) = app_and_key().await;
    let now = now_ms();
    let batch =
        json!({"events": (0..50).map(|i| event(i, now - i as i64 * 60_000)).collect::<Vec<_>>()});
    let (status, first) = app.post_events(&key, &batch).await;
    assert_eq!((status, first["accepted"].as_u64()), (200, Some(50)));
    let (status, second) = app.post_events(&key, &batch).await;
    assert_eq!(
        (
            status,
            second["duplicates"].as_u64(),
            second["accepted"].as_u64()
        ),
        (200, Some(50), Some(0))
    );
    assert!(
        second["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "duplicate")
    );
    assert_eq!(all_events(app.store.as_ref(), &ws).await.len(), 50);
    assert_rollups_match_events(app.store.as_ref(), &ws).await;
}

#[tokio::test]
async fn timestamps_take_both_forms_and_default_to_now() {
    let (app, key, ws) = app_and_key().await;
    let now = now_ms();
    let rfc = chrono::DateTime::from_timestamp_millis(now - 3_600_000)
        .unwrap()
        .to_rfc3339();
    let (status, _) = app
        .post_events(&key, &json!({"events": [with("timestamp", json!(rfc)), with("timestamp", json!(now - 7_200_000)), ok_event()]}))
        .await;
    assert_eq!(status, 200);
    let mut stamps: Vec<i64> = all_events(app.store.as_ref(), &ws)
        .await
        .iter()
        .map(|e| e.ts_ms)
        .collect();
    stamps.sort();
    assert_eq!(stamps[0], now - 7_200_000);
    assert_eq!(stamps[1], now - 3_600_000);
    assert!((stamps[2] - now).abs() < 60_000);
}

#[tokio::test]
async fn secrets_in_metadata_are_redacted_and_never_echoed() {
    let (app, key, ws) = app_and_key().await;
    let secrets = [
        ("aws", "AKIAIOSFODNN7EXAMPLE"),
        ("openai", "sk-proj-Abcdefghijklmnopqrstuvwxyz0123456789"),
        ("pem", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg"),
        ("card", "4111 1111 1111 1111"),
        ("ours", "llmt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ];
    let metadata: serde_json::Map<String, Value> = secrets
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .chain([("plan".to_owned(), json!("gold"))])
        .collect();
    let (status, body) = app
        .post_events(&key, &with("metadata", Value::Object(metadata)))
        .await;
    assert_eq!(status, 200, "{body}");
    let text = body.to_string();
    let mut fields: Vec<&str> = body["results"][0]["redacted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "metadata.aws",
            "metadata.card",
            "metadata.openai",
            "metadata.ours",
            "metadata.pem"
        ]
    );
    let stored = all_events(app.store.as_ref(), &ws).await;
    let stored_text = serde_json::to_string(&stored).unwrap();
    for (_, secret) in secrets {
        assert!(
            !text.contains(secret) && !stored_text.contains(secret),
            "{secret} leaked"
        );
    }
    assert_eq!(stored[0].metadata.len(), 1, "the ordinary field is kept");
}

#[tokio::test]
async fn events_are_priced_from_the_table_or_kept_unpriced() {
    let (app, key, ws) = app_and_key().await;
    let read = app.key(&ws, Scope::Read, "scripts").await;
    let events = json!({"events": [
        // gpt-4o: 2.50 in, 1.25 cached, 10.00 out per million; a dated version resolves to it.
        {"provider": "openai", "model": "gpt-4o-2024-08-06", "input_tokens": 1_000_000, "cached_input_tokens": 400_000, "output_tokens": 100_000},
        {"provider": "acme", "model": "in-house-7b", "input_tokens": 5_000},
        {"provider": "acme", "model": "in-house-7b", "input_tokens": 5_000, "cost_usd": 0.5},
    ]});
    let (status, body) = app.post_events(&key, &events).await;
    assert_eq!(status, 200, "{body}");
    // The unpriced event is stored, and its result says at once that its cost is unknown.
    assert_eq!(body["unpriced"], 1, "{body}");
    let unpriced = &body["results"][1]["unpriced"];
    assert_eq!(unpriced["model"], "in-house-7b", "{body}");
    assert!(
        unpriced["message"]
            .as_str()
            .unwrap()
            .contains("`in-house-7b`"),
        "{body}"
    );
    assert!(body["results"][0].get("unpriced").is_none(), "{body}");
    assert!(body["results"][2].get("unpriced").is_none(), "{body}");
    let stored = all_events(app.store.as_ref(), &ws).await;
    let priced = stored
        .iter()
        .find(|e| e.model == "gpt-4o-2024-08-06")
        .unwrap();
    assert_eq!(priced.canonical_model(), "gpt-4o");
    let price = priced.price.as_ref().unwrap();
    assert_eq!(
        (price.provider.as_deref(), price.model.as_ref()),
        (Some("openai"), "gpt-4o")
    );
    assert!(price.version.is_some());
    let (_, summary) = app.summary(&read, "").await;
    let summary = &summary["metrics"];
    // 600k plain input * 2.50 + 400k cached * 1.25 + 100k output * 10 = 1.5 + 0.5 + 1.0 = 3.0, plus 0.5 sent.
    assert!(
        (summary["cost_usd"].as_f64().unwrap() - 3.5).abs() < 1e-9,
        "{summary}"
    );
    assert_eq!(summary["unpriced"], 1);
}
