//! Workspace budgets: stored with the workspace, read back exactly, changed only from the version
//! they were read at; the use case that changes them (and audits each change); and the spend of a
//! budget's scope measured from the rollups.

use super::*;
use llmtrack_shared::domain::alert::Filter;
use llmtrack_shared::domain::budget::{
    Budget, BudgetPeriod, MAX_BUDGETS, WorkspaceBudgets, canonical_model, period_bounds,
};
use llmtrack_shared::usecases::{
    Actor, BudgetChange, BudgetChangeError, budget_spent, change_budgets,
};

fn budget(id: &str, amount_usd: f64, scope: Option<Filter>) -> Budget {
    Budget {
        id: id.into(),
        name: "LLM spend".into(),
        amount_usd,
        period: BudgetPeriod::Month,
        scope,
        warn_pct: 80,
        deny: true,
        created_at: "2026-01-01T00:00:00.000Z".into(),
        updated_at: "2026-01-01T00:00:00.000Z".into(),
    }
}

fn feature(value: &str) -> Option<Filter> {
    Some(Filter {
        dimension: Dimension::Feature,
        value: value.into(),
    })
}

pub(crate) async fn budgets_change_only_from_the_version_read(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let read = |store: DynStore, ws: WorkspaceId| async move {
        store.workspace(&ws).await.unwrap().unwrap().budgets
    };
    assert_eq!(
        read(store.clone(), ws.clone()).await,
        WorkspaceBudgets::default()
    );

    let first = WorkspaceBudgets {
        version: 1,
        items: vec![budget("bdg_a", 500.0, None)],
    };
    assert!(store.set_budgets(&ws, &first).await.unwrap());
    assert_eq!(read(store.clone(), ws.clone()).await, first);

    // Two changes made from version 1: the first lands, the second finds version 2 and is refused.
    let mut a = first.clone();
    a.version = 2;
    a.items.push(Budget {
        period: BudgetPeriod::Rolling { days: 7 },
        warn_pct: 50,
        deny: false,
        ..budget("bdg_b", 20.5, feature("search"))
    });
    let mut b = first.clone();
    b.version = 2;
    b.items.clear();
    assert!(store.set_budgets(&ws, &a).await.unwrap());
    assert!(!store.set_budgets(&ws, &b).await.unwrap());
    assert_eq!(read(store.clone(), ws.clone()).await, a);
    // A version skipped is refused too.
    let mut skip = a.clone();
    skip.version = 4;
    assert!(!store.set_budgets(&ws, &skip).await.unwrap());
    assert_eq!(read(store.clone(), ws.clone()).await, a);

    // Budgets and prices are versioned apart, and renaming the workspace keeps both.
    let prices = llmtrack_shared::domain::pricing::custom::WorkspacePrices {
        version: 1,
        rules: vec![],
    };
    assert!(store.set_prices(&ws, &prices).await.unwrap());
    let mut renamed = store.workspace(&ws).await.unwrap().unwrap();
    renamed.name = "Acme Corp".into();
    assert!(store.update_workspace(&renamed).await.unwrap());
    let read_back = store.workspace(&ws).await.unwrap().unwrap();
    assert_eq!((&read_back.budgets, &read_back.prices), (&a, &prices));

    // Another workspace has none; no workspace, nothing to change.
    let other = new_workspace(&store, Plan::Pro).await;
    assert_eq!(
        read(store.clone(), other.clone()).await,
        WorkspaceBudgets::default()
    );
    let missing = WorkspaceId::generate(now_ms());
    assert!(!store.set_budgets(&missing, &first).await.unwrap());
}

