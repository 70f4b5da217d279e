//! Workspace price rules: stored with the workspace, read back exactly, and changed only from
//! the version they were read at (the second of two changes at once is refused, not merged).

use super::*;
use llmtrack_shared::domain::pricing::custom::{PriceRule, RulePrice, WorkspacePrices};

fn discount(id: &str, percent: f64) -> PriceRule {
    PriceRule {
        id: id.into(),
        provider: "anthropic".into(),
        model: "claude-*".into(),
        effective_from: Some("2026-01-01".into()),
        effective_to: None,
        price: RulePrice::Discount { percent },
        note: Some("MSA 2026 §4".into()),
        updated_at: "2026-01-01T00:00:00Z".into(),
    }
}

pub(crate) async fn price_rules_change_only_from_the_version_read(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let read = |store: DynStore, ws: WorkspaceId| async move {
        store.workspace(&ws).await.unwrap().unwrap().prices
    };
    assert_eq!(
        read(store.clone(), ws.clone()).await,
        WorkspacePrices::default()
    );

    let first = WorkspacePrices {
        version: 1,
        rules: vec![discount("pr_a", 12.5)],
    };
    assert!(store.set_prices(&ws, &first).await.unwrap());
    assert_eq!(read(store.clone(), ws.clone()).await, first);

    // Two changes made from version 1: the first lands, the second finds version 2 and is refused.
    let mut a = first.clone();
    a.version = 2;
    a.rules.push(discount("pr_b", 20.0));
    let mut b = first.clone();
    b.version = 2;
    b.rules.clear();
    assert!(store.set_prices(&ws, &a).await.unwrap());
    assert!(!store.set_prices(&ws, &b).await.unwrap());
    assert_eq!(read(store.clone(), ws.clone()).await, a);
    // A version skipped is refused too.
    let mut skip = a.clone();
    skip.version = 4;
    assert!(!store.set_prices(&ws, &skip).await.unwrap());

    // Renaming the workspace and choosing its span labels keeps its prices; the labels read
    // back as set; another workspace has no prices.
    let mut renamed = store.workspace(&ws).await.unwrap().unwrap();
    assert_eq!(renamed.spans, Default::default());
    renamed.name = "Acme Corp".into();
    renamed.spans = llmtrack_shared::domain::spans::SpanLabels {
        feature: vec!["app.feature".into(), "service.name".into()],
        user: vec!["customer.id".into()],
    };
    assert!(store.update_workspace(&renamed).await.unwrap());
    assert_eq!(read(store.clone(), ws.clone()).await, a);
    let read_back = store.workspace(&ws).await.unwrap().unwrap();
    assert_eq!(
        (read_back.name.as_str(), &read_back.spans),
        ("Acme Corp", &renamed.spans)
    );
    let other = new_workspace(&store, Plan::Pro).await;
    assert_eq!(read(store.clone(), other.clone()).await.rules, vec![]);
    // No workspace: nothing to change.
    let missing = WorkspaceId::generate(now_ms());
    assert!(!store.set_prices(&missing, &first).await.unwrap());
}

/// Repricing (`Store::reprice_events_in_hour`): the events of the range get today's prices
/// (sent costs stay), every view of each hour equals a recomputation from the events, other
/// workspaces and the rest of the hour are untouched, and a repeat changes nothing.
pub(crate) async fn repricing_rewrites_costs_and_every_view_of_the_hour(store: DynStore) {
    use llmtrack_shared::domain::time::HOUR_MS;
    let ws = new_workspace(&store, Plan::Pro).await;
    let other = new_workspace(&store, Plan::Pro).await;
    let h0 = hour_of(now_ms()) - 20;
    let at = |hour: i64, minute: i64| hour * HOUR_MS + minute * 60_000 + 7;
    for (n, hour) in [h0, h0 + 1, h0 + 2].into_iter().enumerate() {
        let batch = validated(
            &(0..20)
                .map(|i| event(n * 20 + i, at(hour, i as i64 * 3)))
                .collect::<Vec<_>>(),
            "production",
        );
        for w in [&ws, &other] {
            let quota = Quota {
                month: month_of(hour * HOUR_MS),
                limit: 10_000,
            };
            assert!(
                stored(store.ingest(w, &batch, &quota).await.unwrap())
                    .iter()
                    .all(|s| *s == Stored::Accepted)
            );
        }
    }
    let before = all_events(store.as_ref(), &ws).await;
    let others_before = all_events(store.as_ref(), &other).await;
    let prices: WorkspacePrices = serde_json::from_value(json!({"version": 1, "rules": [
        {"id": "pr_a", "provider": "openai", "model": "gpt-4o", "kind": "discount", "percent": 25,
         "updated_at": "2026-11-01T00:00:00Z"},
        {"id": "pr_b", "provider": "acme", "model": "in-house-*", "kind": "rates",
         "rates": {"input": 0.2, "output": 0.6}, "updated_at": "2026-11-01T00:00:00Z"}]}))
    .unwrap();
    let rules = prices.ready();
    let table = PriceTable::bundled();
    // From the middle of the first hour to the end of the second.
    let (from, to) = (at(h0, 30), (h0 + 2) * HOUR_MS);
    let expected: Vec<Event> = before
        .iter()
        .map(|e| match (from..to).contains(&e.ts_ms) {
            true => e.repriced(table, &rules).unwrap_or_else(|| e.clone()),
            false => e.clone(),
        })
        .collect();
    let changes = expected.iter().zip(&before).filter(|(a, b)| a != b).count();
    assert!(changes >= 10, "the rules change {changes} events");
    assert!(
        expected
            .iter()
            .any(|e| e.model == "in-house-7b" && e.cost_pico.is_some()),
        "a model the table does not know is priced by the rule"
    );

    let mut rewritten = 0;
    for hour in [h0, h0 + 1, h0 + 2] {
        rewritten += store
            .reprice_events_in_hour(&ws, hour, from, to, table, &prices)
            .await
            .unwrap();
    }
    assert_eq!(rewritten as usize, changes);
    assert_eq!(all_events(store.as_ref(), &ws).await, expected);
    assert_rollups_match_events(store.as_ref(), &ws).await;
    // Sent costs stay; the other workspace is untouched.
    for (a, b) in expected.iter().zip(&before) {
        if b.cost_was_sent() {
            assert_eq!(a, b);
        }
    }
    assert_eq!(all_events(store.as_ref(), &other).await, others_before);
    assert_rollups_match_events(store.as_ref(), &other).await;

    // A repeat rewrites nothing and leaves every view as it is.
    for hour in [h0, h0 + 1] {
        assert_eq!(
            store
                .reprice_events_in_hour(&ws, hour, from, to, table, &prices)
                .await
                .unwrap(),
            0
        );
    }
    assert_eq!(all_events(store.as_ref(), &ws).await, expected);
    assert_rollups_match_events(store.as_ref(), &ws).await;

    // A late event of a repriced hour lands on the rebuilt rollups.
    let late = validated(&[event(99, at(h0 + 1, 59))], "production");
    let quota = Quota {
        month: month_of((h0 + 1) * HOUR_MS),
        limit: 10_000,
    };
    store.ingest(&ws, &late, &quota).await.unwrap();
    assert_rollups_match_events(store.as_ref(), &ws).await;
}
