//! The storage conformance suite: one contract, run against SQLite and against DynamoDB (moto).
//! Every `suite!` test runs twice: `sqlite::name` and `dynamodb::name`.

#[path = "../support/mod.rs"]
mod support;

use llmtrack_shared::domain::apikey::{ApiKey, KeyState, RawKey, Scope};
use llmtrack_shared::domain::event::{self, Context, Event};
use llmtrack_shared::domain::ids::{KeyId, WorkspaceId};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::domain::rollup::{Dimension, View};
use llmtrack_shared::domain::time::{hour_of, month_of};
use llmtrack_shared::ports::{
    DynStore, IngestOutcome, Job, JobState, Quota, StoreError, Stored, Workspace,
};
use serde_json::json;
use support::*;

mod accounts;
mod alerts;
mod archive;
mod billing;
mod budgets;
mod connections;
mod crash;
mod deletion;
mod digest;
mod prices;
mod purge;
mod tags;

use accounts::{
    active_keys_stay_within_the_limit, audit_pages_newest_first,
    members_keep_an_owner_and_their_limit, users_codes_and_sessions,
};
use alerts::{alert_rules_keep_their_limit_version_and_history, notices_are_claimed_once};
use billing::{
    billing_due_lists_records_due_oldest_first, billing_saves_once_per_version_and_event,
    retention_keeps_or_deletes_by_the_plan_window,
};
use budgets::{
    budgets_change_only_from_the_version_read, budgets_change_through_the_use_case_with_audit,
    budgets_spend_is_the_cost_of_their_scope, one_values_rollups_are_exactly_its_rows,
};
use connections::connections_and_billed_days_round_trip;
use deletion::deleting_events_takes_them_off_usage_and_rollups;
use digest::digest_subscribers_change_only_from_the_version_read;
use prices::{
    price_rules_change_only_from_the_version_read,
    repricing_rewrites_costs_and_every_view_of_the_hour,
};
use tags::tag_values_are_admitted_once_and_fold_into_their_views;
mod dynamodb_items;
mod stream;
mod upgrade;
mod vault;

