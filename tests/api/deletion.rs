//! Deletion over HTTP: what owners may ask for and how it is confirmed, the workspace going dark
//! the moment a deletion is accepted, range deletions leaving every aggregate equal to a
//! recomputation from the events left, receipts (read back and emailed), the Stripe subscription
//! cancelled, and account deletion.

use std::collections::BTreeMap;

use llmtrack_deletion::job;
use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::apikey::Scope as KeyScope;
use llmtrack_shared::domain::deletion::Scope;
use llmtrack_shared::domain::event::Event;
use llmtrack_shared::domain::ids::{UserId, WorkspaceId};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::rollup::{self, Dimension, Rollup, RollupKey, VIEWS, View};
use llmtrack_shared::domain::time::{HOUR_MS, hour_of, month_of, rfc3339};
use serde_json::{Value, json};

use super::billing::billed;
use crate::support::*;

fn deletions(ws: &str) -> String {
    format!("/v1/workspaces/{ws}/deletions")
}

/// Polls a deletion until it is done; returns it.
async fn done(b: &Browser, ws: &str, id: &str) -> Value {
    for _ in 0..400 {
        let (status, job) = b.get(&format!("{}/{id}", deletions(ws))).await;
        assert_eq!(status, 200, "{job}");
        if job["state"] == "done" {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("deletion {id} did not finish");
}

/// Events over the last hours, from two sources.
async fn send_events(app: &TestApp, ws: &WorkspaceId, hours: i64, per_hour: usize) -> usize {
    let now = now_ms();
    let mut sent = 0;
    for source in ["production", "staging"] {
        let key = app.key(ws, KeyScope::Ingest, source).await;
        for h in 0..hours {
            let base = (hour_of(now) - hours + h) * HOUR_MS;
            let events: Vec<Value> = (0..per_hour)
                .map(|i| {
                    let mut e = event(i + sent, base + (i as i64) * 97_000 + 11);
                    e["id"] = json!(format!("{source}-{h}-{i}"));
                    e
                })
                .collect();
            let (status, body) = app.post_events(&key, &json!({"events": events})).await;
            assert_eq!(status, 200, "{body}");
            sent += per_hour;
        }
    }
    sent
}

#[tokio::test]
async fn a_workspace_deletion_is_checked_goes_dark_at_once_and_ends_with_a_receipt() {
    let b = billed().await;
    let app = &b.app;
    let sub = b.subscribe("team").await;
    let ws = WorkspaceId::parse(&b.ws).unwrap();
    let ingest = app.key(&ws, KeyScope::Ingest, "production").await;
    let read = app.key(&ws, KeyScope::Read, "scripts").await;
    let sent = send_events(app, &ws, 3, 15).await;
    llmtrack::admin::add_member(
        app.store.as_ref(),
        &b.ws,
        "admin@example.com",
        Role::Admin,
        now_ms(),
    )
    .await
    .unwrap();
    let admin = app.sign_in("admin@example.com").await;
    let (status, _) = b
        .owner
        .post(
            &format!("/v1/workspaces/{}/invitations", b.ws),
            json!({"email": "invitee@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 201);
    // Another workspace of the same owner, and one of someone else.
    let (_, mine) = b
        .owner
        .post("/v1/workspaces", json!({"name": "Mine"}))
        .await;
    let mine = mine["id"].as_str().unwrap().to_owned();
    let stranger = app.sign_in("stranger@example.com").await;
    let (_, theirs) = stranger
        .post("/v1/workspaces", json!({"name": "Theirs"}))
        .await;
    let theirs = theirs["id"].as_str().unwrap().to_owned();

    // Bad input: a 4xx that says what is wrong, and nothing deleted.
    let whole = json!({"scope": "workspace", "confirm": "Acme"});
    for (who, body, want, needle) in [
        (&admin, whole.clone(), 403, "role"),
        (
            &b.owner,
            json!({"scope": "workspace", "confirm": "acme inc"}),
            400,
            "confirm",
        ),
        (
            &b.owner,
            json!({"scope": "everything", "confirm": "Acme"}),
            400,
            "scope",
        ),
        (
            &b.owner,
            json!({"scope": "workspace", "confirm": "Acme", "from": 0}),
            400,
            "from",
        ),
        (
            &b.owner,
            json!({"scope": "usage", "confirm": "Acme", "from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}),
            400,
            "before",
        ),
        (
            &b.owner,
            json!({"scope": "usage", "confirm": "Acme", "from": "yesterday"}),
            400,
            "RFC 3339",
        ),
        (
            &b.owner,
            json!({"scope": "usage", "confirm": "Acme", "source": " "}),
            400,
            "source",
        ),
        (&b.owner, json!({"confirm": "Acme"}), 400, "scope"),
    ] {
        let (status, body) = who.post(&deletions(&b.ws), body).await;
        assert_eq!(status, want, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{body}"
        );
    }
    let (status, _) = b
        .owner
        .post(
            &deletions(&theirs),
            json!({"scope": "workspace", "confirm": "Theirs"}),
        )
        .await;
    assert_eq!(status, 404, "another workspace is not found");
    let (status, _) = b.owner.get(&format!("{}/del_nope", deletions(&b.ws))).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .http
        .post(app.url(&deletions(&b.ws)))
        .header("origin", "https://evil.example")
        .json(&whole)
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401, "no session");
    assert_eq!(
        app.store
            .events(&ws, 0, i64::MAX / 2, None, 10)
            .await
            .unwrap()
            .len(),
        10
    );

    let (status, accepted) = b.owner.post(&deletions(&b.ws), whole.clone()).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["scope"]["scope"], "workspace");
    let id = accepted["id"].as_str().unwrap().to_owned();

    // Dark at once: keys stop, the workspace is no longer shown, a second deletion finds nothing.
    let (status, body) = app
        .post_events(&ingest, &json!({"events": [event(1, now_ms())]}))
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = app.summary(&read, "?from=last_24h").await;
    assert_eq!(status, 401);
    let (status, _) = b.owner.get(&format!("/v1/workspaces/{}", b.ws)).await;
    assert_eq!(status, 404);
    let (_, list) = b.owner.get("/v1/workspaces").await;
    let listed: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![mine.as_str()]);
    let (status, _) = b.owner.post(&deletions(&b.ws), whole.clone()).await;
    assert_eq!(status, 404);

    let job = done(&b.owner, &b.ws, &id).await;
    let receipt = &job["receipt"];
    assert_eq!(receipt["deleted"]["events"], sent as u64, "{job}");
    assert_eq!(receipt["deleted"]["keys"], 4, "{job}");
    assert_eq!(receipt["deleted"]["members"], 2, "{job}");
    assert_eq!(receipt["deleted"]["invitations"], 1, "{job}");
    assert_eq!(receipt["deleted"]["billing_records"], 1, "{job}");
    assert_eq!(receipt["deleted"]["subscriptions_cancelled"], 1, "{job}");
    assert!(receipt["deleted"]["rollups"].as_u64().unwrap() > 0, "{job}");
    // One machine keeps no backups: the receipt does not promise AWS's (the Lambda wiring
    // says 35 days of point-in-time recovery; see domain::deletion's tests).
    let backups = receipt["backups"].as_str().unwrap();
    assert!(backups.contains("keeps no backups of its own"), "{backups}");
    assert!(!backups.contains("35 days"), "{backups}");
    assert!(receipt["finished_at"].is_string());

    // Stripe was told, once.
    let cancels = b.stripe.requests(&format!("/v1/subscriptions/{}", sub.id));
    assert_eq!(cancels.len(), 1);
    // Gone from the store; the receipt stays readable by the owner who asked, nobody else.
    assert!(app.store.workspace(&ws).await.unwrap().is_none());
    assert!(
        app.store
            .events(&ws, 0, i64::MAX / 2, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(app.store.keys(&ws).await.unwrap().is_empty());
    assert!(app.store.members(&ws).await.unwrap().is_empty());
    let (status, _) = admin.get(&format!("{}/{id}", deletions(&b.ws))).await;
    assert_eq!(status, 404, "the admin is no longer a member");
    let (status, _) = stranger.get(&format!("{}/{id}", deletions(&b.ws))).await;
    assert_eq!(status, 404);
    let mail = app.last_mail_to(&b.owner_email);
    assert!(mail.contains("your deletion is complete"), "{mail}");
    assert!(mail.contains(&format!("events: {sent}")), "{mail}");
    assert!(mail.contains("keeps no backups of its own"), "{mail}");
    // The other workspace is as it was.
    let (status, _) = b.owner.get(&format!("/v1/workspaces/{mine}")).await;
    assert_eq!(status, 200);
}

/// Every rollup of every view (those within each feature and source value ever sent
/// included), as stored.
async fn every_view(
    app: &TestApp,
    ws: &WorkspaceId,
    events: &[Event],
) -> BTreeMap<RollupKey, Rollup> {
    let mut also = Vec::new();
    for e in events {
        for (within, by) in VIEWS {
            if within != Dimension::Total {
                also.push(View::within(by, within, within.value_of(e)));
            }
        }
    }
    stored_rollups(app.store.as_ref(), ws, also).await
}

#[tokio::test]
async fn a_range_deletion_leaves_every_aggregate_equal_to_a_recomputation() {
    let app = spawn_app().await;
    let owner = app.sign_in("owner@example.com").await;
    let (_, ws) = owner.post("/v1/workspaces", json!({"name": "Acme"})).await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let ws = WorkspaceId::parse(&id).unwrap();
    app.store.set_plan(&ws, Plan::Team).await.unwrap();
    let sent = send_events(&app, &ws, 5, 40).await;
    let before = all_events(app.store.as_ref(), &ws).await;
    assert_eq!(before.len(), sent);

    // Staging's events from the middle of the second hour to the end of the fourth.
    let first = hour_of(now_ms()) - 5;
    let (from, to) = ((first + 1) * HOUR_MS + 30 * 60_000, (first + 4) * HOUR_MS);
    let doomed = |e: &Event| e.source == "staging" && from <= e.ts_ms && e.ts_ms < to;
    let expected_gone = before.iter().filter(|e| doomed(e)).count();
    assert!(expected_gone > 0);

    // An overlapping deletion still running refuses a second one; another source does not.
    let running = job::new_job(
        &ws,
        &job::Spec {
            scope: Scope::Usage {
                from_ms: from,
                to_ms: to,
                source: Some("production".into()),
            },
            requested_by: UserId::generate(now_ms()),
            notify: None,
            purge_after_ms: 0,
        },
        now_ms(),
    )
    .unwrap();
    assert!(app.store.begin_deletion(&running, false).await.unwrap());
    let range = json!({"scope": "usage", "confirm": "Acme", "from": rfc3339(from), "to": rfc3339(to), "source": "production"});
    let (status, body) = owner.post(&deletions(&id), range).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&running.id)
    );

    let range = json!({"scope": "usage", "confirm": "Acme", "from": rfc3339(from), "to": to, "source": "staging"});
    let (status, accepted) = owner.post(&deletions(&id), range).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["scope"]["source"], "staging");
    let job = done(&owner, &id, accepted["id"].as_str().unwrap()).await;
    assert_eq!(
        job["receipt"]["deleted"]["events"], expected_gone as u64,
        "{job}"
    );
    assert_eq!(job["hours_done"], job["hours_total"]);

    // The raw events are exactly the others...
    let left = all_events(app.store.as_ref(), &ws).await;
    assert_eq!(left.len(), sent - expected_gone);
    assert!(left.iter().all(|e| !doomed(e)));
    // ...every rollup of every view is what they give, the views of values now without
    // events included...
    let expected: BTreeMap<RollupKey, Rollup> = rollup::fold(&left).into_iter().collect();
    let stored = every_view(&app, &ws, &before).await;
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (k, r) in &expected {
        assert!(
            stored[k].same_as(r),
            "{k:?}: stored {:?}, recomputed {r:?}",
            stored[k]
        );
    }
    // ...usage counts them...
    let mut by_month: BTreeMap<String, u64> = BTreeMap::new();
    for e in &left {
        *by_month.entry(month_of(e.ts_ms)).or_default() += 1;
    }
    for (month, n) in &by_month {
        assert_eq!(app.store.usage(&ws, month).await.unwrap(), *n, "{month}");
    }
    // ...and so do the answers of the API.
    let read = app.key(&ws, KeyScope::Read, "scripts").await;
    let (status, summary) = app.summary(&read, "?from=last_24h").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(
        summary["metrics"]["requests"],
        left.len() as u64,
        "{summary}"
    );
    let mail = app.last_mail_to("owner@example.com");
    assert!(mail.contains("sent with source `staging`"), "{mail}");
}

#[tokio::test]
async fn an_account_deletion_names_what_it_takes_and_leaves_shared_workspaces() {
    let app = spawn_app().await;
    let ada = app.sign_in("ada@example.com").await;
    let bob = app.sign_in("bob@example.com").await;
    let (_, solo) = ada.post("/v1/workspaces", json!({"name": "Solo"})).await;
    let solo = solo["id"].as_str().unwrap().to_owned();
    let (_, shared) = ada.post("/v1/workspaces", json!({"name": "Shared"})).await;
    let shared = shared["id"].as_str().unwrap().to_owned();
    let shared_id = WorkspaceId::parse(&shared).unwrap();
    app.store.set_plan(&shared_id, Plan::Team).await.unwrap();
    llmtrack::admin::add_member(
        app.store.as_ref(),
        &shared,
        "bob@example.com",
        Role::Owner,
        now_ms(),
    )
    .await
    .unwrap();
    let solo_id = WorkspaceId::parse(&solo).unwrap();
    send_events(&app, &solo_id, 1, 5).await;

    let (status, preview) = ada.get("/v1/account/deletion").await;
    assert_eq!(status, 200);
    assert_eq!(preview["workspaces_deleted"][0]["id"], solo, "{preview}");
    assert_eq!(preview["workspaces_left"][0]["id"], shared, "{preview}");

    for (body, needle) in [
        (
            json!({"confirm": "someone@example.com", "workspaces": [solo]}),
            "email",
        ),
        (
            json!({"confirm": "ada@example.com", "workspaces": []}),
            "missing",
        ),
        (
            json!({"confirm": "ada@example.com", "workspaces": [solo, shared]}),
            "not their only owner",
        ),
    ] {
        let (status, body) = ada.post("/v1/account/deletion", body).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(needle),
            "{body}"
        );
    }
    let (status, _) = ada.get("/v1/me").await;
    assert_eq!(status, 200, "nothing deleted yet");

    let (status, body) = ada
        .post(
            "/v1/account/deletion",
            json!({"confirm": "Ada@Example.com", "workspaces": [solo]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["deleted"]["user"], 1, "{body}");
    assert_eq!(body["jobs"][0]["workspace"], solo, "{body}");
    let (status, _) = ada.get("/v1/me").await;
    assert_eq!(status, 401, "signed out everywhere, the account gone");

    // The solo workspace is deleted in the background; the shared one stays with Bob.
    let job = body["jobs"][0]["id"].as_str().unwrap();
    for _ in 0..400 {
        if app.store.job(&solo_id, job).await.unwrap().unwrap().state
            == llmtrack_shared::ports::JobState::Done
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(app.store.workspace(&solo_id).await.unwrap().is_none());
    let (status, members) = bob.get(&format!("/v1/workspaces/{shared}/members")).await;
    assert_eq!(status, 200);
    assert_eq!(members.as_array().unwrap().len(), 1, "{members}");
    let email = llmtrack_shared::domain::account::Email::parse("ada@example.com").unwrap();
    assert!(app.store.user_by_email(&email).await.unwrap().is_none());
    let mails = app.mails_to("ada@example.com");
    assert!(mails.iter().any(|m| m.contains("your account is deleted")));
    assert!(
        mails
            .iter()
            .any(|m| m.contains("your deletion is complete"))
    );
}

/// After a workspace deletion reports done, no byte of what it held is in any file of the data
/// dir: the SQLite database, its write-ahead log and shared memory, the archive, and the outbox
/// (which keeps the receipt). Another workspace's data stays.
#[tokio::test]
async fn a_deleted_workspace_leaves_no_byte_in_the_data_dir() {
    let app = spawn_app().await;
    let owner = app.sign_in("owner@example.com").await;
    let (_, gone) = owner
        .post("/v1/workspaces", json!({"name": "Gone Co"}))
        .await;
    let gone = WorkspaceId::parse(gone["id"].as_str().unwrap()).unwrap();
    let (_, kept) = owner
        .post("/v1/workspaces", json!({"name": "Kept Co"}))
        .await;
    let kept = WorkspaceId::parse(kept["id"].as_str().unwrap()).unwrap();
    let key = app.key(&gone, KeyScope::Ingest, "source-qq41z").await;
    let key_hash = llmtrack_shared::domain::apikey::RawKey::parse(&key)
        .unwrap()
        .hash()
        .0;
    let secrets = [
        "feature-zq81x",
        "user-kw55t",
        "meta-value-pp09r",
        "model-xx71q",
        "errtype-yy3m",
        "event-id-uu27",
        "source-qq41z",
        "alert-name-ab12",
        key_hash.as_str(),
    ];
    let now = now_ms();
    let events: Vec<Value> = (0..300)
        .map(|i| {
            json!({"id": format!("event-id-uu27-{i}"), "timestamp": now - i * 60_000,
                "provider": "openai", "model": if i % 2 == 0 { "model-xx71q" } else { "gpt-4o" },
                "feature": "feature-zq81x", "user_id": "user-kw55t", "status": "error",
                "error_type": "errtype-yy3m", "input_tokens": 100, "output_tokens": 10,
                "metadata": {"note": "meta-value-pp09r"}})
        })
        .collect();
    let (status, body) = app.post_events(&key, &json!({"events": events})).await;
    assert_eq!(status, 200, "{body}");
    let kept_key = app.key(&kept, KeyScope::Ingest, "production").await;
    let (status, _) = app
        .post_events(
            &kept_key,
            &json!({"feature": "feature-stays-7", "provider": "openai", "model": "gpt-4o"}),
        )
        .await;
    assert_eq!(status, 200);
    // Mail about it, and an export in the archive.
    let (status, rule) = owner
        .post(
            &format!("/v1/workspaces/{gone}/alerts"),
            json!({"name": "alert-name-ab12", "condition": {"metric": "cost", "period": "day", "over_usd": 1}}),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    let (status, _) = owner
        .post(
            &format!(
                "/v1/workspaces/{gone}/alerts/{}/test",
                rule["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = owner
        .post(
            "/v1/exports",
            json!({"kind": "events", "format": "csv", "from": "last_24h", "workspace": gone.as_str()}),
        )
        .await;
    assert!(status == 200 || status == 202, "{status} {body}");
    // The folder archive as the deletion will find it: an export file written by a job.
    llmtrack_shared::ports::Archive::put(
        app.parts.archive.as_ref(),
        &format!("exports/{gone}/exp_1.csv"),
        "text/csv",
        b"feature-zq81x,user-kw55t".to_vec(),
    )
    .await
    .unwrap();
    // Their bytes are on disk now (the test can see them).
    let found = |needle: &str| -> Vec<std::path::PathBuf> {
        app.data_files()
            .into_iter()
            .filter(|p| {
                let bytes = std::fs::read(p).unwrap_or_default();
                bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            })
            .collect()
    };
    assert!(!found("feature-zq81x").is_empty());

    let (status, job) = owner
        .post(
            &deletions(gone.as_str()),
            json!({"scope": "workspace", "confirm": "Gone Co"}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    done(&owner, gone.as_str(), job["id"].as_str().unwrap()).await;

    for needle in secrets {
        let left = found(needle);
        assert!(left.is_empty(), "`{needle}` is still in {left:?}");
    }
    // Only the receipt mentions the workspace's name; the other workspace is untouched.
    let named = found("Gone Co");
    assert!(
        named
            .iter()
            .all(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap())
                .contains("deletion is complete")),
        "{named:?}"
    );
    assert!(!found("feature-stays-7").is_empty());
}
