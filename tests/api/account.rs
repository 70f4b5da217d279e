//! People: sign-up by emailed code, workspaces, invitations, keys through the API, sign-out, and
//! the bad inputs around them. The walkthrough runs over SQLite and over DynamoDB (moto), and
//! afterwards both stores are searched for any raw key, sign-in code or session token.

use std::sync::Arc;

use llmtrack_shared::ports::{DynStore, SystemClock};
use serde_json::json;

use crate::support::*;

/// What a walkthrough leaves behind that must never be stored in the clear.
pub struct Secrets {
    pub values: Vec<String>,
}

/// The story of issue #3, end to end through HTTP. Returns every secret it saw.
pub async fn walkthrough(app: &TestApp) -> Secrets {
    let mut secrets = Vec::new();

    // Sign up by emailed code.
    let ada = app.sign_in("ada@example.com").await;
    secrets.push(code_in(&app.last_mail_to("ada@example.com")));
    secrets.push(
        ada.cookie
            .clone()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned(),
    );
    let (status, me) = ada.get("/v1/me").await;
    assert_eq!(
        (status, me["user"]["email"].as_str()),
        (200, Some("ada@example.com"))
    );

    // A workspace; Ada owns it.
    let (status, ws) = ada
        .post(
            "/v1/workspaces",
            json!({"name": "Acme", "timezone": "Europe/Paris"}),
        )
        .await;
    assert_eq!(status, 201, "{ws}");
    assert_eq!(ws["role"], "owner");
    assert_eq!(ws["timezone"], "Europe/Paris");
    let id = ws["id"].as_str().unwrap().to_owned();
    // The free plan has one member: move to pro to invite a colleague.
    llmtrack::admin::set_plan(
        app.store.as_ref(),
        &id,
        llmtrack_shared::domain::plan::Plan::Pro,
        now_ms(),
    )
    .await
    .unwrap();

    // Invite Bob, who signs in and accepts from the emailed link.
    let (status, inv) = ada
        .post(
            &format!("/v1/workspaces/{id}/invitations"),
            json!({"email": "Bob@Example.com", "role": "admin"}),
        )
        .await;
    assert_eq!(status, 201, "{inv}");
    let mail = app.last_mail_to("bob@example.com");
    let inv_id = inv["id"].as_str().unwrap();
    assert!(
        mail.contains(&format!("/invitations/{id}/{inv_id}")),
        "the email carries the accept link"
    );
    let bob = app.sign_in("bob@example.com").await;
    secrets.push(
        bob.cookie
            .clone()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned(),
    );
    let (status, joined) = bob
        .post(
            &format!("/v1/workspaces/{id}/invitations/{inv_id}/accept"),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, joined["role"].as_str()),
        (200, Some("admin")),
        "{joined}"
    );
    let (_, members) = ada.get(&format!("/v1/workspaces/{id}/members")).await;
    assert_eq!(members.as_array().unwrap().len(), 2);

    // Bob (admin) makes a key; the raw key is in that response only.
    let (status, key) = bob
        .post(
            &format!("/v1/workspaces/{id}/keys"),
            json!({"name": "backend", "source": "production"}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let raw = key["secret"].as_str().unwrap().to_owned();
    secrets.push(raw.clone());
    let key_id = key["id"].as_str().unwrap().to_owned();
    let (_, listed) = ada.get(&format!("/v1/workspaces/{id}/keys")).await;
    assert!(
        !listed.to_string().contains(&raw),
        "the list never shows the raw key"
    );
    assert_eq!(listed[0]["created_by"], "bob@example.com");
    let event = json!({"provider": "openai", "model": "gpt-4o", "input_tokens": 10});
    assert_eq!(app.post_events(&raw, &event).await.0, 200);

    // Deactivated: refused at once. Rotated: a new key works, the old one stays refused.
    let (status, _) = bob
        .post(
            &format!("/v1/workspaces/{id}/keys/{key_id}/deactivate"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.post_events(&raw, &event).await.0, 401);
    let (status, rotated) = bob
        .post(
            &format!("/v1/workspaces/{id}/keys/{key_id}/rotate"),
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{rotated}");
    let new_raw = rotated["secret"].as_str().unwrap().to_owned();
    secrets.push(new_raw.clone());
    assert_eq!(
        (rotated["name"].as_str(), rotated["source"].as_str()),
        (Some("backend"), Some("production"))
    );
    assert_eq!(app.post_events(&new_raw, &event).await.0, 200);
    assert_eq!(app.post_events(&raw, &event).await.0, 401);

    // The audit log, newest first, says who did what from where, and holds no secret.
    let (status, audit) = ada.get(&format!("/v1/workspaces/{id}/audit")).await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for expected in [
        "workspace.created",
        "workspace.plan_changed",
        "member.invited",
        "member.joined",
        "key.created",
        "key.deactivated",
        "key.rotated",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing from {actions:?}"
        );
    }
    assert_eq!(actions[0], "key.created", "newest first");
    assert!(
        audit["entries"][0]["ip"]
            .as_str()
            .is_some_and(|ip| ip == "127.0.0.1")
    );
    for s in &secrets {
        assert!(!audit.to_string().contains(s.as_str()));
    }

    // Sign out: the session is gone. Sign out everywhere ends Bob's other sessions too.
    let (status, _) = ada.post("/v1/auth/logout", json!({})).await;
    assert_eq!(status, 204);
    assert_eq!(ada.get("/v1/me").await.0, 401);
    let bob_phone = app.sign_in("bob@example.com").await;
    assert_eq!(
        bob.post("/v1/auth/logout?everywhere=true", json!({}))
            .await
            .0,
        204
    );
    assert_eq!(bob_phone.get("/v1/me").await.0, 401);
    Secrets { values: secrets }
}

/// Whether `secret` appears in `haystack`. A sign-in code is six digits, and six digits turn up
/// by chance inside the stores' timestamps and ids: a code counts only where it stands alone,
/// not inside a longer run of digits.
fn stored(haystack: &str, secret: &str) -> bool {
    if !secret.bytes().all(|b| b.is_ascii_digit()) {
        return haystack.contains(secret);
    }
    let bytes = haystack.as_bytes();
    haystack.match_indices(secret).any(|(i, _)| {
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + secret.len()).copied();
        !before.is_some_and(|b| b.is_ascii_digit()) && !after.is_some_and(|b| b.is_ascii_digit())
    })
}

#[tokio::test]
async fn walkthrough_on_sqlite_stores_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(
        llmtrack_shared::adapters::sqlite::SqliteStore::open(&dir.path().join("db.sqlite3"))
            .unwrap(),
    );
    let app = spawn_app_on(store, Arc::new(SystemClock), None).await;
    let secrets = walkthrough(&app).await;
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let haystack = String::from_utf8_lossy(&bytes);
    for s in &secrets.values {
        assert!(
            !stored(&haystack, s),
            "a secret ({}…) is stored",
            &s[..4.min(s.len())]
        );
    }
}

