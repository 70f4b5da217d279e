//! What the DynamoDB adapter writes, read back raw from the table: every item kind's layout (which
//! deployed tables hold), expiries, and no secrets.

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
use super::{ingest_key, quota, validated};
use llmtrack_shared::ports::prelude::*;

/// A new workspace named Acme, in UTC.
fn acme(plan: Plan) -> Workspace {
    Workspace {
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
    }
}

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
        prices: Default::default(),
        budgets: Default::default(),
        digest: Default::default(),
        tags: Default::default(),
        spans: Default::default(),
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
        prices: Default::default(),
        budgets: Default::default(),
        digest: Default::default(),
        tags: Default::default(),
        spans: Default::default(),
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
            custom: llmtrack_shared::domain::pricing::custom::Rules::none(),
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
        custom: llmtrack_shared::domain::pricing::custom::Rules::none(),
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
    let ws = acme(Plan::Free);
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

/// One item as stored, ids swapped for their names: `pk | sk | name:TYPE=value ...`.
/// Numbers in `times` are shown by their name.
fn layout_line(item: &RawItem, names: &[(String, &str)], times: &[(i64, &str)]) -> String {
    let mut attrs: Vec<(&String, &AttributeValue)> = item
        .iter()
        .filter(|(k, _)| *k != "pk" && *k != "sk")
        .collect();
    attrs.sort_by(|a, b| a.0.cmp(b.0));
    let mut line = format!(
        "{} | {} |",
        item["pk"].as_s().unwrap(),
        item["sk"].as_s().unwrap()
    );
    for (name, value) in attrs {
        let rendered = match value {
            // Bodies are the domain types' JSON: their shape is theirs, not the adapter's.
            AttributeValue::S(v) if v.starts_with('{') => "S=json".to_owned(),
            AttributeValue::S(v) => format!("S={v}"),
            AttributeValue::N(v) => match times.iter().find(|(t, _)| t.to_string() == *v) {
                Some((_, name)) => format!("N={name}"),
                None => format!("N={v}"),
            },
            AttributeValue::B(_) => "B".to_owned(),
            AttributeValue::Bool(v) => format!("BOOL={v}"),
            AttributeValue::Ss(v) => {
                let mut v = v.clone();
                v.sort();
                format!("SS={}", v.join(","))
            }
            AttributeValue::Ns(v) => {
                let mut v = v.clone();
                v.sort();
                format!("NS={}", v.join(","))
            }
            other => panic!("unexpected attribute type {other:?}"),
        };
        line.push_str(&format!(" {name}:{rendered}"));
    }
    mask(&names.iter().fold(line, |l, (id, name)| l.replace(id, name)))
}

