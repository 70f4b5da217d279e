//! Provider connections and their billed days: saved and listed per workspace, updated only
//! while they exist, each day replaced whole, read by a half-open range of days, and removed
//! with every figure they imported.

use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::reconciliation::{BilledRow, Connection, ImportStatus, Provider};
use llmtrack_shared::ports::DynStore;

use super::new_workspace;
use super::support::now_ms;

fn row(day: &str, model: &str, cost: i128) -> BilledRow {
    let mut r = BilledRow::new(day, Provider::Anthropic, model, "wrkspc_a");
    r.tokens = [100, 20, 5, 50];
    r.cache_write_1h = 2;
    r.cost_pico = cost;
    r.kind_cost_pico[3] = Some(cost / 2);
    r
}

pub async fn connections_and_billed_days_round_trip(store: DynStore) {
    let ws = new_workspace(&store, Plan::Pro).await;
    let other = new_workspace(&store, Plan::Pro).await;
    let mut c = Connection {
        workspace: ws.clone(),
        id: "pc_01".into(),
        provider: Provider::Anthropic,
        sealed_key: vec![0, 255, 7],
        key_hint: "…abcd".into(),
        scope: vec!["wrkspc_a".into()],
        created_at_ms: now_ms(),
        imported_through: None,
        last_import: None,
    };
    store.save_connection(&c).await.unwrap();
    assert_eq!(
        store.connection(&ws, "pc_01").await.unwrap(),
        Some(c.clone())
    );
    assert_eq!(store.connections(&ws).await.unwrap(), vec![c.clone()]);
    assert!(store.connections(&other).await.unwrap().is_empty());
    assert_eq!(store.connection(&other, "pc_01").await.unwrap(), None);

    c.imported_through = Some("2026-08-02".into());
    c.last_import = Some(ImportStatus {
        at: "2026-08-03T00:00:00Z".into(),
        ok: true,
        message: None,
        days: 3,
    });
    assert!(store.update_connection(&c).await.unwrap());
    assert_eq!(
        store.connection(&ws, "pc_01").await.unwrap(),
        Some(c.clone())
    );

    let days: Vec<String> = ["2026-08-01", "2026-08-02", "2026-08-03"]
        .map(String::from)
        .to_vec();
    let first = [
        row("2026-08-01", "claude-opus-4-6", 10),
        row("2026-08-02", "claude-opus-4-6", 20),
        row("2026-08-02", "", 5),
    ];
    store
        .replace_billed_days(&ws, "pc_01", &days, &first)
        .await
        .unwrap();
    assert_eq!(
        store
            .billed_rows(&ws, "2026-08-01", "2026-08-04")
            .await
            .unwrap(),
        first
    );
    // Half-open: the 2nd only.
    assert_eq!(
        store
            .billed_rows(&ws, "2026-08-02", "2026-08-03")
            .await
            .unwrap(),
        first[1..]
    );
    assert!(
        store
            .billed_rows(&other, "2026-08-01", "2026-08-04")
            .await
            .unwrap()
            .is_empty()
    );
    // A re-import replaces each day whole: the 2nd's web search is gone, the 1st changed.
    let second = [
        row("2026-08-01", "claude-opus-4-6", 11),
        row("2026-08-02", "claude-opus-4-6", 20),
    ];
    store
        .replace_billed_days(&ws, "pc_01", &days[..2], &second)
        .await
        .unwrap();
    assert_eq!(
        store
            .billed_rows(&ws, "2026-08-01", "2026-08-04")
            .await
            .unwrap(),
        second
    );

    // Removed: the connection and its figures; updating it then changes nothing.
    assert!(store.delete_connection(&ws, "pc_01").await.unwrap());
    assert!(!store.delete_connection(&ws, "pc_01").await.unwrap());
    assert!(!store.update_connection(&c).await.unwrap());
    assert_eq!(store.connection(&ws, "pc_01").await.unwrap(), None);
    assert!(
        store
            .billed_rows(&ws, "2026-08-01", "2026-08-04")
            .await
            .unwrap()
            .is_empty()
    );
}