#[tokio::test]
async fn walkthrough_on_dynamodb_stores_no_secret() {
    let store = dynamo_store().await;
    let (client, table) = (store.client().clone(), store.table().to_owned());
    let app = spawn_app_on(Arc::new(store), Arc::new(SystemClock), None).await;
    let secrets = walkthrough(&app).await;
    let items: Vec<_> = client
        .scan()
        .table_name(&table)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    let dump = format!("{items:?}");
    assert!(dump.contains("ada@example.com"), "the scan saw the data");
    for s in &secrets.values {
        assert!(
            !stored(&dump, s),
            "a secret ({}…) is stored",
            &s[..4.min(s.len())]
        );
    }
}

#[tokio::test]
async fn codes_work_once_expire_and_resist_guessing() {
    // Rate limits count in fixed 15-minute windows: start a minute into one so the steps below
    // know which window they fall in.
    let t0 = now_ms() / 900_000 * 900_000 + 60_000;
    let clock = TestClock::at(t0);
    let app = spawn_app_with_clock(clock.clone()).await;
    let b = app.browser();
    let verify = |email: &str, code: &str| {
        let (b, email, code) = (b.clone(), email.to_owned(), code.to_owned());
        async move {
            b.post("/v1/auth/verify", json!({"email": email, "code": code}))
                .await
        }
    };
    // Malformed email.
    let (status, body) = b
        .post("/v1/auth/email", json!({"email": "not-an-email"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a valid email")
    );
    // A code works once.
    b.post("/v1/auth/email", json!({"email": "cy@example.com"}))
        .await;
    let code = code_in(&app.last_mail_to("cy@example.com"));
    assert_eq!(verify("cy@example.com", &code).await.0, 200);
    let (status, body) = verify("cy@example.com", &code).await;
    assert_eq!(status, 400, "reused: {body}");
    // An expired code is refused.
    b.post("/v1/auth/email", json!({"email": "cy@example.com"}))
        .await;
    let code = code_in(&app.last_mail_to("cy@example.com"));
    // Past the 10-minute expiry, and into the next rate-limit window.
    clock.set(t0 + 15 * 60_000);
    assert_eq!(verify("cy@example.com", &code).await.0, 400);
    // Wrong guesses count per email: with the expired code above, four more make five failures
    // in this window, and then even the right code is refused until the window ends.
    b.post("/v1/auth/email", json!({"email": "cy@example.com"}))
        .await;
    let code = code_in(&app.last_mail_to("cy@example.com"));
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for _ in 0..4 {
        let (status, body) = verify("cy@example.com", wrong).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], "invalid_code");
    }
    // And the email is locked for the rest of the window: failures count per email.
    assert_eq!(verify("cy@example.com", &code).await.0, 429);
    // Asking for codes is rate limited per email: five per 15-minute window.
    for _ in 0..4 {
        assert_eq!(
            b.post("/v1/auth/email", json!({"email": "cy@example.com"}))
                .await
                .0,
            202
        );
    }
    let (status, body) = b
        .post("/v1/auth/email", json!({"email": "cy@example.com"}))
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("try again")
    );
}

