//! The storage operations behind billing (Stripe) and retention.

use llmtrack_shared::domain::billing::{Billing, SubscriptionStatus};
use llmtrack_shared::domain::event::Event;
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::retention;
use llmtrack_shared::domain::rollup::{Dimension, View};
use llmtrack_shared::domain::time::hour_of;
use llmtrack_shared::ports::{BillingSave, DynStore, IngestOutcome, Retained, Stored};
use serde_json::json;

use super::support::{all_events, event, now_ms};
use super::{new_workspace, quota, validated};

const DAY: i64 = 86_400_000;

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase())
}

fn paid(ws: &WorkspaceId, customer: &str, plan: Plan) -> Billing {
    let mut b = Billing::new(ws.clone());
    b.customer_id = Some(customer.to_owned());
    b.subscription_id = Some(unique("sub"));
    b.plan = plan;
    b.status = SubscriptionStatus::Active;
    b
}

async fn plan_of(store: &DynStore, ws: &WorkspaceId) -> Plan {
    store.workspace(ws).await.unwrap().unwrap().plan
}

pub async fn billing_saves_once_per_version_and_event(store: DynStore) {
    let ws = new_workspace(&store, Plan::Free).await;
    let now = now_ms();
    let customer = unique("cus");
    let first_event = unique("evt");

    assert_eq!(store.billing(&ws).await.unwrap(), None);
    let mut b = paid(&ws, &customer, Plan::Pro);
    assert_eq!(
        store
            .save_billing(&mut b, Plan::Pro, Some(now + DAY), Some(&first_event), now)
            .await
            .unwrap(),
        BillingSave::Saved
    );
    assert_eq!(b.version, 1);
    assert_eq!(store.billing(&ws).await.unwrap(), Some(b.clone()));
    assert_eq!(
        store.billing_by_customer(&customer).await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(
        store.billing_by_customer(&unique("cus")).await.unwrap(),
        None
    );
    assert_eq!(plan_of(&store, &ws).await, Plan::Pro);
    assert!(store.stripe_event_seen(&first_event).await.unwrap());

    // A writer that read the record before that save loses, and changes nothing.
    let mut stale = Billing::new(ws.clone());
    stale.plan = Plan::Team;
    let stale_event = unique("evt");
    assert_eq!(
        store
            .save_billing(&mut stale, Plan::Team, None, Some(&stale_event), now)
            .await
            .unwrap(),
        BillingSave::Conflict
    );
    assert_eq!(stale.version, 0);
    assert_eq!(store.billing(&ws).await.unwrap(), Some(b.clone()));
    assert_eq!(plan_of(&store, &ws).await, Plan::Pro);
    assert!(!store.stripe_event_seen(&stale_event).await.unwrap());

    // An event processed already is not applied twice, even on the current version.
    let mut again = store.billing(&ws).await.unwrap().unwrap();
    again.plan = Plan::Team;
    assert_eq!(
        store
            .save_billing(&mut again, Plan::Team, None, Some(&first_event), now)
            .await
            .unwrap(),
        BillingSave::Duplicate
    );
    assert_eq!(again.version, 1);
    assert_eq!(store.billing(&ws).await.unwrap(), Some(b.clone()));
    assert_eq!(plan_of(&store, &ws).await, Plan::Pro);

    // A save without an event (the sweep's), moving the record to another customer: the old
    // customer no longer finds it.
    let new_customer = unique("cus");
    again.customer_id = Some(new_customer.clone());
    assert_eq!(
        store
            .save_billing(&mut again, Plan::Team, None, None, now)
            .await
            .unwrap(),
        BillingSave::Saved
    );
    assert_eq!(again.version, 2);
    assert_eq!(store.billing(&ws).await.unwrap(), Some(again.clone()));
    assert_eq!(
        store.billing_by_customer(&new_customer).await.unwrap(),
        Some(again.clone())
    );
    assert_eq!(store.billing_by_customer(&customer).await.unwrap(), None);
    assert_eq!(plan_of(&store, &ws).await, Plan::Team);

    // Events that changed no record.
    let ignored = unique("evt");
    assert!(!store.stripe_event_seen(&ignored).await.unwrap());
    assert!(store.record_stripe_event(&ignored, now).await.unwrap());
    assert!(!store.record_stripe_event(&ignored, now).await.unwrap());
    assert!(store.stripe_event_seen(&ignored).await.unwrap());
    assert!(!store.record_stripe_event(&first_event, now).await.unwrap());
    // A recorded event makes a later save with it a duplicate too.
    let mut latest = store.billing(&ws).await.unwrap().unwrap();
    assert_eq!(
        store
            .save_billing(&mut latest, Plan::Free, None, Some(&ignored), now)
            .await
            .unwrap(),
        BillingSave::Duplicate
    );
    assert_eq!(plan_of(&store, &ws).await, Plan::Team);
}

pub async fn billing_due_lists_records_due_oldest_first(store: DynStore) {
    let now = now_ms();
    let mut records = Vec::new();
    // Due 2 s ago, 1 s ago, in a minute, never.
    for due in [
        Some(now - 2_000),
        Some(now - 1_000),
        Some(now + 60_000),
        None,
    ] {
        let ws = new_workspace(&store, Plan::Free).await;
        let mut b = paid(&ws, &unique("cus"), Plan::Pro);
        assert_eq!(
            store
                .save_billing(&mut b, Plan::Pro, due, None, now)
                .await
                .unwrap(),
            BillingSave::Saved
        );
        records.push(b);
    }
    let workspaces = |due: Vec<Billing>| due.into_iter().map(|b| b.workspace).collect::<Vec<_>>();
    let ws = |i: usize| records[i].workspace.clone();

    assert_eq!(
        workspaces(store.billing_due(now, 10).await.unwrap()),
        vec![ws(0), ws(1)]
    );
    assert_eq!(store.billing_due(now, 10).await.unwrap()[0], records[0]);
    assert_eq!(
        workspaces(store.billing_due(now, 1).await.unwrap()),
        vec![ws(0)]
    );
    assert_eq!(
        workspaces(store.billing_due(now - 1_500, 10).await.unwrap()),
        vec![ws(0)]
    );
    assert!(store.billing_due(now - 3_000, 10).await.unwrap().is_empty());
    assert_eq!(
        workspaces(store.billing_due(now + 60_000, 10).await.unwrap()),
        vec![ws(0), ws(1), ws(2)]
    );

    // Saved with nothing due: no longer listed. Moved later: listed from then on.
    let mut first = records[0].clone();
    assert_eq!(
        store
            .save_billing(&mut first, Plan::Free, None, None, now)
            .await
            .unwrap(),
        BillingSave::Saved
    );
    let mut second = records[1].clone();
    assert_eq!(
        store
            .save_billing(&mut second, Plan::Pro, Some(now + 120_000), None, now)
            .await
            .unwrap(),
        BillingSave::Saved
    );
    assert!(store.billing_due(now, 10).await.unwrap().is_empty());
    assert_eq!(
        store.billing_due(now + 120_000, 10).await.unwrap(),
        vec![records[2].clone(), second.clone()]
    );

    // Each workspace sees only its own record.
    assert_eq!(store.billing(&ws(0)).await.unwrap(), Some(first));
    assert_eq!(store.billing(&ws(1)).await.unwrap(), Some(second));
    assert_eq!(
        store.billing(&ws(3)).await.unwrap(),
        Some(records[3].clone())
    );
    assert_eq!(plan_of(&store, &ws(0)).await, Plan::Free);
    assert_eq!(plan_of(&store, &ws(1)).await, Plan::Pro);
    let other = new_workspace(&store, Plan::Free).await;
    assert_eq!(store.billing(&other).await.unwrap(), None);
}

pub async fn retention_keeps_or_deletes_by_the_plan_window(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let now = now_ms();
    let free = Plan::Free.history_ms();
    let team = Plan::Team.history_ms();

    // Six days on, a week's window keeps only what is less than a day old now.
    let ages_h = [1, 5, 20, 30, 40];
    let mut raw: Vec<_> = ages_h
        .iter()
        .enumerate()
        .map(|(i, h)| event(i, now - h * 3_600_000))
        .collect();
    // Without an id, and with an id but no timestamp (the store guards that id).
    raw.push(json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "timestamp": now - 35 * 3_600_000}));
    let untimed =
        json!({"id": "retry-me", "provider": "openai", "model": "gpt-4o", "input_tokens": 100});
    raw.push(untimed.clone());
    let events = validated(&raw, "production");
    let outcome = store.ingest(&ws, &events, &quota(100)).await.unwrap();
    assert_eq!(outcome, IngestOutcome::Stored(vec![Stored::Accepted; 7]));

    let from = hour_of(now - 2 * DAY);
    let to = hour_of(now) + 2;
    let hours: std::collections::BTreeSet<i64> = events.iter().map(|e| hour_of(e.ts_ms)).collect();
    let later = now + 6 * DAY;
    let kept: Vec<&Event> = events.iter().filter(|e| e.ts_ms + free > later).collect();
    assert_eq!(kept.len(), 4, "three timed events and the untimed one");
    let kept_ids = |events: &[Event]| {
        let mut ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        ids.sort();
        ids
    };
    let mut want_ids: Vec<String> = kept.iter().map(|e| e.id.clone()).collect();
    want_ids.sort();

    // Down to free: the old events go, the others now expire a week after their time.
    let r = store
        .apply_retention(&ws, from, to, free, later)
        .await
        .unwrap();
    assert_eq!((r.events_kept, r.events_deleted), (4, 3));
    // Rollups outlive their window until their month's report: usually none goes yet, but early
    // in a month last month's hours may. Each hour has at least its total rollup.
    let expired = hours
        .iter()
        .filter(|h| retention::rollup_expiry_ms(**h, free) <= later)
        .count() as u64;
    assert_eq!(r.rollups_deleted == 0, expired == 0, "{r:?}");
    assert!(r.rollups_deleted >= expired, "{r:?}");
    assert!(r.rollups_kept >= hours.len() as u64 - expired, "{r:?}");
    let stored = all_events(store.as_ref(), &ws).await;
    assert_eq!(kept_ids(&stored), want_ids);
    for e in &stored {
        assert_eq!(e.expires_ms, e.ts_ms + free, "{}", e.id);
    }

    // Up to team: what is left is kept for a year.
    let r = store
        .apply_retention(&ws, from, to, team, later)
        .await
        .unwrap();
    assert_eq!((r.events_kept, r.events_deleted), (4, 0));
    let stored = all_events(store.as_ref(), &ws).await;
    assert_eq!(kept_ids(&stored), want_ids);
    for e in &stored {
        assert_eq!(e.expires_ms, e.ts_ms + team, "{}", e.id);
    }
    // The id sent without a timestamp is still recognised when retried.
    let retry = validated(std::slice::from_ref(&untimed), "production");
    assert_eq!(
        store.ingest(&ws, &retry, &quota(100)).await.unwrap(),
        IngestOutcome::Stored(vec![Stored::Duplicate])
    );
    // Applying the same plan again changes nothing.
    let again = store
        .apply_retention(&ws, from, to, team, later)
        .await
        .unwrap();
    assert_eq!((again.events_kept, again.events_deleted), (4, 0));
    assert_eq!(again.rollups_deleted, 0);

    // Two months on, back on free: the events and every rollup of those hours are past keeping.
    let much_later = now + 60 * DAY;
    assert!(retention::rollups_kept_from(free, much_later) > to);
    let r = store
        .apply_retention(&ws, from, to, free, much_later)
        .await
        .unwrap();
    assert_eq!((r.events_kept, r.events_deleted), (0, 4));
    assert_eq!(r.rollups_kept, 0);
    // (Less the hours whose rollups the first call already deleted, early in a month.)
    assert!(r.rollups_deleted >= hours.len() as u64 - expired, "{r:?}");
    assert!(all_events(store.as_ref(), &ws).await.is_empty());
    let mut views: Vec<View> = Dimension::ALL.into_iter().map(View::of).collect();
    views.push(View::within(Dimension::Model, Dimension::Feature, "chat"));
    views.push(View::within(
        Dimension::User,
        Dimension::Source,
        "production",
    ));
    for view in &views {
        assert!(
            store.rollups(&ws, view, from, to).await.unwrap().is_empty(),
            "{view:?}"
        );
    }
    // Its guard went with the event: the id is new again.
    let retry = validated(std::slice::from_ref(&untimed), "production");
    assert_eq!(
        store.ingest(&ws, &retry, &quota(100)).await.unwrap(),
        IngestOutcome::Stored(vec![Stored::Accepted])
    );
    // An empty range is a no-op.
    assert_eq!(
        store
            .apply_retention(&ws, to, to, free, much_later)
            .await
            .unwrap(),
        Retained::default()
    );
}
