//! Crash recovery on DynamoDB: a writer that dies mid-batch, a client that retries, and recovery
//! converge to rollups equal to a recomputation from the raw events. (On SQLite a batch is one
//! transaction; the API tests kill a real `llmtrack serve` process mid-load to show it.)

use std::sync::Arc;
use std::time::Duration;

use llmtrack_shared::adapters::dynamodb::{CrashPoint, DynamoStore};
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::time::month_of;
use llmtrack_shared::ports::{DynStore, Stored, Workspace};

use super::support::*;
use super::{quota, validated};
use llmtrack_shared::ports::prelude::*;

/// A DynamoDB store whose crashed batches are recovered at once, with a Pro workspace.
pub async fn setup() -> (DynamoStore, WorkspaceId) {
    let store = dynamo_store()
        .await
        .with_recovery_lease(Duration::ZERO)
        .with_immediate_compaction();
    let ws = Workspace {
        id: WorkspaceId::generate(now_ms()),
        name: "Acme".into(),
        plan: Plan::Pro,
        timezone: "UTC".into(),
        created_ms: now_ms(),
        deleting: None,
        prices: Default::default(),
        budgets: Default::default(),
        digest: Default::default(),
        tags: Default::default(),
        spans: Default::default(),
    };
    store.create_workspace(&ws).await.unwrap();
    (store, ws.id)
}

fn crashing(store: &DynamoStore, at: CrashPoint) -> DynamoStore {
    DynamoStore::new(store.client().clone(), store.table())
        .with_crash_at(Some(at))
        .with_recovery_lease(Duration::ZERO)
        .with_immediate_compaction()
}

async fn crash_then_retry(at: CrashPoint) {
    let (store, ws) = setup().await;
    let now = now_ms();
    let batch = validated(
        &(0..20)
            .map(|i| event(i, now - (i as i64) * 900_000))
            .collect::<Vec<_>>(),
        "production",
    );

    // A batch sent twice: the second is all duplicates.
    let first = &batch[..10];
    store.ingest(&ws, first, &quota(1_000)).await.unwrap();
    store.ingest(&ws, first, &quota(1_000)).await.unwrap();

    // Then a batch whose writer dies midway; the client saw an error and sends it again.
    assert!(
        crashing(&store, at)
            .ingest(&ws, &batch, &quota(1_000))
            .await
            .is_err()
    );
    // The client retries at once, while the dead writer's lease still runs: the retry's own
    // recovery leaves the batch alone.
    let retrying = DynamoStore::new(store.client().clone(), store.table())
        .with_recovery_lease(Duration::from_secs(3600));
    let retry = match retrying.ingest(&ws, &batch, &quota(1_000)).await.unwrap() {
        llmtrack_shared::ports::IngestOutcome::Stored(s) => s,
        other => panic!("{other:?}"),
    };
    // Everything was written by the dead writer or earlier: the retry stores nothing new.
    assert!(retry.iter().all(|s| *s == Stored::Duplicate));

    // Recovery finishes the dead writer's batch exactly once, however often it runs.
    assert_eq!(store.recover(&ws).await.unwrap(), 1);
    assert_eq!(store.recover(&ws).await.unwrap(), 0);
    assert_eq!(all_events(&store, &ws).await.len(), 20);
    assert_rollups_match_events(&store, &ws).await;
    assert_eq!(store.usage(&ws, &month_of(now)).await.unwrap(), 20);
}

#[tokio::test]
async fn crash_after_events_then_retry_converges() {
    crash_then_retry(CrashPoint::AfterEvents).await;
}

#[tokio::test]
async fn crash_after_first_rollup_then_retry_converges() {
    crash_then_retry(CrashPoint::AfterFirstRollup).await;
}

#[tokio::test]
async fn a_live_batch_is_not_recovered_before_its_lease_ends() {
    let (store, ws) = setup().await;
    let patient = DynamoStore::new(store.client().clone(), store.table())
        .with_recovery_lease(Duration::from_secs(3600));
    let now = now_ms();
    let batch = validated(
        &(0..5).map(|i| event(i, now)).collect::<Vec<_>>(),
        "production",
    );
    assert!(
        crashing(&store, CrashPoint::AfterEvents)
            .ingest(&ws, &batch, &quota(100))
            .await
            .is_err()
    );
    // Within the lease its writer may still be working: nothing is touched.
    assert_eq!(patient.recover(&ws).await.unwrap(), 0);
    assert!(stored_rollups(&store, &ws, []).await.is_empty());
    assert_eq!(store.recover(&ws).await.unwrap(), 1);
    let shared: DynStore = Arc::new(store);
    assert_rollups_match_events(shared.as_ref(), &ws).await;
}

