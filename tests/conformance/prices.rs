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

    // Renaming the workspace keeps its prices; another workspace has none.
    let mut renamed = store.workspace(&ws).await.unwrap().unwrap();
    renamed.name = "Acme Corp".into();
    assert!(store.update_workspace(&renamed).await.unwrap());
    assert_eq!(read(store.clone(), ws.clone()).await, a);
    let other = new_workspace(&store, Plan::Pro).await;
    assert_eq!(read(store.clone(), other.clone()).await.rules, vec![]);
    // No workspace: nothing to change.
    let missing = WorkspaceId::generate(now_ms());
    assert!(!store.set_prices(&missing, &first).await.unwrap());
}