/// Runs each listed test against both adapters.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = super::support::sqlite_store();
                    super::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $name() {
                    let store = super::support::dynamo_store().await;
                    super::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

suite!(
    workspaces_round_trip,
    keys_are_found_by_hash_only_and_scoped_to_their_workspace,
    each_event_is_stored_once_and_rollups_match,
    ids_without_timestamps_are_idempotent,
    an_id_is_never_taken_for_another_id_and_a_timestamp,
    quota_stops_a_batch_once_used_up,
    a_used_up_quota_still_recognises_stored_events,
    concurrent_batches_overshoot_quota_by_at_most_one_batch,
    rollup_ranges_are_half_open,
    events_page_in_time_order,
    users_codes_and_sessions,
    members_keep_an_owner_and_their_limit,
    active_keys_stay_within_the_limit,
    audit_pages_newest_first,
    recent_events_page_newest_first,
    jobs_update_once_per_version,
    billing_saves_once_per_version_and_event,
    billing_due_lists_records_due_oldest_first,
    retention_keeps_or_deletes_by_the_plan_window,
    deleting_events_takes_them_off_usage_and_rollups,
    alert_rules_keep_their_limit_version_and_history,
    notices_are_claimed_once,
    price_rules_change_only_from_the_version_read,
    repricing_rewrites_costs_and_every_view_of_the_hour,
    connections_and_billed_days_round_trip,
    budgets_change_only_from_the_version_read,
    budgets_change_through_the_use_case_with_audit,
    budgets_spend_is_the_cost_of_their_scope,
    one_values_rollups_are_exactly_its_rows,
    digest_subscribers_change_only_from_the_version_read,
    tag_values_are_admitted_once_and_fold_into_their_views,
);

async fn new_workspace(store: &DynStore, plan: Plan) -> WorkspaceId {
    let ws = Workspace {
        id: WorkspaceId::generate(now_ms()),
        name: "Acme".into(),
        plan,
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
    ws.id
}

pub fn validated(raw: &[serde_json::Value], source: &str) -> Vec<Event> {
    let ctx = Context {
        now_ms: now_ms(),
        source,
        plan: Plan::Pro,
        prices: PriceTable::bundled(),
        custom: llmtrack_shared::domain::pricing::custom::Rules::none(),
    };
    raw.iter()
        .map(|v| {
            let raw = serde_json::value::to_raw_value(v).unwrap();
            event::validate(&raw, &ctx).expect("valid event").0
        })
        .collect()
}

pub fn quota(limit: u64) -> Quota {
    Quota {
        month: month_of(now_ms()),
        limit,
    }
}

fn stored(outcome: IngestOutcome) -> Vec<Stored> {
    match outcome {
        IngestOutcome::Stored(s) => s,
        other => panic!("expected the batch to be stored, got {other:?}"),
    }
}

async fn workspaces_round_trip(store: DynStore) {
    let ws = Workspace {
        id: WorkspaceId::generate(now_ms()),
        name: "Acme".into(),
        plan: Plan::Free,
        timezone: "UTC".into(),
        created_ms: 1_700_000_000_000,
        deleting: None,
        prices: Default::default(),
        budgets: Default::default(),
        digest: Default::default(),
        tags: Default::default(),
        spans: Default::default(),
    };
    store.create_workspace(&ws).await.unwrap();
    assert_eq!(store.workspace(&ws.id).await.unwrap(), Some(ws.clone()));
    assert!(matches!(
        store.create_workspace(&ws).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.set_plan(&ws.id, Plan::Team).await.unwrap());
    assert_eq!(
        store.workspace(&ws.id).await.unwrap().unwrap().plan,
        Plan::Team
    );
    let missing = WorkspaceId::generate(now_ms());
    assert_eq!(store.workspace(&missing).await.unwrap(), None);
    assert!(!store.set_plan(&missing, Plan::Pro).await.unwrap());
}

/// An active ingest key of `ws`, `raw` hashed.
pub fn ingest_key(ws: &WorkspaceId, raw: &RawKey) -> ApiKey {
    ApiKey {
        id: KeyId::generate(now_ms()),
        workspace_id: ws.clone(),
        name: "backend".into(),
        source: "production".into(),
        scope: Scope::Ingest,
        state: KeyState::Active,
        hash: raw.hash(),
        prefix: raw.display_prefix(),
        created_ms: 1_700_000_000_000,
        created_by: None,
        last_used_ms: None,
    }
}

async fn keys_are_found_by_hash_only_and_scoped_to_their_workspace(store: DynStore) {
    let ws = new_workspace(&store, Plan::Free).await;
    let other = new_workspace(&store, Plan::Free).await;
    let raw = RawKey::generate();
    let key = ingest_key(&ws, &raw);
    store.create_key(&key, 10).await.unwrap();
    assert_eq!(
        store.key_by_hash(&raw.hash()).await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(
        store.key_by_hash(&RawKey::generate().hash()).await.unwrap(),
        None
    );
    assert_eq!(store.keys(&ws).await.unwrap(), vec![key.clone()]);
    assert!(store.keys(&other).await.unwrap().is_empty());

    store.touch_key(&key, 1_700_000_100_000).await.unwrap();
    store.touch_key(&key, 1_700_000_050_000).await.unwrap(); // older: ignored
    assert_eq!(
        store
            .key_by_hash(&raw.hash())
            .await
            .unwrap()
            .unwrap()
            .last_used_ms,
        Some(1_700_000_100_000)
    );

    // Another workspace cannot change or delete it.
    assert!(
        !store
            .set_key_state(&other, &key.id, KeyState::Deactivated, 10)
            .await
            .unwrap()
    );
    assert!(!store.delete_key(&other, &key.id).await.unwrap());
    assert!(
        store
            .set_key_state(&ws, &key.id, KeyState::Deactivated, 10)
            .await
            .unwrap()
    );
    assert_eq!(
        store.key_by_hash(&raw.hash()).await.unwrap().unwrap().state,
        KeyState::Deactivated
    );
    assert!(store.delete_key(&ws, &key.id).await.unwrap());
    assert_eq!(store.key_by_hash(&raw.hash()).await.unwrap(), None);
    assert!(store.keys(&ws).await.unwrap().is_empty());
}

async fn each_event_is_stored_once_and_rollups_match(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let now = now_ms();
    let raw: Vec<_> = (0..30)
        .map(|i| event(i, now - (i as i64) * 1_800_000))
        .collect();
    let events = validated(&raw, "production");

    let first = stored(store.ingest(&ws, &events, &quota(1_000)).await.unwrap());
    assert!(first.iter().all(|s| *s == Stored::Accepted));
    // The same batch again (a client retry) and a batch repeating an event inside itself.
    let again = stored(store.ingest(&ws, &events, &quota(1_000)).await.unwrap());
    assert!(again.iter().all(|s| *s == Stored::Duplicate));
    let repeated = vec![events[3].clone(), events[3].clone()];
    assert_eq!(
        stored(store.ingest(&ws, &repeated, &quota(1_000)).await.unwrap()),
        vec![Stored::Duplicate, Stored::Duplicate]
    );
    // Events without ids are always new.
    let anonymous = validated(
        &[json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "timestamp": now})],
        "staging",
    );
    stored(store.ingest(&ws, &anonymous, &quota(1_000)).await.unwrap());
    stored(
        store
            .ingest(&ws, &anonymous_again(&anonymous), &quota(1_000))
            .await
            .unwrap(),
    );

    assert_eq!(all_events(store.as_ref(), &ws).await.len(), 32);
    assert_eq!(store.usage(&ws, &month_of(now)).await.unwrap(), 32);
    assert_rollups_match_events(store.as_ref(), &ws).await;

    let totals = store
        .rollups(
            &ws,
            &View::of(Dimension::Total),
            hour_of(now) - 48,
            hour_of(now) + 1,
        )
        .await
        .unwrap();
    assert_eq!(totals.iter().map(|(_, r)| r.requests).sum::<u64>(), 32);
    // The unknown model is unpriced, never $0; cost_usd sent by the client is kept.
    let by_model = store
        .rollups(
            &ws,
            &View::of(Dimension::Model),
            hour_of(now) - 48,
            hour_of(now) + 1,
        )
        .await
        .unwrap();
    let unpriced: u64 = by_model
        .iter()
        .filter(|(k, _)| k.value == "in-house-7b")
        .map(|(_, r)| r.unpriced)
        .sum();
    let in_house = raw
        .iter()
        .filter(|e| e["model"] == "in-house-7b" && e.get("cost_usd").is_none())
        .count() as u64;
    assert_eq!(unpriced, in_house);
}

fn anonymous_again(events: &[Event]) -> Vec<Event> {
    // A second event with identical content but no id: a new event, with a new assigned id.
    let mut e = events[0].clone();
    e.id = llmtrack_shared::domain::ids::event_id(now_ms());
    vec![e]
}

async fn ids_without_timestamps_are_idempotent(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let body = json!({"id": "retry-me", "provider": "openai", "model": "gpt-4o", "input_tokens": 100, "output_tokens": 10});
    let first = validated(std::slice::from_ref(&body), "production");
    assert_eq!(
        stored(store.ingest(&ws, &first, &quota(100)).await.unwrap()),
        vec![Stored::Accepted]
    );
    // The retry arrives later, so its default timestamp differs; it is still the same event.
    let mut retry = validated(&[body], "production");
    retry[0].ts_ms += 1_500;
    assert_eq!(
        stored(store.ingest(&ws, &retry, &quota(100)).await.unwrap()),
        vec![Stored::Duplicate]
    );
    assert_eq!(all_events(store.as_ref(), &ws).await.len(), 1);
    assert_eq!(store.usage(&ws, &month_of(now_ms())).await.unwrap(), 1);
    assert_rollups_match_events(store.as_ref(), &ws).await;
}

/// `{"id": "req@T"}` and `{"id": "req", "timestamp": T}` are two events (their keys were once
/// both `req@T`).
async fn an_id_is_never_taken_for_another_id_and_a_timestamp(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let t = now_ms() - 60_000;
    let base =
        json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 100, "output_tokens": 10});
    let with = |extra: serde_json::Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    let sent = [
        with(json!({"id": format!("req@{t}")})),
        with(json!({"id": "req", "timestamp": t})),
        with(json!({"id": format!("t:{t}:req")})),
        with(json!({"id": "req"})),
    ];
    for body in &sent {
        let e = validated(std::slice::from_ref(body), "production");
        assert_eq!(
            stored(store.ingest(&ws, &e, &quota(100)).await.unwrap()),
            vec![Stored::Accepted],
            "{body}"
        );
    }
    // Each retried is a duplicate of itself only.
    for body in &sent {
        let e = validated(std::slice::from_ref(body), "production");
        assert_eq!(
            stored(store.ingest(&ws, &e, &quota(100)).await.unwrap()),
            vec![Stored::Duplicate],
            "{body}"
        );
    }
    assert_eq!(all_events(store.as_ref(), &ws).await.len(), sent.len());
    assert_eq!(
        store.usage(&ws, &month_of(now_ms())).await.unwrap(),
        sent.len() as u64
    );
    assert_rollups_match_events(store.as_ref(), &ws).await;
}