/// Recovery follows the store's clock (not the wall clock): a dead writer's batch is left alone
/// while its lease runs, and finished once the clock has passed it.
#[tokio::test]
async fn recovery_follows_the_stores_clock() {
    let (store, ws) = setup().await;
    let now = now_ms();
    let clock = TestClock::at(now);
    // The default lease (two minutes) and recovery interval, judged by the test's clock.
    let timed = DynamoStore::new(store.client().clone(), store.table()).with_clock(clock.clone());
    let batch = validated(
        &(0..5).map(|i| event(i, now)).collect::<Vec<_>>(),
        "production",
    );
    assert!(
        crashing(&store, CrashPoint::AfterEvents)
            .ingest(&ws, &batch, &quota(100))
            .await
            .is_err()
    );
    assert_eq!(timed.recover(&ws).await.unwrap(), 0, "within the lease");
    clock.set(now + 10 * 60_000);
    assert_eq!(
        timed.recover(&ws).await.unwrap(),
        1,
        "once the lease is over"
    );
    assert_rollups_match_events(&timed, &ws).await;
}

/// Items of the table whose partition key starts with `prefix`.
async fn items_under(store: &DynamoStore, prefix: &str) -> usize {
    scan_table(store)
        .await
        .into_iter()
        .filter(|i| i["pk"].as_s().unwrap().starts_with(prefix))
        .count()
}

#[tokio::test]
async fn a_compaction_that_dies_is_resumed_and_folds_each_batch_once() {
    let (store, ws) = setup().await;
    // Batches written in one minute: the writer's own recovery (which also folds) runs once,
    // before the first, so the three deltas wait for the compactor below.
    let writer =
        DynamoStore::new(store.client().clone(), store.table()).with_immediate_compaction();
    let now = now_ms();
    for b in 0..3 {
        let batch = validated(
            &(b * 10..b * 10 + 10)
                .map(|i| event(i, now - (i as i64) * 600_000))
                .collect::<Vec<_>>(),
            "production",
        );
        writer.ingest(&ws, &batch, &quota(1_000)).await.unwrap();
    }
    let deltas = format!("W#{ws}#D");
    assert_eq!(
        items_under(&store, &deltas).await,
        3,
        "one delta item per batch"
    );
    // Before any compaction, readers see the wide views through the deltas.
    assert_rollups_match_events(&store, &ws).await;

    // A compactor dies after writing the rollup items, before deleting the deltas: readers must
    // not count those batches twice.
    assert!(
        crashing(&store, CrashPoint::AfterCompactionRollups)
            .compact_now(&ws)
            .await
            .is_err()
    );
    assert_eq!(items_under(&store, &deltas).await, 3);
    assert_rollups_match_events(&store, &ws).await;

    // The next compactor (the lease is over) resumes the same run and finishes it.
    assert_eq!(store.compact_now(&ws).await.unwrap(), 3);
    assert_rollups_match_events(&store, &ws).await;
    assert_eq!(
        store.compact_now(&ws).await.unwrap(),
        0,
        "folded batches are never folded again"
    );
    // Folded deltas are left to TTL (free) rather than deleted (charged by size).
    let ttl_left = scan_table(&store)
        .await
        .into_iter()
        .filter(|i| i["pk"].as_s().unwrap() == &deltas)
        .all(|i| i.contains_key("expires_at"));
    assert!(ttl_left);

    // Later batches go through deltas again and fold on top.
    let more = validated(
        &(30..40).map(|i| event(i, now - 60_000)).collect::<Vec<_>>(),
        "production",
    );
    store.ingest(&ws, &more, &quota(1_000)).await.unwrap();
    assert_rollups_match_events(&store, &ws).await;
    assert_eq!(store.compact_now(&ws).await.unwrap(), 1);
    assert_rollups_match_events(&store, &ws).await;
}