pub(crate) async fn budgets_change_through_the_use_case_with_audit(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let now = now_ms();
    let change = |c: BudgetChange, at: i64| {
        let store = store.clone();
        let ws = ws.clone();
        async move { change_budgets(store.as_ref(), store.as_ref(), &ws, c, Actor::CLI, at).await }
    };

    let added = change(
        BudgetChange::Add(budget("", 100.0, feature(" search "))),
        now,
    )
    .await
    .unwrap();
    assert!(added.id.starts_with("bdg_"), "{}", added.id);
    assert_eq!(
        added.created_at,
        llmtrack_shared::domain::time::rfc3339(now)
    );
    assert_eq!(added.updated_at, added.created_at);
    assert_eq!(added.scope, feature("search"));
    let stored = store.workspace(&ws).await.unwrap().unwrap().budgets;
    assert_eq!((stored.version, &stored.items), (1, &vec![added.clone()]));

    // Replaced: same id, its creation time kept, a new change time.
    let replaced = change(
        BudgetChange::Replace(Budget {
            name: "Search".into(),
            deny: false,
            created_at: String::new(),
            ..added.clone()
        }),
        now + 1_000,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            replaced.id.as_str(),
            replaced.name.as_str(),
            replaced.deny,
            replaced.created_at.as_str()
        ),
        (
            added.id.as_str(),
            "Search",
            false,
            added.created_at.as_str()
        )
    );
    assert_eq!(
        replaced.updated_at,
        llmtrack_shared::domain::time::rfc3339(now + 1_000)
    );
    let stored = store.workspace(&ws).await.unwrap().unwrap().budgets;
    assert_eq!(
        (stored.version, &stored.items),
        (2, &vec![replaced.clone()])
    );

    // Invalid input is refused before anything is stored; unknown ids are named.
    assert!(matches!(
        change(BudgetChange::Add(budget("", -1.0, None)), now).await,
        Err(BudgetChangeError::Invalid(e)) if e.field == "amount_usd"
    ));
    assert!(matches!(
        change(BudgetChange::Remove("bdg_nope".into()), now).await,
        Err(BudgetChangeError::NoBudget(id)) if id == "bdg_nope"
    ));
    assert!(matches!(
        change(BudgetChange::Replace(budget("bdg_nope", 1.0, None)), now).await,
        Err(BudgetChangeError::NoBudget(id)) if id == "bdg_nope"
    ));
    assert!(matches!(
        change_budgets(
            store.as_ref(),
            store.as_ref(),
            &WorkspaceId::generate(now),
            BudgetChange::Add(budget("", 1.0, None)),
            Actor::CLI,
            now
        )
        .await,
        Err(BudgetChangeError::NoWorkspace)
    ));

    // Removed: the budget as it was comes back.
    let removed = change(BudgetChange::Remove(added.id.clone()), now + 2_000)
        .await
        .unwrap();
    assert_eq!(removed, replaced);
    let stored = store.workspace(&ws).await.unwrap().unwrap().budgets;
    assert_eq!((stored.version, stored.items.len()), (3, 0));

    // At most MAX_BUDGETS.
    for i in 0..MAX_BUDGETS {
        change(
            BudgetChange::Add(budget("", 1.0 + i as f64, None)),
            now + 3_000 + i as i64,
        )
        .await
        .unwrap();
    }
    assert!(matches!(
        change(BudgetChange::Add(budget("", 1.0, None)), now + 9_000).await,
        Err(BudgetChangeError::TooMany)
    ));
    let stored = store.workspace(&ws).await.unwrap().unwrap().budgets;
    assert_eq!(stored.items.len(), MAX_BUDGETS);

    // Each change is audited, newest first.
    let log = store.audit(&ws, None, 100).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).rev().collect();
    let mut expected = vec!["budget.created", "budget.updated", "budget.deleted"];
    expected.extend(std::iter::repeat_n("budget.created", MAX_BUDGETS));
    assert_eq!(actions, expected);
    let first = log.last().unwrap();
    assert_eq!(first.actor_id, "cli");
    let summary = first.target.as_deref().unwrap();
    assert!(
        summary.contains(&added.id) && summary.contains("feature search"),
        "{summary}"
    );
}

pub(crate) async fn budgets_spend_is_the_cost_of_their_scope(store: DynStore) {
    use llmtrack_shared::domain::time::HOUR_MS;
    let ws = new_workspace(&store, Plan::Pro).await;
    let other = new_workspace(&store, Plan::Pro).await;
    // Last month (UTC), all of it in the past: events inside it, and just outside either end.
    let this_month = period_bounds(&BudgetPeriod::Month, "UTC", now_ms()).0;
    let bounds = period_bounds(&BudgetPeriod::Month, "UTC", this_month - 1);
    assert_eq!(bounds.1, this_month);
    let (start, end) = bounds;
    let mut times: Vec<i64> = (0..40).map(|i| start + i * 97 * 60_000 + 11).collect();
    times.extend([end - 1, end - HOUR_MS / 2]);
    let inside = times.len();
    times.extend([
        start - 1,
        start - HOUR_MS,
        end,
        end + 60_000.min(now_ms() - end),
    ]);
    let raw: Vec<serde_json::Value> = times
        .iter()
        .enumerate()
        .map(|(i, ts)| event(i, *ts))
        .collect();
    let events = validated(&raw, "production");
    for w in [&ws, &other] {
        for (i, e) in events.iter().enumerate() {
            let quota = Quota {
                month: month_of(e.ts_ms),
                limit: 10_000,
            };
            let batch = &events[i..=i];
            assert!(
                stored(store.ingest(w, batch, &quota).await.unwrap())
                    .iter()
                    .all(|s| *s == Stored::Accepted)
            );
        }
    }
    let expected = |keep: &dyn Fn(&Event) -> bool| {
        events[..inside]
            .iter()
            .filter(|e| keep(e))
            .map(|e| i128::from(e.cost_pico.unwrap_or(0)))
            .sum::<i128>() as f64
            / 1e12
    };
    let spent = |b: Budget| {
        let store = store.clone();
        let ws = ws.clone();
        async move { budget_spent(store.as_ref(), &ws, &b, bounds).await.unwrap() }
    };

    let whole = expected(&|_| true);
    assert!(whole > 0.0);
    assert_eq!(spent(budget("bdg_a", 1.0, None)).await, whole);
    let search = expected(&|e| e.feature.as_deref() == Some("search"));
    assert!(search > 0.0 && search < whole);
    assert_eq!(spent(budget("bdg_a", 1.0, feature("search"))).await, search);
    // A model scope, in any spelling, counts its canonical model and no other.
    let gpt4o = expected(&|e| e.canonical_model() == "gpt-4o");
    assert!(gpt4o > 0.0 && gpt4o < whole);
    assert_eq!(canonical_model("openai/GPT-4o"), "gpt-4o");
    for spelling in ["gpt-4o", "openai/GPT-4o"] {
        let scope = Some(Filter {
            dimension: Dimension::Model,
            value: spelling.into(),
        });
        assert_eq!(
            spent(budget("bdg_a", 1.0, scope)).await,
            gpt4o,
            "{spelling}"
        );
    }
    let user = expected(&|e| e.user_id.as_deref() == Some("user-3"));
    let scope = Some(Filter {
        dimension: Dimension::User,
        value: "user-3".into(),
    });
    assert_eq!(spent(budget("bdg_a", 1.0, scope)).await, user);
    // A value no event has costs nothing; nor does an empty period.
    assert_eq!(spent(budget("bdg_a", 1.0, feature("nope"))).await, 0.0);
    assert_eq!(
        budget_spent(store.as_ref(), &ws, &budget("bdg_a", 1.0, None), (end, end))
            .await
            .unwrap(),
        0.0
    );
}