/// A client that lost the acknowledgement of a batch can confirm it after the quota ran out.
async fn a_used_up_quota_still_recognises_stored_events(store: DynStore) {
    let ws = new_workspace(&store, Plan::Free).await;
    let now = now_ms();
    let with_ts = validated(
        &(0..4).map(|i| event(i, now)).collect::<Vec<_>>(),
        "production",
    );
    let id_only = validated(
        &[json!({"id": "no-ts", "provider": "openai", "model": "gpt-4o", "input_tokens": 3})],
        "production",
    );
    let batch: Vec<Event> = with_ts.iter().chain(&id_only).cloned().collect();
    stored(store.ingest(&ws, &batch, &quota(5)).await.unwrap());
    // Used up: the same batch is all known; a new event is not; a mix says which is which.
    match store.ingest(&ws, &batch, &quota(5)).await.unwrap() {
        IngestOutcome::QuotaExceeded { used, stored } => {
            assert_eq!(used, 5);
            assert_eq!(stored, vec![true; 5]);
        }
        other => panic!("expected quota exceeded, got {other:?}"),
    }
    let new = validated(&[event(9, now)], "production");
    let keyless = validated(
        &[json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 3})],
        "production",
    );
    let mixed: Vec<Event> = [batch[1].clone(), new[0].clone(), keyless[0].clone()].to_vec();
    match store.ingest(&ws, &mixed, &quota(5)).await.unwrap() {
        IngestOutcome::QuotaExceeded { stored, .. } => {
            assert_eq!(stored, vec![true, false, false])
        }
        other => panic!("expected quota exceeded, got {other:?}"),
    }
    assert_eq!(all_events(store.as_ref(), &ws).await.len(), 5);
    assert_eq!(store.usage(&ws, &month_of(now)).await.unwrap(), 5);
}