/// Generated ids (ULIDs) become `{ulid}` and runs of 6 or more digits (times, hours, TTLs)
/// `{Nd}`, so the layout reads the same on every run.
fn mask(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let boundary = i == 0 || !chars[i - 1].is_ascii_alphanumeric();
        let run = chars[i..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
        let digits = chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if boundary && run == 26 && digits < 26 {
            out.push_str("{ulid}");
            i += run;
        } else if boundary && digits >= 6 && digits == run {
            out.push_str(&format!("{{{digits}d}}"));
            i += digits;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// The stored layout of every item kind: attribute names, types and key shapes. Tables already
/// deployed hold these items, so the adapter must keep writing (and reading) exactly them.
#[tokio::test]
async fn every_item_kind_keeps_its_stored_layout() {
    use llmtrack_shared::adapters::dynamodb::CrashPoint;
    use llmtrack_shared::domain::access::Role;
    use llmtrack_shared::domain::account::{
        Email, Invitation, LoginCode, Membership, Session, User, code_hash,
    };
    use llmtrack_shared::domain::alert::{
        AlertEvent, AlertRule, Condition, Delivery, RuleState, Transition,
    };
    use llmtrack_shared::domain::audit::AuditEntry;
    use llmtrack_shared::domain::billing::Billing;
    use llmtrack_shared::domain::ids::{InvitationId, UserId};
    use llmtrack_shared::ports::{Job, JobState};
    use std::time::Duration;

    const T: i64 = 1_700_000_000_000;
    let store = dynamo_store().await;
    let workspace = |name: &str| Workspace {
        id: WorkspaceId::generate(now_ms()),
        name: name.into(),
        plan: Plan::Pro,
        timezone: "Europe/Paris".into(),
        created_ms: T,
        deleting: None,
        prices: Default::default(),
        budgets: Default::default(),
        digest: Default::default(),
        tags: Default::default(),
        spans: Default::default(),
    };
    let ws = workspace("Acme");
    store.create_workspace(&ws).await.unwrap();
    let mut renamed = ws.clone();
    renamed.name = "Acme Inc".into();
    store.update_workspace(&renamed).await.unwrap();
    let prices: llmtrack_shared::domain::pricing::custom::WorkspacePrices = serde_json::from_value(
        serde_json::json!({"version": 1, "rules": [{"id": "pr_1", "provider": "openai", "model": "*",
            "kind": "discount", "percent": 10, "updated_at": "2023-11-14T22:13:20Z"}]}),
    )
    .unwrap();
    assert!(store.set_prices(&ws.id, &prices).await.unwrap());
    let tags = llmtrack_shared::domain::tags::TagKeys::default()
        .declare(&["team".to_owned()], T)
        .unwrap()
        .unwrap();
    assert!(store.set_tags(&ws.id, &tags).await.unwrap());
    let ws = ws.id;

    // People.
    let email = Email::parse("ada@example.com").unwrap();
    let user = User {
        id: UserId::generate(now_ms()),
        email: email.clone(),
        created_ms: T,
        reports_opt_out: false,
    };
    store.upsert_user(&user).await.unwrap();
    store.set_reports_opt_out(&user.id, true).await.unwrap();
    let code = LoginCode {
        email: email.clone(),
        hash: code_hash(&email, "123456"),
        expires_ms: T + 600_000,
        attempts: 0,
    };
    store.put_login_code(&code).await.unwrap();
    store
        .check_login_code(&email, &code_hash(&email, "999999"), T)
        .await
        .unwrap();
    store
        .hit_rate_limit("signin:ada", T, 60_000, 2)
        .await
        .unwrap();
    let session = Session {
        hash: "sesshash".into(),
        user_id: user.id.clone(),
        created_ms: T,
        expires_ms: T + 86_400_000,
    };
    store.create_session(&session).await.unwrap();
    store
        .add_member(
            &Membership {
                workspace_id: ws.clone(),
                user_id: user.id.clone(),
                email: email.clone(),
                role: Role::Owner,
                since_ms: T,
            },
            10,
        )
        .await
        .unwrap();
    let invitation = Invitation {
        id: InvitationId::generate(now_ms()),
        workspace_id: ws.clone(),
        email: Email::parse("bob@example.com").unwrap(),
        role: Role::Viewer,
        invited_by: user.id.clone(),
        created_ms: T,
        expires_ms: T + 1_000,
    };
    store.create_invitation(&invitation).await.unwrap();

    // Keys.
    let raw = RawKey::generate();
    let key = ApiKey {
        created_by: Some(user.id.to_string()),
        ..ingest_key(&ws, &raw)
    };
    store.create_key(&key, 10).await.unwrap();
    store.touch_key(&key, T + 5).await.unwrap();

    // Audit, alerts, notices.
    let audit = AuditEntry {
        id: "01JAUDIT000000000000000000".into(),
        workspace_id: ws.clone(),
        at_ms: T,
        actor_id: user.id.to_string(),
        actor_email: Some("ada@example.com".into()),
        action: "key.created".into(),
        target: Some(key.id.to_string()),
        ip: Some("192.0.2.1".into()),
    };
    store.append_audit(&audit).await.unwrap();
    let bare = AuditEntry {
        id: "01JAUDIT000000000000000001".into(),
        actor_email: None,
        target: None,
        ip: None,
        ..audit.clone()
    };
    store.append_audit(&bare).await.unwrap();
    let rule = AlertRule {
        id: "alr_rule".into(),
        workspace: ws.clone(),
        name: "budget".into(),
        condition: Condition::Forecast { budget_usd: 100.0 },
        filter: None,
        email: true,
        webhook_url: None,
        slack: None,
        state: RuleState::default(),
        created_ms: T,
        updated_ms: T,
        version: 0,
    };
    store.create_alert_rule(&rule, 10).await.unwrap();
    store
        .append_alert_event(&AlertEvent {
            id: "01JALERTEVENT".into(),
            rule_id: rule.id.clone(),
            workspace: ws.clone(),
            at_ms: T,
            transition: Some(Transition::Resolved {
                value: 1.0,
                threshold: 2.0,
                about: None,
            }),
            deliveries: vec![Delivery {
                channel: "email".into(),
                ok: true,
                attempts: 1,
                detail: "sent".into(),
            }],
        })
        .await
        .unwrap();
    store.claim_notice(&ws, "report:2023-11", T).await.unwrap();

    // Billing.
    let mut billing = Billing::new(ws.clone());
    billing.customer_id = Some("cus_ada".into());
    store
        .save_billing(&mut billing, Plan::Team, Some(T + 9), Some("evt_1"), T)
        .await
        .unwrap();

    // Jobs: one queued, one finished with an expiry; a deletion under way elsewhere.
    let job = |id: &str, w: &WorkspaceId, state: JobState, expires_ms: Option<i64>| Job {
        id: id.into(),
        workspace: w.clone(),
        kind: "export".into(),
        state,
        spec: serde_json::json!({}),
        progress: serde_json::Value::Null,
        result: None,
        created_ms: T,
        updated_ms: T,
        version: 0,
        expires_ms,
    };
    store
        .create_job(&job("exp_queued", &ws, JobState::Queued, None))
        .await
        .unwrap();
    store
        .create_job(&job("exp_done", &ws, JobState::Done, Some(T + 86_400_000)))
        .await
        .unwrap();
    let doomed = workspace("Doomed");
    store.create_workspace(&doomed).await.unwrap();
    let mut deletion = job("del_ws", &doomed.id, JobState::Queued, None);
    deletion.kind = "deletion".into();
    assert!(store.begin_deletion(&deletion, true).await.unwrap());

    // Events (one with a guard), rollups, deltas; a finished compaction (watermark), one that
    // crashed (its lock), and a batch whose writer crashed (its marker).
    // All in the last full hour, so every run writes the same items.
    let hour = (hour_of(now_ms()) - 1) * 3_600_000;
    let events = validated(
        &[
            event(1, hour + 1_000),
            serde_json::json!({"id": "no-time", "provider": "openai", "model": "gpt-4o", "input_tokens": 5}),
        ],
        "production",
    );
    store.ingest(&ws, &events, &quota(100)).await.unwrap();
    let immediate = || {
        DynamoStore::new(store.client().clone(), store.table())
            .with_immediate_compaction()
            .with_recovery_lease(Duration::ZERO)
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(immediate().compact_now(&ws).await.unwrap(), 1);
    let later = validated(&[event(2, hour + 2_000)], "production");
    store.ingest(&ws, &later, &quota(100)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        immediate()
            .with_crash_at(Some(CrashPoint::AfterCompactionRollups))
            .compact_now(&ws)
            .await
            .is_err()
    );
    let crashed = DynamoStore::new(store.client().clone(), store.table())
        .with_crash_at(Some(CrashPoint::AfterEvents));
    let last = validated(&[event(3, hour + 3_000)], "production");
    assert!(crashed.ingest(&ws, &last, &quota(100)).await.is_err());

    let names: Vec<(String, &str)> = vec![
        (ws.to_string(), "{ws}"),
        (doomed.id.to_string(), "{doomed}"),
        (user.id.to_string(), "{user}"),
        (key.id.to_string(), "{key}"),
        (key.hash.0.clone(), "{hash}"),
        (key.prefix.clone(), "{prefix}"),
        (invitation.id.to_string(), "{inv}"),
        (code.hash.clone(), "{code}"),
        (quota(1).month, "{month}"),
    ];
    let day = 86_400_000;
    let times = [
        (T, "{T}"),
        (T + 5, "{T+5}"),
        (T + 9, "{T+9}"),
        (T + 1_000, "{T+1s}"),
        (T + 600_000, "{T+10m}"),
        (T + day, "{T+1d}"),
        ((T + 1_000) / 1000, "{T+1s}/1000"),
        ((T + 60_000) / 1000, "{T+1m}/1000"),
        ((T + 600_000) / 1000, "{T+10m}/1000"),
        ((T + day) / 1000, "{T+1d}/1000"),
        ((T + 30 * day) / 1000, "{T+30d}/1000"),
        ((T + 400 * day) / 1000, "{T+400d}/1000"),
    ];
    // Every view's rollup items look alike: three views stand for them all.
    let shown = |i: &RawItem| {
        let pk = pk_of(i);
        !pk.starts_with(&format!("W#{ws}#R#"))
            || ["total", "model", "model@feature:search"]
                .iter()
                .any(|v| pk.ends_with(&format!("#R#{v}")))
    };
    let lines: std::collections::BTreeSet<String> = scan(&store)
        .await
        .iter()
        .filter(|i| shown(i))
        .map(|i| layout_line(i, &names, &times))
        .collect();
    let actual = lines.into_iter().collect::<Vec<_>>().join("\n");
    assert_eq!(actual, EXPECTED_LAYOUT.trim(), "\n{actual}\n");
}

const EXPECTED_LAYOUT: &str = r#"
BILLDUE | {13d}#{ws} | ws:S={ws}
CODE#ada@example.com | CODE | attempts:N=1 exp:N={T+10m} expires_at:N={T+10m}/1000 hash:S={code}
CUS#cus_ada | CUS | ws:S={ws}
EMAIL#ada@example.com | EMAIL | user:S={user}
JOB#{doomed} | del_ws | d:S=json kind:S=deletion v:N=0
JOB#{ws} | exp_done | d:S=json expires_at:N={T+1d}/1000 kind:S=export v:N=0
JOB#{ws} | exp_queued | d:S=json kind:S=export v:N=0
JOBS | {13d}#{doomed}#del_ws |
JOBS | {13d}#{ws}#exp_queued |
KEY#{hash} | KEY | by:S={user} created:N={T} id:S={key} name:S=backend prefix:S={prefix} scope:S=ingest src:S=production state:S=active used:N={T+5} ws:S={ws}
RL#signin:ada | {13d} | expires_at:N={T+1m}/1000 hits:N=2
SESS#sesshash | SESS | created:N={T} exp:N={T+1d} expires_at:N={T+1d}/1000 user:S={user}
STRIPE#evt_1 | EVT | expires_at:N={T+30d}/1000
USER#{user} | MEMBER#{ws} | email:S=ada@example.com role:S=owner since:N={T} user:S={user} ws:S={ws}
USER#{user} | SESS#sesshash | expires_at:N={T+1d}/1000
USER#{user} | USER | created:N={T} email:S=ada@example.com nr:BOOL=true
W#{ws}#ALERTLOG | alr_rule#01JALERTEVENT | d:S=json expires_at:N={T+400d}/1000
W#{ws}#AUDIT | {ulid} | action:S=key.created actor:S={user} actor_email:S=ada@example.com at:N={T} expires_at:N={T+400d}/1000 ip:S=192.0.2.1 target:S={key}
W#{ws}#AUDIT | {ulid} | action:S=key.created actor:S={user} at:N={T} expires_at:N={T+400d}/1000
W#{ws}#B | cmp | batches:SS={ulid} created:N={13d} id:S=cmp_{ulid}
W#{ws}#B | wm | upto:S={ulid}
W#{ws}#B | {ulid} | created:N={13d} hours:NS={6d} month:S={month} reserved:N=1
W#{ws}#D | {ulid}#000 | d:B expires_at:N={10d} f:N=5
W#{ws}#E#{6d} | {13d}#evt-1 | b:S={ulid} d:S=json expires_at:N={10d}
W#{ws}#E#{6d} | {13d}#evt-2 | b:S={ulid} d:S=json expires_at:N={10d}
W#{ws}#E#{6d} | {13d}#evt-3 | b:S={ulid} d:S=json expires_at:N={10d}
W#{ws}#E#{6d} | {13d}#no-time | b:S={ulid} d:S=json expires_at:N={10d}
W#{ws}#ID#no-time | ID | epk:S=W#{ws}#E#{6d} esk:S={13d}#no-time expires_at:N={10d}
W#{ws}#R#model | {10d}#claude-sonnet-4 | d:B expires_at:N={10d} p:SS=cmp_{ulid} v:N=1
W#{ws}#R#model | {10d}#gpt-4o | d:B expires_at:N={10d} p:SS=cmp_{ulid} v:N=1
W#{ws}#R#model | {10d}#gpt-4o-mini | d:B expires_at:N={10d} p:SS=cmp_{ulid} v:N=1
W#{ws}#R#model@feature:search | {10d}#gpt-4o-mini | d:B expires_at:N={10d} p:SS=cmp_{ulid} v:N=1
W#{ws}#R#total | {10d}# | d:B expires_at:N={10d} p:SS={ulid} v:N=1
W#{ws}#R#total | {10d}# | d:B expires_at:N={10d} p:SS={ulid} v:N=2
WS#{doomed} | WS | created:N={T} deleting:S=del_ws keys:N=0 members:N=0 name:S=Doomed owners:N=0 plan:S=pro tz:S=Europe/Paris
WS#{ws} | ALERT#alr_rule | d:S=json v:N=0
WS#{ws} | BILLING | cus:S=cus_ada d:S=json due:N={T+9} v:N=1
WS#{ws} | INV#{inv} | by:S={user} created:N={T} email:S=bob@example.com exp:N={T+1s} expires_at:N={T+1s}/1000 role:S=viewer
WS#{ws} | KEY#{key} | hash:S={hash}
WS#{ws} | MEMBER#{user} | email:S=ada@example.com role:S=owner since:N={T} user:S={user} ws:S={ws}
WS#{ws} | NOTICE#report:2023-11 | at:N={T}
WS#{ws} | USAGE#{month} | n:N=4
WS#{ws} | WS | alerts:N=1 created:N={T} keys:N=1 members:N=1 name:S=Acme Inc owners:N=1 plan:S=team prices:S=json pv:N=1 spans:S=json tags:S=json tv:N=1 tz:S=Europe/Paris
WSIDX | {doomed} |
WSIDX | {ws} |
"#;

/// Delta items an earlier release wrote (five-part groups, no format attribute) are folded as
/// that release meant them, once this one compacts.
#[tokio::test]
async fn delta_items_of_an_earlier_release_fold_as_they_were_meant() {
    let store = dynamo_store().await.with_immediate_compaction();
    let ws = acme(Plan::Pro);
    store.create_workspace(&ws).await.unwrap();
    let now = now_ms();
    // Names the table prices as sent: the earlier release grouped them the same way.
    let raw: Vec<_> = (0..4i64)
        .map(|i| {
            let model = ["gpt-4o", "gpt-4o-mini"][i as usize % 2];
            serde_json::json!({"id": format!("old-{i}"), "timestamp": now - i * 3_600_000,
                "provider": "openai", "model": model,
                "feature": "chat", "input_tokens": 100 + i, "output_tokens": 7})
        })
        .collect();
    store
        .ingest(&ws.id, &validated_for(Plan::Pro, &raw), &quota(100))
        .await
        .unwrap();
    let deltas: Vec<RawItem> = scan(&store)
        .await
        .into_iter()
        .filter(|i| pk_of(i) == format!("W#{}#D", ws.id))
        .collect();
    assert!(!deltas.is_empty(), "the batch's deltas are pending");
    for mut item in deltas {
        let AttributeValue::B(d) = &item["d"] else {
            panic!("a delta holds bytes")
        };
        let old = super::upgrade::as_format_1(d.as_ref());
        item.insert("d".into(), AttributeValue::B(old.into()));
        assert!(
            item.remove("f").is_some(),
            "this release records the format"
        );
        store
            .client()
            .put_item()
            .table_name(store.table())
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }
    store.compact_now(&ws.id).await.unwrap();
    let hours = (hour_of(now) - 4) * 3_600_000..(hour_of(now) + 1) * 3_600_000;
    assert_rollups_match_events_between(&store, &ws.id, hours.start, hours.end).await;
}
