//! Deleting a whole workspace, end to end through the deletion job, on SQLite and a folder, and
//! on DynamoDB and S3 (moto). Two workspaces are filled with everything a workspace can have;
//! one is deleted; then the whole table (or database) and the whole bucket (or folder) are read
//! back raw: nothing of the deleted workspace is left but its deletion record, and the other
//! workspace's items are exactly as they were. A run aborted midway is finished by the next,
//! with the same end state and the same receipt.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use llmtrack::admin;
use llmtrack_deletion::job::{self, Deps, Spec};
use llmtrack_shared::adapters::dynamodb::DynamoStore;
use llmtrack_shared::adapters::folder::FolderArchive;
use llmtrack_shared::adapters::outbox::Outbox;
use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::account::{Email, Invitation};
use llmtrack_shared::domain::apikey::Scope as KeyScope;
use llmtrack_shared::domain::audit::AuditEntry;
use llmtrack_shared::domain::billing::{Billing, SubscriptionStatus};
use llmtrack_shared::domain::deletion::{JOB_KIND, RECORD_KEPT_MS, Receipt, Scope};
use llmtrack_shared::domain::ids::{InvitationId, UserId, WorkspaceId};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::time::{HOUR_MS, hour_of, month_of};
use llmtrack_shared::ports::{
    Archive as _, DynArchive, DynStore, IngestOutcome, Job, JobState, Quota, SystemClock,
};
use serde_json::json;

use super::support::*;
use super::validated;

/// What `fill` put in a workspace, as the receipt should count it.
struct Filled {
    ws: WorkspaceId,
    owner: UserId,
    events: u64,
}

const HOURS: i64 = 4;
const EVENTS_PER_HOUR: usize = 20;