async fn quota_stops_a_batch_once_used_up(store: DynStore) {
    let ws = new_workspace(&store, Plan::Free).await;
    let now = now_ms();
    let batch = |from: usize| {
        validated(
            &(from..from + 5).map(|i| event(i, now)).collect::<Vec<_>>(),
            "production",
        )
    };
    stored(store.ingest(&ws, &batch(0), &quota(8)).await.unwrap());
    // 5 used, limit 8: the next batch is let through whole (overshoot of less than one batch).
    stored(store.ingest(&ws, &batch(5), &quota(8)).await.unwrap());
    assert_eq!(store.usage(&ws, &month_of(now)).await.unwrap(), 10);
    match store.ingest(&ws, &batch(10), &quota(8)).await.unwrap() {
        IngestOutcome::QuotaExceeded { used, stored } => {
            assert_eq!(used, 10);
            assert_eq!(stored, vec![false; 5]);
        }
        other => panic!("expected quota exceeded, got {other:?}"),
    }
    assert_eq!(all_events(store.as_ref(), &ws).await.len(), 10);
    // Duplicates do not use quota.
    let ws2 = new_workspace(&store, Plan::Free).await;
    stored(store.ingest(&ws2, &batch(0), &quota(100)).await.unwrap());
    stored(store.ingest(&ws2, &batch(0), &quota(100)).await.unwrap());
    assert_eq!(store.usage(&ws2, &month_of(now)).await.unwrap(), 5);
}

