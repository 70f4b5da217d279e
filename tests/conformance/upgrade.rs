//! A store written by the previous release opens under today's numbered migrations and keeps
//! everything it held. `tests/fixtures/stores/f675e12.sqlite3` was written by the release at
//! commit f675e12 (the last before numbered migrations) with
//! `infra/scripts/make-store-fixture target/debug/llmtrack tests/fixtures/stores/f675e12.sqlite3`
//! at that commit; its workspace id and raw ingest key are in the `.key` file beside it.

use std::sync::Arc;

use llmtrack_shared::adapters::sqlite::SqliteStore;
use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::apikey::RawKey;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::{DynStore, Stored};
use serde_json::json;

use super::support::*;
use super::{quota, stored, validated};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/stores/f675e12.sqlite3"
);

/// A copy of the previous release's store, and its workspace id and raw key.
fn previous_release_store() -> (tempfile::TempDir, std::path::PathBuf, WorkspaceId, RawKey) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llmtrack.sqlite3");
    std::fs::copy(FIXTURE, &path).unwrap();
    let key_file = std::fs::read_to_string(format!("{FIXTURE}.key")).unwrap();
    let mut lines = key_file.lines();
    let ws = WorkspaceId::parse(lines.next().unwrap()).unwrap();
    let key = RawKey::parse(lines.next().unwrap()).unwrap();
    (dir, path, ws, key)
}

fn pragma(path: &std::path::Path, name: &str) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_store_written_by_the_previous_release_opens_with_all_it_held() {
    let (_dir, path, ws, key) = previous_release_store();
    assert_eq!(
        pragma(&path, "application_id"),
        0,
        "written before numbered migrations"
    );

    let store: DynStore = Arc::new(SqliteStore::open(&path).unwrap());
    let workspace = store.workspace(&ws).await.unwrap().expect("its workspace");
    assert_eq!(
        (workspace.name.as_str(), workspace.plan),
        ("Acme", Plan::Team)
    );
    let api_key = store
        .key_by_hash(&key.hash())
        .await
        .unwrap()
        .expect("its key");
    assert_eq!(
        (&api_key.workspace_id, api_key.source.as_str()),
        (&ws, "production")
    );
    let members = store.members(&ws).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].role, Role::Owner);

    let events = all_events_between(store.as_ref(), &ws, 0, i64::MAX).await;
    assert_eq!(events.len(), 60);
    assert_rollups_match_events_between(store.as_ref(), &ws, 0, i64::MAX).await;

    // It takes new events, and its old ones keep their identity: a retry is a duplicate.
    let retry = json!({"id": "fixture-0", "timestamp": events.iter().find(|e| e.id == "fixture-0").unwrap().ts_ms,
        "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 100, "output_tokens": 20});
    let new =
        json!({"id": "after-upgrade", "provider": "openai", "model": "gpt-4o", "input_tokens": 7});
    let outcome = store
        .ingest(
            &ws,
            &validated(&[new, retry], "production"),
            &quota(100_000),
        )
        .await
        .unwrap();
    assert_eq!(stored(outcome), vec![Stored::Accepted, Stored::Duplicate]);
    drop(store);

    assert_eq!(pragma(&path, "application_id"), 0x4C4C_4D74);
    let version = pragma(&path, "user_version");
    assert_eq!(
        version,
        llmtrack_shared::adapters::sqlite::SCHEMA_VERSION as i64
    );
    // Opening again applies nothing twice.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(all_events_between(&store, &ws, 0, i64::MAX).await.len(), 61);
    drop(store);
    assert_eq!(pragma(&path, "user_version"), version);
}

#[tokio::test]
async fn a_store_from_a_newer_release_is_refused_not_misread() {
    let (_dir, path, _, _) = previous_release_store();
    drop(SqliteStore::open(&path).unwrap());
    let newer = pragma(&path, "user_version") + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    let Err(e) = SqliteStore::open(&path) else {
        panic!("a newer schema must not open")
    };
    assert!(format!("{e:#}").contains("newer LLMtrack"), "{e:#}");
}

#[tokio::test]
async fn a_file_that_is_not_a_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite3");
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "application_id", 42)
        .unwrap();
    let Err(e) = SqliteStore::open(&path) else {
        panic!("another program's file must not be written to")
    };
    assert!(format!("{e:#}").contains("not an LLMtrack store"), "{e:#}");
}
