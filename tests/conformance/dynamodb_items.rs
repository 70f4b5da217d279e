//! What the DynamoDB adapter writes, read back raw from the table: expiries, and no secrets.

use aws_sdk_dynamodb::types::AttributeValue;
use llmtrack_shared::adapters::dynamodb::DynamoStore;
use llmtrack_shared::domain::apikey::{ApiKey, KeyState, RawKey, Scope};
use llmtrack_shared::domain::event::Event;
use llmtrack_shared::domain::ids::{KeyId, WorkspaceId};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::retention;
use llmtrack_shared::domain::time::hour_of;
use llmtrack_shared::ports::Workspace;

use super::support::*;
use super::{quota, validated};
use llmtrack_shared::ports::prelude::*;

async fn scan(store: &DynamoStore) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    scan_table(store).await
}

#[tokio::test]
async fn events_carry_their_plan_expiry_as_ttl() {
    let store = dynamo_store().await;
    let ws = Workspace {
        id: WorkspaceId::generate(now_ms()),
        name: "Acme".into(),
        plan: Plan::Pro,
        timezone: "UTC".into(),
        created_ms: now_ms(),
        deleting: None,
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
        id: WorkspaceId::generate(now_ms()),
        name: "Acme".into(),
        plan: Plan::Free,
        timezone: "UTC".into(),
        created_ms: now_ms(),
        deleting: None,
    };
    store.create_workspace(&ws).await.unwrap();
    let mut raws = Vec::new();
    for scope in [Scope::Ingest, Scope::Read] {
        let raw = RawKey::generate();
        let key = ApiKey {
            id: KeyId::generate(now_ms()),
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

/// Events validated for a plan (`validated` uses pro's window).
fn validated_for(plan: Plan, raw: &[serde_json::Value]) -> Vec<Event> {
    let ctx = llmtrack_shared::domain::event::Context {
        now_ms: now_ms(),
        source: "production",
        plan,
        prices: llmtrack_shared::domain::pricing::PriceTable::bundled(),
    };
    raw.iter()
        .map(|v| {
            let raw = serde_json::value::to_raw_value(v).unwrap();
            llmtrack_shared::domain::event::validate(&raw, &ctx)
                .unwrap()
                .0
        })
        .collect()
}

type RawItem = std::collections::HashMap<String, AttributeValue>;

fn ttl_of(item: &RawItem) -> i64 {
    item.get("expires_at")
        .unwrap_or_else(|| panic!("no expires_at on {item:?}"))
        .as_n()
        .unwrap()
        .parse()
        .unwrap()
}

fn pk_of(item: &RawItem) -> &str {
    item["pk"].as_s().unwrap()
}

/// The expiry every event item, id guard and rollup item of the workspace should carry under a
/// plan keeping `history_ms`; returns how many items of each kind it checked.
async fn assert_expiries(store: &DynamoStore, ws: &WorkspaceId, history_ms: i64) -> [usize; 3] {
    let items = scan(store).await;
    let mut counts = [0; 3];
    for item in items
        .iter()
        .filter(|i| pk_of(i).starts_with(&format!("W#{ws}#E#")))
    {
        let e: Event = serde_json::from_str(item["d"].as_s().unwrap()).unwrap();
        assert_eq!(e.expires_ms, e.ts_ms + history_ms, "{}", e.id);
        assert_eq!(ttl_of(item), (e.ts_ms + history_ms) / 1000, "{}", e.id);
        if e.idempotent_without_timestamp() {
            let guard = items
                .iter()
                .find(|i| pk_of(i) == format!("W#{ws}#ID#{}", e.id))
                .expect("the id's guard item");
            assert_eq!(ttl_of(guard), ttl_of(item), "guard of {}", e.id);
            counts[1] += 1;
        }
        counts[0] += 1;
    }
    for item in items
        .iter()
        .filter(|i| pk_of(i).starts_with(&format!("W#{ws}#R#")))
    {
        let sk = item["sk"].as_s().unwrap();
        let hour: i64 = sk.split_once('#').unwrap().0.parse().unwrap();
        assert_eq!(
            ttl_of(item),
            retention::rollup_expiry_ms(hour, history_ms) / 1000,
            "{} {sk}",
            pk_of(item)
        );
        counts[2] += 1;
    }
    counts
}

#[tokio::test]
async fn rollups_carry_their_expiry_and_retention_moves_it() {
    let store = dynamo_store().await.with_immediate_compaction();
    let ws = Workspace {
        id: WorkspaceId::generate(now_ms()),
        name: "Acme".into(),
        plan: Plan::Free,
        timezone: "UTC".into(),
        created_ms: now_ms(),
        deleting: None,
    };
    store.create_workspace(&ws).await.unwrap();
    let now = now_ms();
    let mut raw: Vec<_> = (0..3)
        .map(|i| event(i, now - i as i64 * 5 * 3_600_000))
        .collect();
    raw.push(serde_json::json!({"id": "no-time", "provider": "openai", "model": "gpt-4o", "input_tokens": 5}));
    let events = validated_for(Plan::Free, &raw);
    store.ingest(&ws.id, &events, &quota(100)).await.unwrap();
    // Fold the deferred views, so their rollup items exist too.
    store.compact_now(&ws.id).await.unwrap();

    let free = Plan::Free.history_ms();
    let [events_seen, guards, rollups] = assert_expiries(&store, &ws.id, free).await;
    assert_eq!((events_seen, guards), (4, 1));
    assert!(
        rollups > 4 * 7,
        "the deferred views were compacted: {rollups} items"
    );

    let team = Plan::Team.history_ms();
    let from = hour_of(now - 86_400_000);
    let to = hour_of(now) + 2;
    let r = store
        .apply_retention(&ws.id, from, to, team, now_ms())
        .await
        .unwrap();
    assert_eq!((r.events_kept, r.events_deleted), (4, 0));
    assert_eq!((r.rollups_kept, r.rollups_deleted), (rollups as u64, 0));
    assert_eq!(
        assert_expiries(&store, &ws.id, team).await,
        [events_seen, guards, rollups]
    );
}
