//! The plans' monthly event quotas through the API: a clear 429 once used up, duplicates still
//! answered as duplicates.

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::time::month_of;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn the_free_plan_stops_at_its_monthly_limit_with_a_clear_429() {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Free).await;
    let key = app.key(&ws, Scope::Ingest, "production").await;
    let now = now_ms();
    for b in 0..10 {
        let events: Vec<_> = (b * 1000..(b + 1) * 1000)
            .map(|i| event(i, now - (i as i64 % 3600) * 1000))
            .collect();
        let (status, body) = app.post_events(&key, &json!({"events": events})).await;
        assert_eq!(status, 200, "batch {b}: {}", body["error"]);
    }
    assert_eq!(app.store.usage(&ws, &month_of(now)).await.unwrap(), 10_000);
    let resp = app
        .http
        .post(app.url("/v1/events"))
        .bearer_auth(&key)
        .json(&json!({"provider": "openai", "model": "gpt-4o"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let retry_after: i64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 31 * 86_400);
    let body: serde_json::Value = resp.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("10000 events per month") && message.contains("resets at"),
        "{message}"
    );
    assert_eq!(all_events(app.store.as_ref(), &ws).await.len(), 10_000);
    assert_eq!(body["results"][0]["status"], "rejected");
    assert_eq!(body["results"][0]["error"]["code"], "quota_exceeded");

    // A client that lost the acknowledgement of its last batch resends it: duplicates, not 429.
    let last: Vec<_> = (9000..10_000)
        .map(|i| event(i, now - (i as i64 % 3600) * 1000))
        .collect();
    let (status, body) = app.post_events(&key, &json!({"events": last})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["duplicates"].as_u64()),
        (Some(0), Some(1000))
    );
    // Mixed with a new event: the known one is a duplicate, the new one refused, 429.
    let (status, body) = app
        .post_events(
            &key,
            &json!({"events": [event(9999, now - (9999 % 3600) * 1000), event(10_001, now)]}),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["results"][0]["status"], "duplicate");
    assert_eq!(body["results"][1]["status"], "rejected");
    assert_eq!(body["error"]["code"], "quota_exceeded");
    assert_eq!(all_events(app.store.as_ref(), &ws).await.len(), 10_000);

    // A plan change lifts the limit at once.
    app.store.set_plan(&ws, Plan::Pro).await.unwrap();
    assert_eq!(
        app.post_events(&key, &json!({"provider": "openai", "model": "gpt-4o"}))
            .await
            .0,
        200
    );
}
