//! What the DynamoDB adapter writes, read back raw from the table: expiries, and no secrets.

use aws_sdk_dynamodb::types::AttributeValue;
use llmtrack_shared::domain::apikey::{ApiKey, KeyState, RawKey, Scope};
use llmtrack_shared::domain::ids::{KeyId, WorkspaceId};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::{Store, Workspace};

use super::support::*;
use super::{quota, validated};

async fn scan(
    store: &llmtrack_shared::adapters::dynamodb::DynamoStore,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    scan_table(store).await
}

#[tokio::test]
async fn events_carry_their_plan_expiry_as_ttl() {
    let store = dynamo_store().await;
    let ws = Workspace {
        id: WorkspaceId::generate(),
        name: "Acme".into(),
        plan: Plan::Pro,
        timezone: "UTC".into(),
        created_ms: now_ms(),
    };
    store.create_workspace(&ws).await.unwrap();
    let ts = now_ms() - 3_600_000;
    let events = validated(&[event(1, ts)], "production");
    store.ingest(&ws.id, &events, &quota(100)).await.unwrap();
    let items = scan(&store).await;
    let event_items: Vec<_> = items
        .iter()
        .filter(|i| i["pk"].as_s().unwrap().contains("#E#"))
        .collect();
    assert_eq!(event_items.len(), 1);
    let ttl: i64 = event_items[0]["expires_at"]
        .as_n()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ttl, (ts + Plan::Pro.history_ms()) / 1000);
}

#[tokio::test]
async fn no_raw_key_is_stored() {
    let store = dynamo_store().await;
    let ws = Workspace {
        id: WorkspaceId::generate(),
        name: "Acme".into(),
        plan: Plan::Free,
        timezone: "UTC".into(),
        created_ms: now_ms(),
    };
    store.create_workspace(&ws).await.unwrap();
    let mut raws = Vec::new();
    for scope in [Scope::Ingest, Scope::Read] {
        let raw = RawKey::generate();
        let key = ApiKey {
            id: KeyId::generate(),
            workspace_id: ws.id.clone(),
            name: "k".into(),
            source: "production".into(),
            scope,
            state: KeyState::Active,
            hash: raw.hash(),
            prefix: raw.display_prefix(),
            created_ms: now_ms(),
            created_by: None,
            last_used_ms: None,
        };
        store.create_key(&key, 10).await.unwrap();
        store.touch_key(&key, now_ms()).await.unwrap();
        raws.push(raw);
    }
    // Events that carry a key in metadata are redacted before they reach the store.
    let leaky = serde_json::json!({"provider": "openai", "model": "gpt-4o", "metadata": {"oops": raws[0].expose()}});
    let (events, _) = {
        let ctx = llmtrack_shared::domain::event::Context {
            now_ms: now_ms(),
            source: "production",
            plan: Plan::Free,
            prices: llmtrack_shared::domain::pricing::PriceTable::bundled(),
        };
        let raw = serde_json::value::to_raw_value(&leaky).unwrap();
        let (e, redactions) = llmtrack_shared::domain::event::validate(&raw, &ctx).unwrap();
        assert_eq!(redactions.len(), 1);
        (vec![e], redactions)
    };
    store.ingest(&ws.id, &events, &quota(100)).await.unwrap();
    let dump = format!("{:?}", scan(&store).await);
    for raw in &raws {
        assert!(!dump.contains(raw.expose()), "a raw key is in the table");
        assert!(
            dump.contains(&raw.hash().0),
            "the key's hash should be stored"
        );
    }
}