/// Wrong codes count per email across every code it asks for: five lock it for the rest of a
/// 15-minute window, twenty for the rest of the day, and new codes buy no new guesses.
#[tokio::test]
async fn wrong_codes_count_per_email_across_codes() {
    let day = 86_400_000;
    let t0 = now_ms() / day * day + 60_000;
    let clock = TestClock::at(t0);
    let app = spawn_app_with_clock(clock.clone()).await;
    let b = app.browser();
    let email = "guess@example.com";
    let new_code = || {
        let (b, app) = (b.clone(), &app);
        async move {
            let (status, body) = b.post("/v1/auth/email", json!({"email": email})).await;
            assert_eq!(status, 202, "{body}");
            code_in(&app.last_mail_to(email))
        }
    };
    let verify = |code: String| {
        let b = b.clone();
        async move {
            b.post("/v1/auth/verify", json!({"email": email, "code": code}))
                .await
        }
    };
    let wrong = |code: &str| {
        if code == "000000" {
            "000001".to_owned()
        } else {
            "000000".to_owned()
        }
    };
    // Three windows of five wrong guesses spread over two codes; a third code is refused.
    for w in 0..3 {
        clock.set(t0 + w * 15 * 60_000);
        for guesses in [3, 2] {
            let code = new_code().await;
            for _ in 0..guesses {
                let (status, body) = verify(wrong(&code)).await;
                assert_eq!(status, 400, "window {w}: {body}");
            }
        }
        let code = new_code().await;
        let (status, body) = verify(code).await;
        assert_eq!(status, 429, "window {w}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("wrong sign-in codes"),
            "{body}"
        );
    }
    // Five more in the next window reach the day's limit of 20.
    clock.set(t0 + 3 * 15 * 60_000);
    let code = new_code().await;
    for _ in 0..5 {
        assert_eq!(verify(wrong(&code)).await.0, 400);
    }
    clock.set(t0 + 4 * 15 * 60_000);
    let code = new_code().await;
    let (status, body) = verify(code).await;
    assert_eq!(status, 429, "locked for the day: {body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("hours"),
        "{body}"
    );
    // The next day, the right code works.
    clock.set(t0 + day);
    let code = new_code().await;
    assert_eq!(verify(code).await.0, 200);
}

#[tokio::test]
async fn sessions_expire_and_cross_site_writes_are_refused() {
    let clock = TestClock::at(now_ms());
    let app = spawn_app_with_clock(clock.clone()).await;
    let ada = app.sign_in("ada@example.com").await;
    // Cross-site: another Origin, or none.
    let mut evil = ada.clone();
    evil.origin = Some("https://evil.example".into());
    let (status, body) = evil.post("/v1/workspaces", json!({"name": "X"})).await;
    assert_eq!(status, 403, "{body}");
    evil.origin = None;
    assert_eq!(
        evil.post("/v1/workspaces", json!({"name": "X"})).await.0,
        403
    );
    assert_eq!(
        ada.get("/v1/workspaces").await.1.as_array().unwrap().len(),
        0,
        "nothing was created"
    );
    // Unknown session token.
    let mut forged = ada.clone();
    forged.cookie = Some(format!("llmtrack_session={}", "A".repeat(43)));
    assert_eq!(forged.get("/v1/me").await.0, 401);
    // Expired session.
    clock.set(now_ms() + 31 * 86_400_000);
    assert_eq!(ada.get("/v1/me").await.0, 401);
}