/// What a budget scoped to one value reads (`Events::value_rollups`) is exactly that value's rows
/// of the view, as `rollups` gives them, and nothing else: for the `user` view (a range of its own
/// index on SQLite) and a view of a few values, over a range that cuts hours off either end,
/// with batches folded into the rollups and batches still pending as deltas (SQLite's compactor
/// is asked to fold once 32 batches wait: of 40 single-event batches, the first 36 are folded
/// and the last 4, sent after another workspace's, wait as deltas), and none of another
/// workspace's rows of the same value.
pub(crate) async fn one_values_rollups_are_exactly_its_rows(store: DynStore) {
    use llmtrack_shared::domain::rollup::{self, Rollup, RollupKey};
    use llmtrack_shared::domain::time::HOUR_MS;
    let ws = new_workspace(&store, Plan::Pro).await;
    let other = new_workspace(&store, Plan::Pro).await;
    // 40 events over the 20 hours before the last whole hour, one batch each.
    let first = (now_ms() / HOUR_MS - 21) * HOUR_MS;
    let raw: Vec<serde_json::Value> = (0..40)
        .map(|i| event(i, first + i as i64 * HOUR_MS / 2 + 7))
        .collect();
    let events = validated(&raw, "production");
    let batches = [
        (&ws, &events[..36]),
        (&other, &events[..5]),
        (&ws, &events[36..]),
    ];
    for (w, events) in batches {
        for e in events {
            let quota = Quota {
                month: month_of(e.ts_ms),
                limit: 10_000,
            };
            let batch = std::slice::from_ref(e);
            assert!(
                stored(store.ingest(w, batch, &quota).await.unwrap())
                    .iter()
                    .all(|s| *s == Stored::Accepted)
            );
        }
    }
    let h = hour_of(first);
    for (from, to) in [(h - 1, h + 21), (h + 3, h + 17)] {
        let cases = [
            (Dimension::User, "user-3"),
            (Dimension::User, "user-0"),
            (Dimension::Feature, "search"),
            (Dimension::Model, "gpt-4o"),
        ];
        for (dimension, value) in cases {
            let view = View::of(dimension);
            let expected: Vec<(RollupKey, Rollup)> = rollup::fold(&events)
                .into_iter()
                .filter(|(k, _)| k.view == view && k.value == value && (from..to).contains(&k.hour))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect();
            assert!(!expected.is_empty(), "{value}");
            let all = store.rollups(&ws, &view, from, to).await.unwrap();
            let got = store
                .value_rollups(&ws, &view, value, from, to)
                .await
                .unwrap();
            let keys = |rows: &[(RollupKey, Rollup)]| {
                rows.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()
            };
            assert_eq!(keys(&got), keys(&expected), "{value} {from}..{to}");
            let of_value: Vec<_> = all.into_iter().filter(|(k, _)| k.value == value).collect();
            assert_eq!(keys(&got), keys(&of_value), "{value} {from}..{to}");
            for ((k, r), ((_, e), (_, a))) in got.iter().zip(expected.iter().zip(&of_value)) {
                assert!(r.same_as(e), "{k:?}: {r:?} against the events' {e:?}");
                assert!(r.same_as(a), "{k:?}: {r:?} against rollups' {a:?}");
            }
        }
    }
    // A value nobody has, and an empty range, read nothing.
    let users = View::of(Dimension::User);
    assert!(
        store
            .value_rollups(&ws, &users, "nobody", h - 1, h + 21)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .value_rollups(&ws, &users, "user-3", h + 5, h + 5)
            .await
            .unwrap()
            .is_empty()
    );
}
