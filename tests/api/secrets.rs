//! Secrets at rest: no raw API key, sign-in code or session token anywhere in the store's files.

use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::plan::Plan;
use serde_json::json;

use crate::support::*;

/// After keys are made and used (and one is even pasted into metadata), no raw key is anywhere in
/// the SQLite files: only hashes and display prefixes.
#[tokio::test]
async fn no_raw_api_key_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(
        llmtrack_shared::adapters::sqlite::SqliteStore::open(&dir.path().join("db.sqlite3"))
            .unwrap(),
    );
    let app = spawn_app_on(
        store,
        std::sync::Arc::new(llmtrack_shared::ports::SystemClock),
        None,
    )
    .await;
    let ws = app.workspace(Plan::Free).await;
    let ingest = app.key(&ws, Scope::Ingest, "production").await;
    let read = app.key(&ws, Scope::Read, "scripts").await;
    let body = json!({"provider": "openai", "model": "gpt-4o", "metadata": {"leak": ingest.clone(), "other": read.clone()}});
    assert_eq!(app.post_events(&ingest, &body).await.0, 200);
    assert_eq!(app.summary(&read, "").await.0, 200);

    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let haystack = String::from_utf8_lossy(&bytes);
    for raw in [&ingest, &read] {
        assert!(!haystack.contains(raw.as_str()), "a raw key is stored");
        assert!(
            !haystack.contains(&raw[..20]),
            "a long part of a raw key is stored"
        );
        assert!(haystack.contains(&raw[..11]), "the display prefix is kept");
    }
}