/// People are accounts of their own: their addresses never name the workspace (a workspace's
/// deletion leaves its members' accounts).
///
/// A workspace with events over several hours (one sent without a timestamp), rollups of every
/// view, two keys, three members (one of them also in the other workspace), an invitation,
/// audit entries, an alert rule with its history and a usage notice, a billing record with its
/// customer and due entries, an export job and its file, and a monthly report.
async fn fill(store: &DynStore, archive: &DynArchive, name: &str, shared: &str) -> Filled {
    let now = now_ms();
    let ws = admin::create_workspace(store.as_ref(), name, Plan::Team, now)
        .await
        .unwrap()
        .id;
    let owner = admin::add_member(
        store.as_ref(),
        ws.as_str(),
        &format!(
            "owner-{}@example.com",
            ulid::Ulid::new().to_string().to_lowercase()
        ),
        Role::Owner,
        now,
    )
    .await
    .unwrap()
    .user_id;
    admin::add_member(store.as_ref(), ws.as_str(), shared, Role::Admin, now)
        .await
        .unwrap();
    admin::add_member(
        store.as_ref(),
        ws.as_str(),
        &format!(
            "viewer-{}@example.com",
            ulid::Ulid::new().to_string().to_lowercase()
        ),
        Role::Viewer,
        now,
    )
    .await
    .unwrap();
    for source in ["production", "staging"] {
        admin::create_key(
            store.as_ref(),
            ws.as_str(),
            "k",
            source,
            KeyScope::Ingest,
            now,
        )
        .await
        .unwrap();
    }
    store
        .create_invitation(&Invitation {
            id: InvitationId::generate(now_ms()),
            workspace_id: ws.clone(),
            email: Email::parse(&format!(
                "invitee-{}@example.com",
                ulid::Ulid::new().to_string().to_lowercase()
            ))
            .unwrap(),
            role: Role::Viewer,
            invited_by: owner.clone(),
            created_ms: now,
            expires_ms: now + 86_400_000,
        })
        .await
        .unwrap();
    for action in ["key.create", "member.add"] {
        let entry = AuditEntry::new(&ws, now, owner.as_str(), None, action, None, None);
        store.append_audit(&entry).await.unwrap();
    }

    let mut events = 0;
    let first = hour_of(now) - HOURS;
    for hour in first..first + HOURS {
        let raw: Vec<_> = (0..EVENTS_PER_HOUR)
            .map(|i| event(i, hour * HOUR_MS + (i as i64) * 60_000 + 7))
            .collect();
        let source = if hour % 2 == 0 {
            "production"
        } else {
            "staging"
        };
        let quota = Quota {
            month: month_of(hour * HOUR_MS),
            limit: 1_000_000,
        };
        let outcome = store.ingest(&ws, &validated(&raw, source), &quota).await;
        assert!(
            matches!(outcome, Ok(IngestOutcome::Stored(_))),
            "{outcome:?}"
        );
        events += EVENTS_PER_HOUR as u64;
    }
    // Sent without a timestamp: stored with an id guard on DynamoDB.
    let untimed = validated(
        &[
            json!({"id": format!("untimed-{name}"), "provider": "openai", "model": "gpt-4o",
            "input_tokens": 10, "output_tokens": 1}),
        ],
        "production",
    );
    store
        .ingest(&ws, &untimed, &super::quota(1_000_000))
        .await
        .unwrap();
    events += 1;
    store.finish_writes(&ws).await.unwrap();

    let mut billing = Billing::new(ws.clone());
    billing.customer_id = Some(format!("cus_{}", ws.as_str()));
    billing.subscription_id = Some(format!("sub_{}", ws.as_str()));
    billing.status = SubscriptionStatus::Canceled;
    billing.plan = Plan::Team;
    store
        .save_billing(&mut billing, Plan::Team, Some(now + 86_400_000), None, now)
        .await
        .unwrap();

    let rule = llmtrack_shared::domain::alert::AlertRule {
        id: format!("alr_{}", ulid::Ulid::new().to_string().to_lowercase()),
        workspace: ws.clone(),
        name: "Budget".into(),
        condition: llmtrack_shared::domain::alert::Condition::Forecast { budget_usd: 100.0 },
        filter: None,
        email: true,
        webhook_url: None,
        slack: None,
        state: Default::default(),
        created_ms: now,
        updated_ms: now,
        version: 0,
    };
    store.create_alert_rule(&rule, 10).await.unwrap();
    store
        .append_alert_event(&llmtrack_shared::domain::alert::AlertEvent {
            id: ulid::Ulid::new().to_string(),
            rule_id: rule.id.clone(),
            workspace: ws.clone(),
            at_ms: now,
            transition: None,
            deliveries: vec![],
        })
        .await
        .unwrap();
    store
        .claim_notice(&ws, "usage:2026-11:80", now)
        .await
        .unwrap();

    // A provider connection and two days of its bill.
    use llmtrack_shared::domain::reconciliation::{BilledRow, Connection, Provider};
    let connection = Connection {
        workspace: ws.clone(),
        id: format!("pc_{}", ulid::Ulid::new().to_string().to_lowercase()),
        provider: Provider::OpenAi,
        sealed_key: vec![1, 2, 3],
        key_hint: "…wxyz".into(),
        scope: vec![],
        created_at_ms: now,
        imported_through: Some("2026-11-02".into()),
        last_import: None,
    };
    store.save_connection(&connection).await.unwrap();
    let mut row = BilledRow::new("2026-11-01", Provider::OpenAi, "gpt-4o", "proj_a");
    row.cost_pico = 1_000_000_000_000;
    store
        .replace_billed_days(
            &ws,
            &connection.id,
            &["2026-11-01".into(), "2026-11-02".into()],
            &[row],
        )
        .await
        .unwrap();

    let export = Job {
        id: format!("exp_{}", ulid::Ulid::new().to_string().to_lowercase()),
        workspace: ws.clone(),
        kind: "export".into(),
        state: JobState::Done,
        spec: json!({}),
        progress: json!({}),
        result: None,
        created_ms: now,
        updated_ms: now,
        version: 0,
        expires_ms: None,
    };
    store.create_job(&export).await.unwrap();
    archive
        .put(
            &format!("exports/{ws}/{}.csv", export.id),
            "text/csv",
            b"ts,model\n".to_vec(),
        )
        .await
        .unwrap();
    archive
        .put(
            &format!("reports/{ws}/2026-10.json"),
            "application/json",
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    Filled { ws, owner, events }
}

fn deps(store: &DynStore, archive: &DynArchive, outbox: &std::path::Path, page: usize) -> Deps {
    Deps {
        store: llmtrack_deletion::job::DeletionPorts::of(store),
        clock: Arc::new(SystemClock),
        archive: archive.clone(),
        mailer: Arc::new(Outbox::new(outbox.to_owned()).unwrap()),
        payments: None,
        public_url: "http://127.0.0.1:8080".into(),
        page,
        // The purge tests run the job as soon as it is accepted, on both stores.
        in_flight_ms: 0,
        backups: llmtrack_shared::domain::deletion::Backups::Operator,
    }
}

/// Accepts the deletion of `f`'s workspace, as the API does.
async fn begin(store: &DynStore, f: &Filled) -> Job {
    let spec = Spec {
        scope: Scope::Workspace,
        requested_by: f.owner.clone(),
        notify: Some(job::Notify {
            email: "owner@example.com".into(),
            workspace_name: "Doomed".into(),
        }),
        purge_after_ms: now_ms(),
    };
    let job = job::new_job(&f.ws, &spec, now_ms()).unwrap();
    assert!(store.begin_deletion(&job, true).await.unwrap());
    assert!(
        !store
            .begin_deletion(&job::new_job(&f.ws, &spec, now_ms()).unwrap(), true)
            .await
            .unwrap(),
        "a second whole deletion is refused"
    );
    let ws = store.workspace(&f.ws).await.unwrap().unwrap();
    assert_eq!(ws.deleting.as_deref(), Some(job.id.as_str()));
    job
}

/// The receipt's counts: what `fill` made (rollups and audit entries as stored).
fn assert_receipt(receipt: &Receipt, f: &Filled) {
    let d = &receipt.deleted;
    assert_eq!(d.get("events"), Some(&f.events), "{d:?}");
    assert_eq!(d.get("keys"), Some(&2), "{d:?}");
    assert_eq!(d.get("members"), Some(&3), "{d:?}");
    assert_eq!(d.get("invitations"), Some(&1), "{d:?}");
    assert_eq!(d.get("alert_rules"), Some(&1), "{d:?}");
    assert_eq!(d.get("provider_connections"), Some(&1), "{d:?}");
    assert_eq!(d.get("billed_rows"), Some(&1), "{d:?}");
    assert_eq!(d.get("billing_records"), Some(&1), "{d:?}");
    assert_eq!(d.get("archive_objects"), Some(&2), "{d:?}");
    assert!(d.get("audit_entries").is_some_and(|n| *n >= 2), "{d:?}");
    // Every view of 5 hours, several values each.
    assert!(d.get("rollups").is_some_and(|n| *n > 100), "{d:?}");
    assert!(receipt.finished_ms.is_some_and(|f| f >= receipt.started_ms));
}

async fn finished(store: &DynStore, f: &Filled, id: &str) -> Job {
    let job = store
        .job(&f.ws, id)
        .await
        .unwrap()
        .expect("the record stays");
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.kind, JOB_KIND);
    assert!(
        job.expires_ms.is_some(),
        "the record is kept for a documented time"
    );
    assert!(
        job.spec["notify"].is_null(),
        "the receipt's address is dropped once sent"
    );
    job
}

