//! Deleting events (`Store::delete_events_in_hour`): usage and every view of the hour follow the
//! events, other workspaces are untouched, and a repeat changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use llmtrack_shared::adapters::dynamodb::CrashPoint;
use llmtrack_shared::domain::event::Event;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::rollup::{Dimension, Rollup, RollupKey, VIEWS, View};
use llmtrack_shared::domain::time::{HOUR_MS, hour_of, month_of};
use llmtrack_shared::ports::{DynStore, IngestOutcome, Quota, Stored};
use serde_json::json;

use super::support::*;
use super::{new_workspace, validated};
use llmtrack_shared::ports::prelude::*;

/// Deletion takes events off the month of their time, so each batch here holds one hour's
/// events and is counted in that hour's month (the same as the receive month but in a test run
/// at the turn of a month).
fn quota_of(hour: i64) -> Quota {
    Quota {
        month: month_of(hour * HOUR_MS),
        limit: 10_000,
    }
}

fn at(hour: i64, minute: i64) -> i64 {
    hour * HOUR_MS + minute * 60_000 + 123
}

/// An event sent with an id and no timestamp, moved into `ts` as if it had arrived then.
fn without_timestamp(id: &str, source: &str, ts: i64) -> Event {
    let body = json!({"id": id, "provider": "openai", "model": "gpt-4o", "feature": "chat",
        "input_tokens": 100, "output_tokens": 10, "latency_ms": 321.0});
    let mut e = validated(&[body], source).remove(0);
    e.expires_ms += ts - e.ts_ms;
    e.ts_ms = ts;
    e
}

async fn ingest(store: &DynStore, ws: &WorkspaceId, hour: i64, events: &[Event]) {
    match store.ingest(ws, events, &quota_of(hour)).await.unwrap() {
        IngestOutcome::Stored(s) => assert!(s.iter().all(|s| *s == Stored::Accepted), "{s:?}"),
        other => panic!("expected the batch to be stored, got {other:?}"),
    }
}

async fn usage_by_month(
    store: &DynStore,
    ws: &WorkspaceId,
    months: &BTreeSet<String>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in months {
        out.insert(m.clone(), store.usage(ws, m).await.unwrap());
    }
    out
}

/// Every stored rollup of the workspace-wide views and of the views within each of `values`.
async fn every_rollup(store: &DynStore, ws: &WorkspaceId) -> BTreeMap<RollupKey, Rollup> {
    let mut also = Vec::new();
    for (within, values) in [
        (Dimension::Feature, vec!["chat", "search", "summarize"]),
        (Dimension::Source, vec!["production", "staging"]),
    ] {
        for (_, by) in VIEWS.iter().filter(|(w, _)| *w == within) {
            for v in &values {
                also.push(View::within(*by, within, *v));
            }
        }
    }
    stored_rollups(store.as_ref(), ws, also).await
}

fn assert_same_rollups(a: &BTreeMap<RollupKey, Rollup>, b: &BTreeMap<RollupKey, Rollup>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, r) in a {
        assert!(b[k].same_as(r), "rollup {k:?} changed");
    }
}

fn keys(events: &[Event]) -> BTreeSet<(i64, String)> {
    events.iter().map(|e| (e.ts_ms, e.id.clone())).collect()
}

