//! The weekly digest, with a test clock: members opt in for themselves (off by default, another
//! workspace 404s), and the job mails the week just ended (Monday to Sunday in the workspace's
//! timezone) from Monday 08:00 local, once, only to subscribers who are still members: its cost
//! and change against the week before computed here, the top mover named, a budget's standing —
//! on SQLite and DynamoDB.

use llmtrack_reports::digest;
use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::ids::{UserId, WorkspaceId};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::ports::DynStore;
use serde_json::{Value, json};

use crate::support::*;

fn at(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_millis()
}

fn digests_to(app: &TestApp, to: &str) -> Vec<String> {
    app.mails_to(to)
        .into_iter()
        .filter(|m| m.contains("LLMtrack weekly digest"))
        .collect()
}

#[tokio::test]
async fn the_weekly_digest_goes_once_to_subscribers_who_are_members() {
    let (store, dir) = sqlite_store();
    scenario(std::sync::Arc::new(store), Some(dir)).await;
}

#[tokio::test]
async fn the_weekly_digest_on_dynamodb() {
    scenario(std::sync::Arc::new(dynamo_store().await), None).await;
}

async fn scenario(store: DynStore, dir: Option<tempfile::TempDir>) {
    // Monday 2026-11-30, 07:30 in Paris (UTC+1): the week just ended is not due before 08:00.
    let clock = TestClock::at(at("2026-11-30T06:30:00Z"));
    let app = spawn_app_with(store, clock.clone(), dir, None).await;
    let owner = app.sign_in("owner@example.com").await;
    let (status, ws) = owner
        .post(
            "/v1/workspaces",
            json!({"name": "Acme <Labs>", "timezone": "Europe/Paris"}),
        )
        .await;
    assert_eq!(status, 201, "{ws}");
    let id = ws["id"].as_str().unwrap().to_owned();
    let wid = WorkspaceId::parse(&id).unwrap();
    app.store.set_plan(&wid, Plan::Pro).await.unwrap();
    for email in ["viewer@example.com", "gone@example.com"] {
        llmtrack::admin::add_member(
            app.store.as_ref(),
            &id,
            email,
            Role::Viewer,
            at("2026-11-30T06:30:00Z"),
        )
        .await
        .unwrap();
    }
    let viewer = app.sign_in("viewer@example.com").await;
    let gone = app.sign_in("gone@example.com").await;
    let stranger = app.sign_in("stranger@example.com").await;
    let path = format!("/v1/workspaces/{id}/digest");

    // Off by default; each member turns their own on.
    let (status, body) = owner.get(&path).await;
    assert_eq!((status, &body), (200, &json!({"subscribed": false})));
    for b in [&owner, &gone] {
        let (status, body) = b.put(&path, json!({"subscribed": true})).await;
        assert_eq!(
            (status, &body),
            (200, &json!({"subscribed": true})),
            "{body}"
        );
    }
    let (status, body) = owner.get(&path).await;
    assert_eq!((status, &body), (200, &json!({"subscribed": true})));
    let (status, body) = viewer.get(&path).await;
    assert_eq!((status, &body), (200, &json!({"subscribed": false})));
    let (status, _) = stranger.put(&path, json!({"subscribed": true})).await;
    assert_eq!(status, 404);
    let (status, _) = stranger.get(&path).await;
    assert_eq!(status, 404);

    // A removed member leaves the list.
    let (_, members) = owner.get(&format!("/v1/workspaces/{id}/members")).await;
    let gone_id = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "gone@example.com")
        .unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = owner
        .delete(&format!("/v1/workspaces/{id}/members/{gone_id}"))
        .await;
    assert_eq!(status, 204, "{body}");
    let subscribers = app.store.workspace(&wid).await.unwrap().unwrap().digest;
    assert_eq!(subscribers.users.len(), 1);
    let (status, _) = gone.get(&path).await;
    assert_eq!(status, 404);
    // Even put back on the list behind the API's back, a non-member gets nothing.
    let mut sneaked = subscribers.clone();
    sneaked.version += 1;
    sneaked.users.push(UserId::parse(&gone_id).unwrap());
    assert!(app.store.set_digest(&wid, &sneaked).await.unwrap());

    // A monthly budget, to see where it stands.
    let (status, body) = owner
        .post(
            &format!("/v1/workspaces/{id}/budgets"),
            json!({"name": "Monthly", "amount_usd": 200.0, "period": {"kind": "month"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Two weeks of spend, and one call on each side of the week's edges in Paris time.
    let key = app.key(&wid, Scope::Ingest, "production").await;
    let calls = [
        // The week before (W47): $15.
        ("2026-11-18T10:00:00Z", "chat", "openai", "gpt-4o", 10.0),
        (
            "2026-11-19T10:00:00Z",
            "search",
            "anthropic",
            "claude-sonnet-4-20250514",
            5.0,
        ),
        // Monday 00:30 in Paris, still Sunday in UTC: the week reported (W48).
        ("2026-11-22T23:30:00Z", "chat", "openai", "gpt-4o", 1.0),
        ("2026-11-24T10:00:00Z", "chat", "openai", "gpt-4o", 12.0),
        (
            "2026-11-26T10:00:00Z",
            "search",
            "anthropic",
            "claude-sonnet-4-20250514",
            25.0,
        ),
        // Monday 00:30 in Paris: the next week, not this one.
        ("2026-11-29T23:30:00Z", "chat", "openai", "gpt-4o", 100.0),
    ];
    let events: Vec<Value> = calls
        .iter()
        .map(|(ts, feature, provider, model, cost)| {
            json!({"provider": provider, "model": model, "timestamp": at(ts), "feature": feature,
                   "input_tokens": 100, "output_tokens": 10, "cost_usd": cost})
        })
        .collect();
    let (status, body) = app.post_events(&key, &json!({ "events": events })).await;
    assert_eq!(status, 200, "{body}");
    let (week, before) = (12.0 + 25.0 + 1.0, 10.0 + 5.0);

    let deps = app.parts.digests();
    // 07:30 on Monday in Paris: not yet.
    assert_eq!(
        digest::run(&deps, at("2026-11-30T06:30:00Z"))
            .await
            .unwrap(),
        0
    );
    // 09:00: one mail, to the subscriber.
    clock.set(at("2026-11-30T08:00:00Z"));
    assert_eq!(
        digest::run(&deps, at("2026-11-30T08:00:00Z"))
            .await
            .unwrap(),
        1
    );
    let mails = digests_to(&app, "owner@example.com");
    assert_eq!(mails.len(), 1);
    assert!(digests_to(&app, "viewer@example.com").is_empty());
    assert!(digests_to(&app, "gone@example.com").is_empty());
    let mail = &mails[0];
    assert!(mail.contains("2026-W48"), "{mail}");
    assert!(
        mail.contains(&format!("Cost: ${week:.2} (3 requests)")),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("The week before: ${before:.2}")),
        "{mail}"
    );
    let change = (week - before) / before * 100.0;
    assert!(mail.contains(&format!("Change: {change:+.1}%")), "{mail}");
    // Search went from $5 to $25: the top mover (tied with its model, features first).
    assert!(
        mail.contains("- feature search: +$20.00 ($5.00 -> $25.00)"),
        "{mail}"
    );
    assert!(mail.contains("- model claude-sonnet-4"), "{mail}");
    // November in Paris holds all six calls: $153 of $200.
    assert!(
        mail.contains("- Monthly: $153.00 of $200.00 (76%, on track)"),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("/workspaces/{id}/settings")),
        "{mail}"
    );
    assert!(mail.contains("text/html"), "an HTML part");
    assert!(
        mail.contains("<h1>Acme &lt;Labs&gt;"),
        "names escaped in the HTML"
    );

    // Again the same week: nothing.
    assert_eq!(
        digest::run(&deps, at("2026-11-30T09:00:00Z"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        digest::run(&deps, at("2026-12-02T12:00:00Z"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(digests_to(&app, "owner@example.com").len(), 1);

    // The next Monday: the next week (with the $100 call in it).
    assert_eq!(
        digest::run(&deps, at("2026-12-07T08:00:00Z"))
            .await
            .unwrap(),
        1
    );
    let mails = digests_to(&app, "owner@example.com");
    assert_eq!(mails.len(), 2);
    assert!(mails[1].contains("2026-W49"), "{}", mails[1]);
    assert!(
        mails[1].contains("Cost: $100.00 (1 requests)"),
        "{}",
        mails[1]
    );

    // Unsubscribed: none.
    let (status, body) = owner.put(&path, json!({"subscribed": false})).await;
    assert_eq!((status, &body), (200, &json!({"subscribed": false})));
    assert_eq!(
        digest::run(&deps, at("2026-12-14T08:00:00Z"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(digests_to(&app, "owner@example.com").len(), 2);
    assert!(digests_to(&app, "gone@example.com").is_empty());
}