fn receipt_of(job: &Job) -> Receipt {
    serde_json::from_value(job.result.clone().unwrap()).unwrap()
}

/// Every row of every table of a SQLite file, as text.
fn sqlite_rows(path: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut rows = Vec::new();
    for t in tables {
        let mut stmt = c.prepare(&format!("SELECT * FROM {t}")).unwrap();
        let n = stmt.column_count();
        let mut q = stmt.query([]).unwrap();
        while let Some(r) = q.next().unwrap() {
            let cols: Vec<String> = (0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        String::from_utf8_lossy(b).into_owned()
                    }
                    other => format!("{other:?}"),
                })
                .collect();
            rows.push(format!("{t}: {}", cols.join(" | ")));
        }
    }
    rows
}

/// Every item of the table, as text (attribute names and values, binary ones included).
async fn dynamo_rows(store: &DynamoStore) -> Vec<String> {
    scan_table(store)
        .await
        .into_iter()
        .map(|item| {
            let mut parts: Vec<String> = item
                .iter()
                .map(|(k, v)| match v {
                    aws_sdk_dynamodb::types::AttributeValue::B(b) => {
                        format!("{k}={}", String::from_utf8_lossy(b.as_ref()))
                    }
                    other => format!("{k}={other:?}"),
                })
                .collect();
            parts.sort();
            parts.join(" | ")
        })
        .collect()
}