pub async fn deleting_events_takes_them_off_usage_and_rollups(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let other = new_workspace(&store, Plan::Pro).await;
    let h0 = hour_of(now_ms()) - 30;
    let (h1, h2) = (h0 + 1, h0 + 2);

    let mut all = Vec::new();
    let batches: Vec<(i64, Vec<Event>)> = vec![
        (
            h0,
            validated(
                &(0..8)
                    .map(|i| event(i, at(h0, i as i64 * 7)))
                    .collect::<Vec<_>>(),
                "production",
            ),
        ),
        (
            h0,
            validated(
                &(8..13)
                    .map(|i| event(i, at(h0, (i as i64 - 8) * 9 + 3)))
                    .collect::<Vec<_>>(),
                "staging",
            ),
        ),
        (h1, {
            let mut b = validated(
                &(13..17)
                    .map(|i| event(i, at(h1, i as i64 * 2)))
                    .collect::<Vec<_>>(),
                "production",
            );
            b.push(without_timestamp("no-ts-1", "production", at(h1, 40)));
            b
        }),
        (h1, {
            let mut b = validated(
                &(17..20)
                    .map(|i| event(i, at(h1, i as i64)))
                    .collect::<Vec<_>>(),
                "staging",
            );
            b.push(without_timestamp("no-ts-2", "staging", at(h1, 41)));
            b
        }),
        (h2, {
            let mut b = validated(
                &(20..24)
                    .map(|i| event(i, at(h2, i as i64)))
                    .collect::<Vec<_>>(),
                "staging",
            );
            b.push(without_timestamp("no-ts-3", "staging", at(h2, 50)));
            // No id at all: nothing makes it idempotent.
            b.extend(validated(
                &[
                    json!({"provider": "openai", "model": "gpt-4o", "timestamp": at(h2, 51),
                    "input_tokens": 7, "output_tokens": 3}),
                ],
                "staging",
            ));
            b
        }),
    ];
    for (hour, batch) in &batches {
        ingest(&store, &ws, *hour, batch).await;
        all.extend(batch.iter().cloned());
    }
    // Another workspace with events in the same hours, under the same ids.
    let theirs = validated(
        &[
            event(0, at(h0, 14)),
            event(1, at(h0, 21)),
            event(2, at(h1, 5)),
        ],
        "production",
    );
    ingest(&store, &other, h0, &theirs[..2]).await;
    ingest(&store, &other, h1, &theirs[2..]).await;
    ingest(
        &store,
        &other,
        h1,
        &[without_timestamp("no-ts-1", "production", at(h1, 40))],
    )
    .await;

    let months: BTreeSet<String> = [h0, h1, h2, hour_of(now_ms())]
        .iter()
        .map(|h| month_of(h * HOUR_MS))
        .collect();
    let usage_before = usage_by_month(&store, &ws, &months).await;
    let other_events = all_events(store.as_ref(), &other).await;
    let other_rollups = every_rollup(&store, &other).await;
    let other_usage = usage_by_month(&store, &other, &months).await;
    assert_eq!(other_events.len(), 4);
    assert_eq!(keys(&all_events(store.as_ref(), &ws).await), keys(&all));
    assert_rollups_match_events(store.as_ref(), &ws).await;

    // Part of one hour, one source only: [10, 35) minutes of h0, production.
    let (lo, hi) = (at(h0, 10), at(h0, 35));
    let first: Vec<&Event> = all
        .iter()
        .filter(|e| e.source == "production" && (lo..hi).contains(&e.ts_ms))
        .collect();
    assert_eq!(first.len(), 3, "minutes 14, 21 and 28; 35 is past the end");
    assert_eq!(
        store
            .delete_events_in_hour(&ws, h0, lo, hi, Some("production"))
            .await
            .unwrap(),
        3
    );
    // A whole hour, every source, asked with a range wider than the hour: only h1 goes.
    let second: Vec<&Event> = all.iter().filter(|e| hour_of(e.ts_ms) == h1).collect();
    assert_eq!(second.len(), 9);
    assert_eq!(
        store
            .delete_events_in_hour(&ws, h1, (h1 - 5) * HOUR_MS, (h1 + 5) * HOUR_MS, None)
            .await
            .unwrap(),
        9
    );

    let gone: BTreeSet<(i64, String)> = first
        .iter()
        .chain(&second)
        .map(|e| (e.ts_ms, e.id.clone()))
        .collect();
    let left: BTreeSet<(i64, String)> = keys(&all).difference(&gone).cloned().collect();
    assert_eq!(keys(&all_events(store.as_ref(), &ws).await), left);
    assert_rollups_match_events(store.as_ref(), &ws).await;
    assert!(
        store
            .rollups(&ws, &View::of(Dimension::Total), h1, h1 + 1)
            .await
            .unwrap()
            .is_empty()
    );
    for within in ["production", "staging"] {
        let view = View::within(Dimension::Model, Dimension::Source, within);
        assert!(
            store
                .rollups(&ws, &view, h1, h1 + 1)
                .await
                .unwrap()
                .is_empty(),
            "{within}"
        );
    }
    let mut usage_after = usage_before.clone();
    for e in first.iter().chain(&second) {
        *usage_after.get_mut(&month_of(e.ts_ms)).unwrap() -= 1;
    }
    assert_eq!(usage_by_month(&store, &ws, &months).await, usage_after);

    // A repeat deletes nothing and changes nothing.
    let rollups_after = every_rollup(&store, &ws).await;
    assert_eq!(
        store
            .delete_events_in_hour(&ws, h0, lo, hi, Some("production"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .delete_events_in_hour(&ws, h1, h1 * HOUR_MS, (h1 + 1) * HOUR_MS, None)
            .await
            .unwrap(),
        0
    );
    assert_eq!(keys(&all_events(store.as_ref(), &ws).await), left);
    assert_same_rollups(&rollups_after, &every_rollup(&store, &ws).await);
    assert_eq!(usage_by_month(&store, &ws, &months).await, usage_after);

    // Nothing of the other workspace moved.
    assert_eq!(all_events(store.as_ref(), &other).await, other_events);
    assert_same_rollups(&other_rollups, &every_rollup(&store, &other).await);
    assert_eq!(usage_by_month(&store, &other, &months).await, other_usage);
    assert_rollups_match_events(store.as_ref(), &other).await;

    // An id sent without a timestamp whose event was deleted is new again, and counted once.
    let now_month = month_of(now_ms());
    let used = store.usage(&ws, &now_month).await.unwrap();
    let again = validated(
        &[
            json!({"id": "no-ts-1", "provider": "openai", "model": "gpt-4o",
            "input_tokens": 100, "output_tokens": 10}),
        ],
        "production",
    );
    for expected in [Stored::Accepted, Stored::Duplicate] {
        let quota = Quota {
            month: now_month.clone(),
            limit: 10_000,
        };
        match store.ingest(&ws, &again, &quota).await.unwrap() {
            IngestOutcome::Stored(s) => assert_eq!(s, vec![expected]),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(store.usage(&ws, &now_month).await.unwrap(), used + 1);
    let events = all_events(store.as_ref(), &ws).await;
    assert_eq!(events.len(), left.len() + 1);
    assert_eq!(events.iter().filter(|e| e.id == "no-ts-1").count(), 1);
    assert_rollups_match_events(store.as_ref(), &ws).await;
    // The other workspace's guard of the same id was never touched.
    assert_eq!(all_events(store.as_ref(), &other).await, other_events);
}

/// DynamoDB: hours whose deferred views are partly folded into rollup items and partly still in
/// deltas, and a deletion that dies holding the compaction lock, finished by running it again.
#[tokio::test]
async fn a_deletion_that_dies_is_finished_by_running_it_again() {
    let (store, ws) = super::crash::setup().await;
    let h0 = hour_of(now_ms()) - 5;
    let month = month_of(h0 * HOUR_MS);
    let quota = quota_of(h0);
    let folded = validated(
        &(0..8)
            .map(|i| event(i, at(h0, i as i64 * 5)))
            .collect::<Vec<_>>(),
        "production",
    );
    store.ingest(&ws, &folded, &quota).await.unwrap();
    assert_eq!(store.compact_now(&ws).await.unwrap(), 1);
    let mut pending = validated(
        &(8..12)
            .map(|i| event(i, at(h0, i as i64 * 5)))
            .collect::<Vec<_>>(),
        "staging",
    );
    pending.extend(validated(
        &(12..14)
            .map(|i| event(i, at(h0, i as i64 * 4)))
            .collect::<Vec<_>>(),
        "production",
    ));
    pending.push(without_timestamp("no-ts", "production", at(h0, 59)));
    store.ingest(&ws, &pending, &quota).await.unwrap();
    assert_eq!(store.usage(&ws, &month).await.unwrap(), 15);

    let crashing = llmtrack_shared::adapters::dynamodb::DynamoStore::new(
        store.client().clone(),
        store.table(),
    )
    .with_crash_at(Some(CrashPoint::BeforeDeletionRollups))
    .with_recovery_lease(Duration::ZERO)
    .with_immediate_compaction();
    let (from, to) = (h0 * HOUR_MS, (h0 + 1) * HOUR_MS);
    assert!(
        crashing
            .delete_events_in_hour(&ws, h0, from, to, Some("production"))
            .await
            .is_err()
    );
    // The events and their quota went together, before the crash.
    let left = all_events(&store, &ws).await;
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|e| e.source == "staging"));
    assert_eq!(store.usage(&ws, &month).await.unwrap(), 4);

    // Run again: nothing more to delete, and the hour's rollups are rewritten.
    assert_eq!(
        store
            .delete_events_in_hour(&ws, h0, from, to, Some("production"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.usage(&ws, &month).await.unwrap(), 4);
    assert_rollups_match_events(&store, &ws).await;
    let lock = scan_table(&store).await.into_iter().any(|i| {
        i["pk"].as_s().unwrap() == &format!("W#{ws}#B") && i["sk"].as_s().unwrap() == "cmp"
    });
    assert!(!lock, "the compaction lock was released");

    // What was left in the deltas folds without bringing the deleted events back.
    store.compact_now(&ws).await.unwrap();
    assert_rollups_match_events(&store, &ws).await;
    let more = validated(&[event(30, at(h0, 1))], "production");
    store.ingest(&ws, &more, &quota).await.unwrap();
    store.compact_now(&ws).await.unwrap();
    assert_rollups_match_events(&store, &ws).await;
    assert_eq!(store.usage(&ws, &month).await.unwrap(), 5);
}
