//! `POST /v1/integrations/litellm`: LiteLLM's generic API logger payloads (shaped as litellm
//! 1.110 sends them) become events; array, ndjson and single-object bodies; a resend is a
//! duplicate; a bad payload is rejected alone.

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::event::Status;
use llmtrack_shared::domain::plan::Plan;
use serde_json::{Value, json};

use crate::support::*;

/// A `StandardLoggingPayload` as the logger sends it (fields we do not read trimmed to a few;
/// `messages` and `response` as LiteLLM writes them with message logging off).
fn payload(id: &str, start_s: f64, provider: &str, model: &str, usage: Value) -> Value {
    json!({
        "id": id,
        "call_type": "acompletion",
        "status": "success",
        "custom_llm_provider": provider,
        "model": model,
        "model_group": "",
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "total_tokens": usage["total_tokens"],
        "startTime": start_s,
        "endTime": start_s + 1.25,
        "completionStartTime": start_s + 0.4,
        "response_cost": 0.000225,
        "end_user": null,
        "messages": [{"role": "user", "content": "redacted-by-litellm"}],
        "response": {"id": id, "object": "chat.completion", "choices": []},
        "error_str": null,
        "error_information": {"error_code": "", "error_class": "", "llm_provider": "", "traceback": "", "error_message": ""},
        "request_tags": [],
        "metadata": {
            "usage_object": usage,
            "requester_metadata": null,
            "spend_logs_metadata": null,
            "user_api_key_end_user_id": null,
            "user_api_key_hash": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
        }
    })
}

async fn post(app: &TestApp, key: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url("/v1/integrations/litellm"))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    checked("POST", "/v1/integrations/litellm", resp).await
}

#[tokio::test]
async fn logger_payloads_become_events_in_every_body_form() {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Pro).await;
    let key = app.key(&ws, Scope::Ingest, "litellm-proxy").await;
    let t = (now_ms() - 3_600_000) as f64 / 1000.0;
    let gpt = payload(
        "chatcmpl-1",
        t,
        "openai",
        "gpt-4o",
        json!({
            "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920}, "completion_tokens_details": {"reasoning_tokens": 0}
        }),
    );
    let mut claude = payload(
        "chatcmpl-2",
        t + 1.0,
        "anthropic",
        "claude-sonnet-4-6",
        json!({
            "prompt_tokens": 4050, "completion_tokens": 120, "total_tokens": 4170,
            "cache_read_input_tokens": 3000, "cache_creation_input_tokens": 1000,
            "prompt_tokens_details": {"cached_tokens": 3000}
        }),
    );
    claude["metadata"]["requester_metadata"] = json!({"feature": "support-bot"});
    claude["end_user"] = json!("u-42");
    let mut failed = payload(
        "chatcmpl-3",
        t + 2.0,
        "openai",
        "gpt-4o",
        json!({
            "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0
        }),
    );
    failed["status"] = json!("failure");
    failed["error_information"]["error_class"] = json!("RateLimitError");
    let mut tagged = payload(
        "chatcmpl-4",
        t + 3.0,
        "openai",
        "o3",
        json!({
            "prompt_tokens": 1200, "completion_tokens": 900, "total_tokens": 2100,
            "completion_tokens_details": {"reasoning_tokens": 700}
        }),
    );
    tagged["request_tags"] = json!(["team:search", "feature:rerank"]);

    // The logger's default: a JSON array.
    let (status, body) = post(
        &app,
        &key,
        "application/json",
        serde_json::to_vec(&json!([gpt, claude])).unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(2)),
        "{body}"
    );
    // ndjson, with the first payload again (a resend): a duplicate.
    let ndjson = [&gpt, &failed, &tagged].map(|p| p.to_string()).join("\n");
    let (status, body) = post(&app, &key, "application/x-ndjson", ndjson.into_bytes()).await;
    assert_eq!(
        (
            status,
            body["accepted"].as_u64(),
            body["duplicates"].as_u64()
        ),
        (200, Some(2), Some(1)),
        "{body}"
    );

    let events = all_events(app.store.as_ref(), &ws).await;
    assert_eq!(events.len(), 4);
    let by = |id: &str| events.iter().find(|e| e.id == id).unwrap();
    let e = by("chatcmpl-1");
    assert_eq!(
        (e.provider.as_str(), e.canonical_model(), e.source.as_str()),
        ("openai", "gpt-4o", "litellm-proxy")
    );
    assert_eq!(
        (e.tokens.input, e.tokens.cached_input, e.tokens.output),
        (2006, 1920, 300)
    );
    assert_eq!(e.ts_ms, (t * 1000.0).round() as i64);
    assert_eq!(e.latency_ms, Some(1250.0));
    let expected = (86.0 * 2.5 + 1920.0 * 1.25 + 300.0 * 10.0) / 1e6;
    assert_eq!(
        e.cost_pico,
        Some((expected * 1e12f64).round() as i64),
        "priced from the table, not LiteLLM's response_cost"
    );
    let e = by("chatcmpl-2");
    assert_eq!(
        (e.tokens.input, e.tokens.cached_input, e.tokens.cache_write),
        (4050, 3000, 1000)
    );
    assert_eq!(
        (e.feature.as_deref(), e.user_id.as_deref()),
        (Some("support-bot"), Some("u-42"))
    );
    let e = by("chatcmpl-3");
    assert_eq!(
        (e.status, e.error_type.as_deref()),
        (Status::Error, Some("RateLimitError"))
    );
    let e = by("chatcmpl-4");
    assert_eq!(
        (e.tokens.reasoning, e.feature.as_deref()),
        (700, Some("rerank"))
    );
    // Nothing of the prompt or the response is kept.
    let stored = serde_json::to_string(&events).unwrap();
    assert!(!stored.contains("redacted-by-litellm") && !stored.contains("chat.completion\""));
    assert_rollups_match_events(app.store.as_ref(), &ws).await;

    // One object alone, and a bad payload beside a good one.
    let single = payload(
        "chatcmpl-5",
        t + 4.0,
        "openai",
        "gpt-4o-mini",
        json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}),
    );
    let (status, _) = post(
        &app,
        &key,
        "application/json",
        serde_json::to_vec(&single).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let mut nameless = single.clone();
    nameless["id"] = json!("chatcmpl-6");
    nameless["custom_llm_provider"] = json!(null);
    let mut good = single.clone();
    good["id"] = json!("chatcmpl-7");
    let (status, body) = post(
        &app,
        &key,
        "application/json",
        serde_json::to_vec(&json!([nameless, good])).unwrap(),
    )
    .await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(body["results"][0]["error"]["field"], "custom_llm_provider");
    assert_eq!(all_events(app.store.as_ref(), &ws).await.len(), 6);

    // A body that is not payloads at all.
    let (status, body) = post(&app, &key, "application/json", b"[{\"id\": ".to_vec()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let (status, _) = post(&app, &key, "text/plain", b"[]".to_vec()).await;
    assert_eq!(status, 415);
}
