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

/// A store at schema version 2 grouped `model` by the names as sent and had no `model_sent`
/// views; its pending deltas held five-part groups. Migration 3 gives it the new views from
/// what it held, folded rollups and pending deltas alike, without reading the events.
#[tokio::test]
async fn rollups_of_schema_2_gain_the_names_as_sent() {
    use llmtrack_shared::domain::rollup::{self, Groups, Select};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.sqlite3");
    let t = now_ms() - 3 * 3_600_000;
    let batch = |ids: std::ops::Range<u32>, hour: i64| -> Vec<serde_json::Value> {
        ids.map(|i| {
            let model = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"][i as usize % 3];
            json!({"id": format!("e{i}"), "timestamp": t + hour * 3_600_000 + i64::from(i),
                   "provider": "openai", "model": model, "input_tokens": 100 + i, "output_tokens": 10,
                   "feature": if i % 2 == 0 { "chat" } else { "search" }})
        })
        .collect()
    };
    let ws = {
        let store: DynStore = Arc::new(SqliteStore::open(&path).unwrap());
        let ws = super::new_workspace(&store, Plan::Pro).await;
        for (ids, hour) in [(0..9, 0), (9..15, 1)] {
            store
                .ingest(
                    &ws,
                    &validated(&batch(ids, hour), "production"),
                    &quota(1_000),
                )
                .await
                .unwrap();
        }
        ws
    };
    {
        // What schema 2 held: the first batch folded into rollups without the new views, the
        // second pending as five-part groups.
        let c = rusqlite::Connection::open(&path).unwrap();
        let deltas = pending_deltas(&c);
        assert_eq!(deltas.len(), 2, "both batches pending");
        let first = Groups::decode(&deltas[0].1, rollup::GROUPS_FORMAT).unwrap();
        for (k, r) in first.views(Select::Deferred) {
            if k.view.by == rollup::Dimension::ModelSent {
                continue;
            }
            c.execute(
                "INSERT INTO rollups (workspace_id, view, hour, value, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![ws.as_str(), k.view.encode(), k.hour, k.value, r.encode()],
            )
            .unwrap();
        }
        c.execute_batch(&format!(
            "DELETE FROM deltas WHERE seq = {}; PRAGMA user_version = 2;",
            deltas[0].0
        ))
        .unwrap();
        c.execute(
            "UPDATE deltas SET data = ?1 WHERE seq = ?2",
            rusqlite::params![as_format_1(&deltas[1].1), deltas[1].0],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        pragma(&path, "user_version"),
        llmtrack_shared::adapters::sqlite::SCHEMA_VERSION as i64
    );
    assert_rollups_match_events_between(&store, &ws, 0, i64::MAX).await;
}

/// The store's pending batch deltas (seq, data), oldest first.
fn pending_deltas(c: &rusqlite::Connection) -> Vec<(i64, Vec<u8>)> {
    c.prepare("SELECT seq, data FROM deltas ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A batch delta of this release as schema 2 stored it: five-part groups, the name as sent
/// where the model is (the names in these tests are the ones the table prices as sent), and
/// rollups without what providers reported (none of these events has a reported cost).
pub fn as_format_1(delta: &[u8]) -> Vec<u8> {
    use llmtrack_shared::domain::rollup::{GROUPS_FORMAT, Groups, Rollup};
    use llmtrack_shared::domain::sketch::LatencySketch;
    #[derive(serde::Serialize)]
    struct RollupV1 {
        requests: u64,
        errors: u64,
        input_tokens: u64,
        output_tokens: u64,
        cached_input_tokens: u64,
        cache_write_tokens: u64,
        reasoning_tokens: u64,
        cost_pico: i128,
        unpriced: u64,
        latency: LatencySketch,
    }
    let v1 = |r: Rollup| {
        assert_eq!(r.reported.events, 0, "no reported cost in these tests");
        RollupV1 {
            requests: r.requests,
            errors: r.errors,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cached_input_tokens: r.cached_input_tokens,
            cache_write_tokens: r.cache_write_tokens,
            reasoning_tokens: r.reasoning_tokens,
            cost_pico: r.cost_pico,
            unpriced: r.unpriced,
            latency: r.latency,
        }
    };
    #[derive(serde::Serialize)]
    struct GroupsV1 {
        fine: Vec<(i64, [String; 5], RollupV1)>,
        users: Vec<(i64, [String; 3], RollupV1)>,
    }
    let groups = Groups::decode(delta, GROUPS_FORMAT).unwrap();
    let old = GroupsV1 {
        fine: groups
            .fine
            .into_iter()
            .map(|(h, [p, canonical, sent, f, s, st], r)| {
                assert_eq!(canonical, sent, "a name the table prices as sent");
                (h, [p, sent, f, s, st], v1(r))
            })
            .collect(),
        users: groups
            .users
            .into_iter()
            .map(|(h, k, r)| (h, k, v1(r)))
            .collect(),
    };
    postcard::to_stdvec(&old).unwrap()
}

/// Pending deltas record no format. A store of the release before tags held them as format 3
/// (no tags, whole sketches), one of the release with tags as format 4 (whole sketches): opened
/// by this release, both are folded by the migration to format 5, nothing lost or counted twice.
#[tokio::test]
async fn pending_deltas_of_the_two_layouts_before_are_folded_on_upgrade() {
    use llmtrack_shared::adapters::sqlite::SCHEMA_VERSION;
    use llmtrack_shared::domain::rollup::{GROUPS_FORMAT, Groups};

    let t = now_ms() - 3 * 3_600_000;
    // (schema version of that release, the groups format it wrote)
    for (version, format) in [(SCHEMA_VERSION - 3, 3u8), (SCHEMA_VERSION - 1, 4)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite3");
        let ws = {
            let store: DynStore = Arc::new(SqliteStore::open(&path).unwrap());
            let ws = super::new_workspace(&store, Plan::Pro).await;
            for hour in 0..3i64 {
                let raw: Vec<_> = (0..7i64)
                    .map(|i| {
                        let model = ["gpt-4o", "gpt-4o-mini"][i as usize % 2];
                        let feature = ["chat", "search", "summarize"][i as usize % 3];
                        json!({"timestamp": t + hour * 3_600_000 + i, "provider": "openai",
                               "model": model, "feature": feature,
                               "user_id": format!("u{}", i % 4), "input_tokens": 100 + i,
                               "output_tokens": 10, "latency_ms": 120.5 * (i + 1) as f64})
                    })
                    .collect();
                let mut events = validated(&raw, "production");
                if format == 4 {
                    for (i, e) in events.iter_mut().enumerate() {
                        e.tags = vec![(1, ["growth", "core"][i % 2].to_owned())];
                    }
                }
                store.ingest(&ws, &events, &quota(1_000)).await.unwrap();
            }
            ws
        };
        {
            // What that release held: the same deltas in its layout.
            let c = rusqlite::Connection::open(&path).unwrap();
            let deltas = pending_deltas(&c);
            assert_eq!(deltas.len(), 3, "every batch pending");
            for (seq, data) in deltas {
                let g = Groups::decode(&data, GROUPS_FORMAT).unwrap();
                let old = if format == 3 {
                    assert!(g.tags.is_empty());
                    postcard::to_stdvec(&(&g.fine, &g.users)).unwrap()
                } else {
                    assert!(!g.tags.is_empty());
                    postcard::to_stdvec(&(&g.fine, &g.users, &g.tags)).unwrap()
                };
                assert!(old.len() > data.len(), "format 5 is the smaller");
                c.execute(
                    "UPDATE deltas SET data = ?1 WHERE seq = ?2",
                    rusqlite::params![old, seq],
                )
                .unwrap();
            }
            c.pragma_update(None, "user_version", version as i64)
                .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(pragma(&path, "user_version"), SCHEMA_VERSION as i64);
        let pending: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM deltas", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pending, 0, "format {format}: folded by the migration");
        assert_rollups_match_events_between(&store, &ws, 0, i64::MAX).await;
    }
}