#[tokio::test]
async fn rules_on_members_keys_and_names_hold() {
    let app = spawn_app().await;
    let ada = app.sign_in("ada@example.com").await;
    let (_, ws) = ada.post("/v1/workspaces", json!({"name": "Acme"})).await;
    let id = ws["id"].as_str().unwrap().to_owned();
    let ada_id = ada.get("/v1/me").await.1["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Names and timezones.
    for (body, words) in [
        (json!({"name": ""}), "must not be empty"),
        (json!({"name": "x".repeat(65)}), "longer than 64"),
        (
            json!({"name": "Ok", "timezone": "Mars/Olympus"}),
            "not an IANA timezone",
        ),
    ] {
        let (status, resp) = ada.post("/v1/workspaces", body).await;
        assert_eq!(status, 400);
        assert!(
            resp["error"]["message"].as_str().unwrap().contains(words),
            "{resp}"
        );
    }
    // Free plan: one member, so an invitation is refused; two active keys, so a third is refused.
    let (status, resp) = ada
        .post(
            &format!("/v1/workspaces/{id}/invitations"),
            json!({"email": "bob@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(status, 409, "{resp}");
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allows 1 members")
    );
    for n in 0..2 {
        assert_eq!(
            ada.post(
                &format!("/v1/workspaces/{id}/keys"),
                json!({"name": format!("k{n}"), "source": "prod"})
            )
            .await
            .0,
            201
        );
    }
    let (status, resp) = ada
        .post(
            &format!("/v1/workspaces/{id}/keys"),
            json!({"name": "k3", "source": "prod"}),
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allows 2 active keys"),
        "{resp}"
    );
    // Bad roles, scopes and sources.
    llmtrack::admin::set_plan(
        app.store.as_ref(),
        &id,
        llmtrack_shared::domain::plan::Plan::Pro,
        now_ms(),
    )
    .await
    .unwrap();
    let (status, _) = ada
        .post(
            &format!("/v1/workspaces/{id}/invitations"),
            json!({"email": "bob@example.com", "role": "superuser"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        ada.post(
            &format!("/v1/workspaces/{id}/keys"),
            json!({"name": "k", "source": "prod", "scope": "admin"})
        )
        .await
        .0,
        400
    );
    assert_eq!(
        ada.post(
            &format!("/v1/workspaces/{id}/keys"),
            json!({"name": "k", "source": "has space"})
        )
        .await
        .0,
        400
    );
    // The last owner can neither leave nor be demoted.
    let (status, resp) = ada
        .delete(&format!("/v1/workspaces/{id}/members/{ada_id}"))
        .await;
    assert_eq!(status, 409, "{resp}");
    assert_eq!(
        ada.patch(
            &format!("/v1/workspaces/{id}/members/{ada_id}"),
            json!({"role": "admin"})
        )
        .await
        .0,
        409
    );
    // Another workspace's ids, and malformed ids, are 404.
    let eve = app.sign_in("eve@example.com").await;
    let (_, other) = eve.post("/v1/workspaces", json!({"name": "Other"})).await;
    let other_id = other["id"].as_str().unwrap();
    for path in [
        format!("/v1/workspaces/{other_id}"),
        format!("/v1/workspaces/{other_id}/keys"),
        "/v1/workspaces/ws_nope".into(),
        "/v1/workspaces/../etc".into(),
    ] {
        assert_eq!(ada.get(&path).await.0, 404, "{path}");
    }
    let (_, eve_key) = eve
        .post(
            &format!("/v1/workspaces/{other_id}/keys"),
            json!({"name": "k", "source": "prod"}),
        )
        .await;
    let eve_key_id = eve_key["id"].as_str().unwrap();
    // Ada cannot touch Eve's key through her own workspace either.
    assert_eq!(
        ada.post(
            &format!("/v1/workspaces/{id}/keys/{eve_key_id}/deactivate"),
            json!({})
        )
        .await
        .0,
        404
    );
}