async fn concurrent_batches_overshoot_quota_by_at_most_one_batch(store: DynStore) {
    let ws = new_workspace(&store, Plan::Free).await;
    let now = now_ms();
    let limit = 12;
    let batch_size = 4;
    let tasks: Vec<_> = (0..6)
        .map(|b| {
            let store = store.clone();
            let ws = ws.clone();
            let events = validated(
                &(b * batch_size..(b + 1) * batch_size)
                    .map(|i| event(i, now))
                    .collect::<Vec<_>>(),
                "production",
            );
            tokio::spawn(async move { store.ingest(&ws, &events, &quota(limit)).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let used = store.usage(&ws, &month_of(now)).await.unwrap();
    assert!(
        used >= limit && used < limit + batch_size as u64,
        "used {used} with limit {limit}"
    );
    assert_eq!(all_events(store.as_ref(), &ws).await.len() as u64, used);
    assert_rollups_match_events(store.as_ref(), &ws).await;
}

async fn rollup_ranges_are_half_open(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let h = hour_of(now_ms()) - 5;
    let raw: Vec<_> = (0..3)
        .map(|i| event(i, (h + i as i64) * 3_600_000 + 60_000))
        .collect();
    stored(
        store
            .ingest(&ws, &validated(&raw, "production"), &quota(100))
            .await
            .unwrap(),
    );
    let hours = |from, to| {
        let store = store.clone();
        let ws = ws.clone();
        async move {
            store
                .rollups(&ws, &View::of(Dimension::Total), from, to)
                .await
                .unwrap()
                .into_iter()
                .map(|(k, _)| k.hour)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(hours(h, h + 3).await, vec![h, h + 1, h + 2]);
    assert_eq!(hours(h + 1, h + 2).await, vec![h + 1]);
    assert!(hours(h + 3, h + 10).await.is_empty());
    // Other workspaces see nothing of it.
    let other = new_workspace(&store, Plan::Pro).await;
    assert!(
        store
            .rollups(&other, &View::of(Dimension::Total), h, h + 3)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn events_page_in_time_order(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let now = now_ms();
    let raw: Vec<_> = (0..12)
        .map(|i| event(i, now - 7_200_000 + (i as i64) * 600_000))
        .collect();
    stored(
        store
            .ingest(&ws, &validated(&raw, "production"), &quota(100))
            .await
            .unwrap(),
    );
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .events(&ws, now - 7_200_000, now, after.clone(), 5)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5);
        after = page.last().map(|e| (e.ts_ms, e.id.clone()));
        seen.extend(page.into_iter().map(|e| e.ts_ms));
    }
    assert_eq!(seen.len(), 12);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]));
}

async fn recent_events_page_newest_first(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let now = now_ms();
    // Two bursts with empty hours between: the log skips them.
    let raw: Vec<_> = (0..12)
        .map(|i| {
            let base = if i < 6 {
                now - 30 * 3_600_000
            } else {
                now - 3_600_000
            };
            event(i, base + (i as i64) * 60_000)
        })
        .collect();
    stored(
        store
            .ingest(&ws, &validated(&raw, "production"), &quota(100))
            .await
            .unwrap(),
    );
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .recent_events(&ws, now - 40 * 3_600_000, now, before.clone(), 5)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5);
        before = page.last().map(|e| (e.ts_ms, e.id.clone()));
        seen.extend(page.into_iter().map(|e| (e.ts_ms, e.id)));
    }
    let mut want: Vec<(i64, String)> = all_events(store.as_ref(), &ws)
        .await
        .into_iter()
        .map(|e| (e.ts_ms, e.id))
        .collect();
    want.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, want);
    // A narrower window, and another workspace, see only what they should.
    let recent = store
        .recent_events(&ws, now - 2 * 3_600_000, now, None, 100)
        .await
        .unwrap();
    assert_eq!(recent.len(), 6);
    let other = new_workspace(&store, Plan::Pro).await;
    assert!(
        store
            .recent_events(&other, now - 40 * 3_600_000, now, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn jobs_update_once_per_version(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let now = now_ms();
    let job = Job {
        id: format!("exp_{}", ulid::Ulid::new().to_string().to_lowercase()),
        workspace: ws.clone(),
        kind: "export".into(),
        state: JobState::Queued,
        spec: json!({"kind": "events"}),
        progress: serde_json::Value::Null,
        result: None,
        created_ms: now,
        updated_ms: now,
        version: 0,
        expires_ms: None,
    };
    store.create_job(&job).await.unwrap();
    assert!(
        store
            .unfinished_jobs()
            .await
            .unwrap()
            .iter()
            .any(|j| j.id == job.id)
    );
    let mut a = store.job(&ws, &job.id).await.unwrap().unwrap();
    let mut b = a.clone();
    a.state = JobState::Running;
    assert!(store.update_job(&mut a).await.unwrap());
    assert_eq!(a.version, 1);
    b.state = JobState::Failed;
    assert!(
        !store.update_job(&mut b).await.unwrap(),
        "a stale version must not win"
    );
    a.state = JobState::Done;
    a.result = Some(json!({"rows": 3}));
    assert!(store.update_job(&mut a).await.unwrap());
    let read = store.job(&ws, &job.id).await.unwrap().unwrap();
    assert_eq!((read.state, read.version), (JobState::Done, 2));
    assert!(
        !store
            .unfinished_jobs()
            .await
            .unwrap()
            .iter()
            .any(|j| j.id == job.id)
    );
    let other = new_workspace(&store, Plan::Pro).await;
    assert!(store.job(&other, &job.id).await.unwrap().is_none());
}

/// A SQLite file of an earlier release keyed events `{id}@{ts}` (or the id alone): opened by this
/// release, its events keep their identity, and the two forms no longer collide.
#[tokio::test]
async fn sqlite_idempotency_keys_of_an_earlier_release_are_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite3");
    let t = now_ms() - 60_000;
    let sent = [
        json!({"id": "a", "timestamp": t, "provider": "openai", "model": "gpt-4o", "input_tokens": 5}),
        json!({"id": "b", "provider": "openai", "model": "gpt-4o", "input_tokens": 5}),
    ];
    let ws = {
        let store: DynStore = std::sync::Arc::new(
            llmtrack_shared::adapters::sqlite::SqliteStore::open(&path).unwrap(),
        );
        let ws = new_workspace(&store, Plan::Pro).await;
        stored(
            store
                .ingest(&ws, &validated(&sent, "production"), &quota(100))
                .await
                .unwrap(),
        );
        ws
    };
    {
        // What the earlier release wrote: its keys, its event bodies, no schema version, no
        // application id (numbered migrations came later).
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "UPDATE events SET idempotency_key = CASE id WHEN 'a' THEN id || '@' || ts_ms ELSE id END;
             UPDATE events SET body = json_set(json_remove(body, '$.dedup'), '$.idempotency_key', idempotency_key);
             PRAGMA user_version = 0;
             PRAGMA application_id = 0;",
        )
        .unwrap();
        let keys: Vec<String> = c
            .prepare("SELECT idempotency_key FROM events ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(keys, vec![format!("a@{t}"), "b".to_owned()]);
        // And its pending deltas in that release's layout.
        let deltas: Vec<(i64, Vec<u8>)> = c
            .prepare("SELECT seq, data FROM deltas")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (seq, data) in deltas {
            c.execute(
                "UPDATE deltas SET data = ?1 WHERE seq = ?2",
                rusqlite::params![upgrade::as_format_1(&data), seq],
            )
            .unwrap();
        }
    }
    let store: DynStore =
        std::sync::Arc::new(llmtrack_shared::adapters::sqlite::SqliteStore::open(&path).unwrap());
    let events = all_events(store.as_ref(), &ws).await;
    let mut dedup: Vec<_> = events.iter().map(|e| (e.id.clone(), e.dedup)).collect();
    dedup.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        dedup,
        vec![
            ("a".to_owned(), event::Dedup::IdAndTimestamp),
            ("b".to_owned(), event::Dedup::Id)
        ]
    );
    // Retries of both are duplicates; the id that looks like the old key of `a` is new.
    assert_eq!(
        stored(
            store
                .ingest(&ws, &validated(&sent, "production"), &quota(100))
                .await
                .unwrap()
        ),
        vec![Stored::Duplicate, Stored::Duplicate]
    );
    let lookalike = validated(
        &[
            json!({"id": format!("a@{t}"), "provider": "openai", "model": "gpt-4o", "input_tokens": 5}),
        ],
        "production",
    );
    assert_eq!(
        stored(store.ingest(&ws, &lookalike, &quota(100)).await.unwrap()),
        vec![Stored::Accepted]
    );
}