/// Rows naming the workspace, except its deletion record (the one row naming the job).
fn leftovers(rows: &[String], ws: &WorkspaceId, record: &str) -> Vec<String> {
    let records = rows.iter().filter(|r| r.contains(record)).count();
    rows.iter()
        .filter(|r| r.contains(ws.as_str()))
        .filter(|r| records > 1 || !r.contains(record))
        .cloned()
        .collect()
}

fn naming(rows: &[String], ws: &WorkspaceId) -> BTreeSet<String> {
    rows.iter()
        .filter(|r| r.contains(ws.as_str()))
        .cloned()
        .collect()
}

/// Two workspaces, one deleted: what the raw reads find before and after.
async fn delete_one_of_two(
    store: DynStore,
    archive: DynArchive,
    rows: impl AsyncFn() -> Vec<String>,
    objects: impl AsyncFn() -> Vec<String>,
    // What the store does to expired records at a time (SQLite: the upkeep's purge; DynamoDB:
    // nothing, its TTL does it).
    expire: impl AsyncFn(i64),
) {
    let shared = format!(
        "shared-{}@example.com",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let doomed = fill(&store, &archive, "Doomed", &shared).await;
    let kept = fill(&store, &archive, "Kept", &shared).await;
    let kept_before = naming(&rows().await, &kept.ws);
    let kept_objects = naming(&objects().await, &kept.ws);
    let kept_rollups = recomputed(store.as_ref(), &kept.ws).await;
    assert!(!leftovers(&rows().await, &doomed.ws, "none").is_empty());

    let outbox = tempfile::tempdir().unwrap();
    let d = deps(&store, &archive, outbox.path(), job::PURGE_PAGE);
    let job = begin(&store, &doomed).await;
    assert_eq!(
        job::run(&d, job.clone(), None).await.unwrap(),
        job::Ran::Finished
    );

    let after = rows().await;
    assert_eq!(leftovers(&after, &doomed.ws, &job.id), Vec::<String>::new());
    assert!(
        naming(&objects().await, &doomed.ws).is_empty(),
        "archive objects of the deleted workspace are gone"
    );
    assert_receipt(
        &receipt_of(&finished(&store, &doomed, &job.id).await),
        &doomed,
    );
    assert!(store.workspace(&doomed.ws).await.unwrap().is_none());

    // The other workspace: every item as it was, aggregates included; the shared member
    // still belongs to it.
    assert_eq!(naming(&after, &kept.ws), kept_before);
    assert_eq!(naming(&objects().await, &kept.ws), kept_objects);
    assert_rollups_match_events(store.as_ref(), &kept.ws).await;
    assert_eq!(
        recomputed(store.as_ref(), &kept.ws).await.len(),
        kept_rollups.len()
    );
    let user = store
        .user_by_email(&Email::parse(&shared).unwrap())
        .await
        .unwrap()
        .unwrap();
    let memberships: Vec<_> = store.memberships(&user.id).await.unwrap();
    assert_eq!(memberships.len(), 1);
    assert_eq!(memberships[0].workspace_id, kept.ws);

    let mail = std::fs::read_dir(outbox.path().join("")).unwrap().count();
    assert_eq!(mail, 1, "one receipt emailed");

    // The record is forgotten after its year: SQLite by the upkeep's purge, DynamoDB by TTL.
    expire(now_ms() + RECORD_KEPT_MS + 60_000).await;
    let record: Vec<String> = rows()
        .await
        .into_iter()
        .filter(|r| r.contains(&job.id))
        .collect();
    assert!(
        record.is_empty() || record.iter().all(|r| r.contains("expires_at=N")),
        "{record:?}"
    );
}

#[tokio::test]
async fn sqlite_and_folder_keep_nothing_of_a_deleted_workspace() {
    let (store, dir) = sqlite_store();
    let path = dir.path().join("test.sqlite3");
    let sqlite = store.clone();
    let store: DynStore = Arc::new(store);
    let files = dir.path().join("archive");
    let archive: DynArchive = Arc::new(FolderArchive::open(&files, "http://127.0.0.1:1").unwrap());
    let files_ = files.clone();
    delete_one_of_two(
        store,
        archive.clone(),
        async || sqlite_rows(&path),
        async || walk(&files_),
        async |at| {
            sqlite.purge_expired(at).await.unwrap();
        },
    )
    .await;
}

/// Every file under a folder, as its path.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.display().to_string());
            if p.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn dynamodb_and_s3_keep_nothing_of_a_deleted_workspace() {
    let dynamo = Arc::new(dynamo_store().await);
    let s3 = Arc::new(s3_archive().await);
    let store: DynStore = dynamo.clone();
    let archive: DynArchive = s3.clone();
    delete_one_of_two(
        store,
        archive,
        async || dynamo_rows(&dynamo).await,
        async || s3.list("").await.unwrap(),
        async |_| {},
    )
    .await;
}

/// A run aborted in the middle of its purge (the task dropped wherever it was, as a killed
/// process would be) is finished by the next run: the same end state, and a receipt that
/// still counts everything, including what the aborted page deleted.
#[tokio::test]
async fn an_aborted_deletion_finishes_with_a_correct_receipt() {
    let dynamo = Arc::new(dynamo_store().await);
    let store: DynStore = dynamo.clone();
    let archive: DynArchive = Arc::new(s3_archive().await);
    let doomed = fill(&store, &archive, "Doomed", "shared@example.com").await;
    let outbox = tempfile::tempdir().unwrap();
    // Small pages: many saves, so the abort lands between two of them.
    let d = deps(&store, &archive, outbox.path(), 25);
    let job = begin(&store, &doomed).await;
    let task = {
        let (d, job) = (d.clone(), job.clone());
        tokio::spawn(async move { job::run(&d, job, None).await })
    };
    // Abort once a page of the purge is saved.
    let mut saved = false;
    for _ in 0..600 {
        let j = store.job(&doomed.ws, &job.id).await.unwrap().unwrap();
        if !job::progress_of(&j).purged.is_empty() {
            saved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let _ = task.await;
    assert!(saved, "the purge saved a page");
    let midway = store.job(&doomed.ws, &job.id).await.unwrap().unwrap();
    assert_ne!(midway.state, JobState::Done, "stopped midway");
    assert!(
        !leftovers(&dynamo_rows(&dynamo).await, &doomed.ws, &job.id).is_empty(),
        "some of the workspace is still there"
    );

    // The restart: unfinished deletions are resumed.
    assert_eq!(job::resume(&d, 0, None).await.unwrap(), 1);
    assert_eq!(
        leftovers(&dynamo_rows(&dynamo).await, &doomed.ws, &job.id),
        Vec::<String>::new()
    );
    assert_receipt(
        &receipt_of(&finished(&store, &doomed, &job.id).await),
        &doomed,
    );
    assert_eq!(
        job::resume(&d, 0, None).await.unwrap(),
        0,
        "nothing left to resume"
    );
}
