//! API-key authentication through the API: every malformed, unknown, paused or wrong-scope key
//! is refused with a 401 or 403 that says why.

use llmtrack_shared::domain::apikey::{KeyState, RawKey, Scope};
use llmtrack_shared::domain::plan::Plan;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn ingest_refuses_every_bad_key() {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Free).await;
    let read = app.key(&ws, Scope::Read, "scripts").await;
    let body = json!({"provider": "openai", "model": "gpt-4o"});
    let cases = [
        (None, 401, "missing Authorization"),
        (Some("Basic abc".to_owned()), 401, "Bearer"),
        (Some("Bearer not-a-key".to_owned()), 401, "malformed"),
        (
            Some(format!("Bearer {}", RawKey::generate().expose())),
            401,
            "not recognised",
        ),
        (Some(format!("Bearer {read}")), 403, "scope `read`"),
    ];
    for (header, status, words) in cases {
        let mut req = app.http.post(app.url("/v1/events")).json(&body);
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{header:?}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains(words),
            "{header:?}: {body}"
        );
    }
}

#[tokio::test]
async fn deactivated_and_deleted_keys_are_refused() {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Free).await;
    let key = app.key(&ws, Scope::Ingest, "production").await;
    let body = json!({"provider": "openai", "model": "gpt-4o"});
    assert_eq!(app.post_events(&key, &body).await.0, 200);

    let record = app
        .store
        .key_by_hash(&RawKey::parse(&key).unwrap().hash())
        .await
        .unwrap()
        .unwrap();
    assert!(record.last_used_ms.is_some(), "last used time is recorded");
    app.store
        .set_key_state(&ws, &record.id, KeyState::Deactivated, 10)
        .await
        .unwrap();
    let (status, body) = app.post_events(&key, &body).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deactivated")
    );

    app.store
        .set_key_state(&ws, &record.id, KeyState::Active, 10)
        .await
        .unwrap();
    assert_eq!(
        app.post_events(&key, &json!({"provider": "openai", "model": "gpt-4o"}))
            .await
            .0,
        200
    );
    app.store.delete_key(&ws, &record.id).await.unwrap();
    assert_eq!(
        app.post_events(&key, &json!({"provider": "openai", "model": "gpt-4o"}))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn summary_needs_a_read_key_of_its_own_workspace() {
    let app = spawn_app().await;
    let a = app.workspace(Plan::Free).await;
    let b = app.workspace(Plan::Free).await;
    let ingest_a = app.key(&a, Scope::Ingest, "production").await;
    let read_b = app.key(&b, Scope::Read, "scripts").await;
    app.post_events(
        &ingest_a,
        &json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 5}),
    )
    .await;
    assert_eq!(app.summary(&ingest_a, "").await.0, 403);
    // B's read key sees only B: A's event is not there.
    let (status, body) = app.summary(&read_b, "").await;
    assert_eq!(status, 200);
    assert_eq!(body["metrics"]["requests"], 0);
    let resp = app
        .http
        .get(app.url("/v1/stats/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
