//! Alert rules, their history and one-time notices: the plan's limit of rules holds, a rule is
//! saved once per version, history comes newest first and goes with its rule, and a notice is
//! claimed once.

use llmtrack_shared::domain::alert::{
    AlertEvent, AlertRule, Condition, Delivery, RuleState, Transition,
};
use llmtrack_shared::domain::ids::WorkspaceId;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::{DynStore, Refusal, StoreError};

use super::new_workspace;
use super::support::now_ms;

fn rule(ws: &WorkspaceId, n: usize) -> AlertRule {
    AlertRule {
        id: format!("alr_{n:026}"),
        workspace: ws.clone(),
        name: format!("rule {n}"),
        condition: Condition::Forecast { budget_usd: 100.0 },
        filter: None,
        email: true,
        webhook_url: Some("https://hooks.example.com/x".into()),
        slack: None,
        state: RuleState::default(),
        created_ms: now_ms(),
        updated_ms: now_ms(),
        version: 0,
    }
}

pub async fn alert_rules_keep_their_limit_version_and_history(store: DynStore) {
    let ws = new_workspace(&store, Plan::Free).await;
    let other = new_workspace(&store, Plan::Free).await;
    store.create_alert_rule(&rule(&ws, 1), 2).await.unwrap();
    store.create_alert_rule(&rule(&ws, 2), 2).await.unwrap();
    assert!(matches!(
        store.create_alert_rule(&rule(&ws, 3), 2).await,
        Err(StoreError::Refused(Refusal::AlertRuleLimit))
    ));
    store.create_alert_rule(&rule(&other, 3), 2).await.unwrap();
    assert_eq!(store.alert_rules(&ws).await.unwrap().len(), 2);
    assert!(
        store
            .alert_rule(&other, &rule(&ws, 1).id)
            .await
            .unwrap()
            .is_none(),
        "scoped to its workspace"
    );

    // One save per version: the second writer of the same version loses.
    let mut a = store
        .alert_rule(&ws, &rule(&ws, 1).id)
        .await
        .unwrap()
        .unwrap();
    let mut b = a.clone();
    a.state = RuleState {
        level: 1,
        period: "2026-11".into(),
        since_ms: 5,
        values: Vec::new(),
        anomaly: None,
        each: Default::default(),
    };
    assert!(store.update_alert_rule(&mut a).await.unwrap());
    b.name = "stale".into();
    assert!(!store.update_alert_rule(&mut b).await.unwrap());
    let stored = store.alert_rule(&ws, &a.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.state.level, stored.name.as_str(), stored.version),
        (1, "rule 1", a.version)
    );

    for (i, t) in [
        None,
        Some(Transition::Resolved {
            value: 1.0,
            threshold: 2.0,
            about: None,
        }),
    ]
    .into_iter()
    .enumerate()
    {
        let e = AlertEvent {
            id: format!("01J{i:023}"),
            rule_id: a.id.clone(),
            workspace: ws.clone(),
            at_ms: now_ms() + i as i64,
            transition: t,
            deliveries: vec![Delivery {
                channel: "email".into(),
                ok: true,
                attempts: 1,
                detail: "sent to 1".into(),
            }],
        };
        store.append_alert_event(&e).await.unwrap();
    }
    let history = store.alert_events(&ws, &a.id, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0].id > history[1].id, "newest first");
    assert_eq!(store.alert_events(&ws, &a.id, 1).await.unwrap().len(), 1);

    // Deleting a rule takes its history, and frees room under the limit.
    assert!(store.delete_alert_rule(&ws, &a.id).await.unwrap());
    assert!(!store.delete_alert_rule(&ws, &a.id).await.unwrap());
    assert!(store.alert_events(&ws, &a.id, 10).await.unwrap().is_empty());
    store.create_alert_rule(&rule(&ws, 4), 2).await.unwrap();
}

pub async fn notices_are_claimed_once(store: DynStore) {
    let ws = new_workspace(&store, Plan::Free).await;
    let other = new_workspace(&store, Plan::Free).await;
    assert!(
        store
            .claim_notice(&ws, "usage:2026-11:80", 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_notice(&ws, "usage:2026-11:80", 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_notice(&ws, "usage:2026-11:100", 3)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_notice(&other, "usage:2026-11:80", 4)
            .await
            .unwrap()
    );
}
