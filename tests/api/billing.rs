//! Billing over HTTP: checkout and portal against a local server that answers as Stripe's API
//! does, and webhooks signed the way Stripe signs them, driven by a test clock.

use std::sync::Arc;

use llmtrack_shared::config::StripeConfig;
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::billing::GRACE_PERIOD_MS;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::rollup::{Dimension, View};
use llmtrack_shared::domain::signature::sign;
use llmtrack_shared::ports::{Clock, Store};
use serde_json::{Value, json};

use super::fake_stripe::{FakeStripe, SECRET_KEY};
use crate::support::*;

const WEBHOOK_SECRET: &str = "whsec_test_current";
const OLD_WEBHOOK_SECRET: &str = "whsec_test_previous";
const PRICE_PRO: &str = "price_1LLMtrackPro";
const PRICE_TEAM: &str = "price_1LLMtrackTeam";
const DAY_MS: i64 = 86_400_000;

pub(crate) struct Billed {
    pub(crate) app: TestApp,
    pub(crate) stripe: FakeStripe,
    pub(crate) clock: Arc<TestClock>,
    pub(crate) owner: Browser,
    pub(crate) owner_email: String,
    pub(crate) ws: String,
}

pub(crate) async fn billed() -> Billed {
    billed_at(now_ms()).await
}

async fn billed_at(start_ms: i64) -> Billed {
    let (store, dir) = sqlite_store();
    billed_on(Arc::new(store), Some(dir), start_ms).await
}

async fn billed_on(
    store: llmtrack_shared::ports::DynStore,
    dir: Option<tempfile::TempDir>,
    start_ms: i64,
) -> Billed {
    let stripe = FakeStripe::start().await;
    let clock = TestClock::at(start_ms);
    let config = StripeConfig::new(
        SECRET_KEY,
        &format!("{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}"),
        PRICE_PRO,
        PRICE_TEAM,
        Some(&stripe.base),
    )
    .unwrap();
    let app = spawn_app_with(store, clock.clone(), dir, Some(config)).await;
    let owner_email = format!(
        "owner-{}@example.com",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let owner = app.sign_in(&owner_email).await;
    let (status, ws) = owner.post("/v1/workspaces", json!({"name": "Acme"})).await;
    assert_eq!(status, 201, "{ws}");
    Billed {
        ws: ws["id"].as_str().unwrap().to_owned(),
        app,
        stripe,
        clock,
        owner,
        owner_email,
    }
}

impl Billed {
    fn now_s(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    /// Delivers an event as Stripe does: the raw body, signed at `t` with `secret`.
    async fn deliver_signed(&self, body: &str, header: Option<String>) -> (u16, Value) {
        let mut req = self
            .app
            .http
            .post(self.app.url("/v1/billing/webhook"))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_owned());
        if let Some(h) = header {
            req = req.header("stripe-signature", h);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn deliver(&self, event: &Value) -> (u16, Value) {
        let body = event.to_string();
        let header = sign(body.as_bytes(), WEBHOOK_SECRET, self.now_s());
        self.deliver_signed(&body, Some(header)).await
    }

    /// Stripe's `customer.subscription.deleted` for `sub`, its paid period already over.
    async fn end(&self, sub: &Sub) -> (u16, Value) {
        let ended = Sub {
            status: "canceled",
            period_end: self.now_s() - 1,
            ..sub.clone()
        };
        self.deliver(&subscription_event(
            "customer.subscription.deleted",
            &ended,
            self.now_s(),
        ))
        .await
    }

    async fn plan(&self) -> String {
        let (status, usage) = self
            .owner
            .get(&format!("/v1/workspaces/{}/usage", self.ws))
            .await;
        assert_eq!(status, 200, "{usage}");
        usage["plan"].as_str().unwrap().to_owned()
    }

    /// Runs the background upkeep until no retention pass is left (one may be running in the
    /// server's own background task).
    async fn settle(&self) {
        for _ in 0..500 {
            llmtrack::upkeep(&self.app.parts).await.unwrap();
            if self.app.store.unfinished_jobs().await.unwrap().is_empty() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("retention passes did not finish");
    }

    /// What a paid plan allows and free does not: one more key, one more member invited, and
    /// 30 days of history unclamped. Returns both statuses and whether the summary was clamped.
    async fn try_growing(&self, read: &str, n: usize) -> (u16, u16, bool) {
        let keys = format!("/v1/workspaces/{}/keys", self.ws);
        let invite = format!("/v1/workspaces/{}/invitations", self.ws);
        let (key, _) = self
            .owner
            .post(&keys, json!({"name": format!("k{n}"), "source": "prod"}))
            .await;
        let email = format!("new{n}@example.com");
        let (member, _) = self
            .owner
            .post(&invite, json!({"email": email, "role": "viewer"}))
            .await;
        let (_, summary) = self.app.summary(read, "?from=last_30d").await;
        (key, member, summary["covered"]["clamped"] == true)
    }

    async fn usage(&self) -> Value {
        self.owner
            .get(&format!("/v1/workspaces/{}/usage", self.ws))
            .await
            .1
    }

    /// Subscribes the workspace to `plan` the way Stripe reports it: checkout completed, then
    /// the subscription created.
    pub(crate) async fn subscribe(&self, plan: &str) -> Sub {
        let sub = Sub {
            id: format!("sub_{}", ulid::Ulid::new()),
            customer: format!("cus_{}", ulid::Ulid::new()),
            status: "active",
            price: if plan == "team" {
                PRICE_TEAM
            } else {
                PRICE_PRO
            },
            // Well within the owner's 30-day session, so tests can travel past it.
            period_end: self.now_s() + 20 * 86_400,
            cancel_at_period_end: false,
            ws: self.ws.clone(),
        };
        let t = self.now_s() - 2;
        let (s, b) = self
            .deliver(&checkout_completed(&self.ws, &sub, plan, t))
            .await;
        assert_eq!((s, b["outcome"].as_str()), (200, Some("applied")), "{b}");
        let (s, b) = self
            .deliver(&subscription_event(
                "customer.subscription.created",
                &sub,
                t + 1,
            ))
            .await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(self.plan().await, plan);
        sub
    }
}

#[derive(Clone)]
pub(crate) struct Sub {
    pub(crate) id: String,
    customer: String,
    status: &'static str,
    price: &'static str,
    period_end: i64,
    cancel_at_period_end: bool,
    ws: String,
}

fn evt_id() -> String {
    format!("evt_{}", ulid::Ulid::new())
}

fn envelope(kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": evt_id(),
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": created,
        "livemode": false,
        "pending_webhooks": 1,
        "request": {"id": null, "idempotency_key": null},
        "type": kind,
        "data": {"object": object}
    })
}

fn checkout_completed(ws: &str, sub: &Sub, plan: &str, created: i64) -> Value {
    envelope(
        "checkout.session.completed",
        created,
        json!({
            "id": format!("cs_test_{}", ulid::Ulid::new()),
            "object": "checkout.session",
            "client_reference_id": ws,
            "customer": sub.customer,
            "subscription": sub.id,
            "mode": "subscription",
            "payment_status": "paid",
            "status": "complete",
            "metadata": {"workspace": ws, "plan": plan},
            "amount_total": 2900,
            "currency": "usd"
        }),
    )
}

/// A Subscription in the current API shape: the period lives on its items.
fn subscription_event(kind: &str, sub: &Sub, created: i64) -> Value {
    envelope(
        kind,
        created,
        json!({
            "id": sub.id,
            "object": "subscription",
            "customer": sub.customer,
            "status": sub.status,
            "cancel_at_period_end": sub.cancel_at_period_end,
            "canceled_at": null,
            "currency": "usd",
            "metadata": {"workspace": sub.ws},
            "items": {"object": "list", "data": [{
                "id": "si_1",
                "object": "subscription_item",
                "current_period_start": sub.period_end - 30 * 86_400,
                "current_period_end": sub.period_end,
                "price": {"id": sub.price, "object": "price", "recurring": {"interval": "month"}},
                "quantity": 1
            }]}
        }),
    )
}

fn invoice_event(kind: &str, sub: &Sub, created: i64) -> Value {
    envelope(
        kind,
        created,
        json!({
            "id": format!("in_{}", ulid::Ulid::new()),
            "object": "invoice",
            "customer": sub.customer,
            "status": if kind == "invoice.paid" { "paid" } else { "open" },
            "attempt_count": 1,
            "amount_due": 2900,
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub.id, "metadata": {}}}
        }),
    )
}

fn subjects(app: &TestApp, to: &str) -> Vec<String> {
    app.mails_to(to)
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
        })
        .collect()
}

#[tokio::test]
async fn checkout_and_portal_send_stripe_what_it_needs() {
    let b = billed().await;
    let (status, body) = b
        .owner
        .post(
            &format!("/v1/workspaces/{}/billing/checkout", b.ws),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://checkout.stripe.com/")
    );
    let sent = b.stripe.requests("/v1/checkout/sessions");
    assert_eq!(sent.len(), 1);
    let first = &sent[0];
    assert_eq!(first.field("mode"), Some("subscription"));
    // Retried requests carry one idempotency key, so a retry never opens a second session.
    assert!(first.idempotency_key.is_some());
    assert_eq!(first.field("line_items[0][price]"), Some(PRICE_PRO));
    assert_eq!(first.field("line_items[0][quantity]"), Some("1"));
    assert_eq!(first.field("client_reference_id"), Some(b.ws.as_str()));
    assert_eq!(first.field("customer_email"), Some(b.owner_email.as_str()));
    assert_eq!(
        first.field("customer"),
        None,
        "no customer yet: Checkout creates it"
    );
    assert_eq!(first.field("metadata[workspace]"), Some(b.ws.as_str()));
    assert_eq!(
        first.field("subscription_data[metadata][workspace]"),
        Some(b.ws.as_str())
    );
    assert_eq!(
        first.field("subscription_data[metadata][plan]"),
        Some("pro")
    );
    let page = b.app.url(&format!("/workspaces/{}/billing", b.ws));
    assert_eq!(
        first.field("success_url"),
        Some(format!("{page}?checkout=success&session_id={{CHECKOUT_SESSION_ID}}").as_str())
    );
    assert_eq!(
        first.field("cancel_url"),
        Some(format!("{page}?checkout=cancelled").as_str())
    );
    // Nothing changes until Stripe confirms.
    assert_eq!(b.plan().await, "free");

    // No customer yet: the portal has nothing to show.
    let (status, body) = b
        .owner
        .post(
            &format!("/v1/workspaces/{}/billing/portal", b.ws),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");

    let sub = b.subscribe("pro").await;
    let (status, body) = b
        .owner
        .post(
            &format!("/v1/workspaces/{}/billing/portal", b.ws),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://billing.stripe.com/")
    );
    let portal = &b.stripe.requests("/v1/billing_portal/sessions")[0];
    assert_eq!(portal.field("customer"), Some(sub.customer.as_str()));
    assert_eq!(portal.field("return_url"), Some(page.as_str()));

    // Subscribed: a second checkout is refused, for this plan and for another.
    let (status, body) = b
        .owner
        .post(
            &format!("/v1/workspaces/{}/billing/checkout", b.ws),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already on the pro plan")
    );
    let (status, body) = b
        .owner
        .post(
            &format!("/v1/workspaces/{}/billing/checkout", b.ws),
            json!({"plan": "team"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("portal")
    );

    // Once the subscription has ended, the next checkout reuses the customer.
    let (s, _) = b.end(&sub).await;
    assert_eq!(s, 200);
    assert_eq!(b.plan().await, "free");
    let (status, body) = b
        .owner
        .post(
            &format!("/v1/workspaces/{}/billing/checkout", b.ws),
            json!({"plan": "team"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let again = b.stripe.requests("/v1/checkout/sessions");
    let last = again.last().unwrap();
    assert_eq!(last.field("customer"), Some(sub.customer.as_str()));
    assert_eq!(last.field("customer_email"), None);
    assert_eq!(last.field("line_items[0][price]"), Some(PRICE_TEAM));
}

#[tokio::test]
async fn checkout_refuses_what_it_cannot_sell() {
    let b = billed().await;
    let path = format!("/v1/workspaces/{}/billing/checkout", b.ws);
    for (body, code) in [
        (json!({"plan": "free"}), "invalid_plan"),
        (json!({"plan": "enterprise"}), "invalid_plan"),
        (json!({}), "invalid_json"),
    ] {
        let (status, resp) = b.owner.post(&path, body.clone()).await;
        assert_eq!(status, 400, "{body}: {resp}");
        if code != "invalid_json" {
            assert_eq!(resp["error"]["code"], code, "{resp}");
        }
    }
    // An admin and a viewer may not buy; a stranger does not see the workspace; nobody signed
    // in is unauthorised.
    let ws_id = llmtrack_shared::domain::ids::WorkspaceId::parse(&b.ws).unwrap();
    // Room for more members than free's one (set by an operator, so no billing record).
    b.app.store.set_plan(&ws_id, Plan::Team).await.unwrap();
    for (role, expected) in [("admin", 403), ("viewer", 403)] {
        let email = format!(
            "{role}-{}@example.com",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        llmtrack::admin::add_member(
            b.app.store.as_ref(),
            &b.ws,
            &email,
            llmtrack_shared::domain::access::Role::parse(role).unwrap(),
            now_ms(),
        )
        .await
        .unwrap_or_else(|e| panic!("{role}: {e}"));
        let who = b.app.sign_in(&email).await;
        let (status, resp) = who.post(&path, json!({"plan": "pro"})).await;
        assert_eq!(status, expected, "{role}: {resp}");
        let portal = format!("/v1/workspaces/{}/billing/portal", b.ws);
        let (status, resp) = who.post(&portal, json!({})).await;
        assert_eq!(status, expected, "{role} on the portal: {resp}");
    }
    // The portal follows the same rule; a key, read or ingest, is no session at all.
    let portal = format!("/v1/workspaces/{}/billing/portal", b.ws);
    let stranger = b.app.sign_in("stranger@example.com").await;
    for p in [&path, &portal] {
        assert_eq!(stranger.post(p, json!({"plan": "pro"})).await.0, 404, "{p}");
        assert_eq!(
            b.app.browser().post(p, json!({"plan": "pro"})).await.0,
            401,
            "{p}"
        );
        for scope in [Scope::Read, Scope::Ingest] {
            let key = b.app.key(&ws_id, scope, "prod").await;
            let resp = b
                .app
                .http
                .post(b.app.url(p))
                .bearer_auth(&key)
                .header("origin", b.app.url(""))
                .json(&json!({"plan": "pro"}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 401, "{p} with a {scope:?} key");
        }
    }
    assert!(b.stripe.requests("/v1/checkout/sessions").is_empty());
    assert!(b.app.store.billing(&ws_id).await.unwrap().is_none());
}

#[tokio::test]
async fn without_stripe_keys_billing_says_it_is_not_configured() {
    let app = spawn_app().await;
    let owner = app.sign_in("solo@example.com").await;
    let (_, ws) = owner.post("/v1/workspaces", json!({"name": "Solo"})).await;
    let ws = ws["id"].as_str().unwrap();
    for path in [
        format!("/v1/workspaces/{ws}/billing/checkout"),
        format!("/v1/workspaces/{ws}/billing/portal"),
    ] {
        let (status, body) = owner.post(&path, json!({"plan": "pro"})).await;
        assert_eq!(status, 503, "{path}: {body}");
        assert_eq!(body["error"]["code"], "billing_not_configured");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("admin set-plan")
        );
    }
    let (status, body) = app.browser().post("/v1/billing/webhook", json!({})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "billing_not_configured");
}

#[tokio::test]
async fn webhooks_not_signed_by_stripe_change_nothing() {
    let b = billed().await;
    let sub = Sub {
        id: "sub_forged".into(),
        customer: "cus_forged".into(),
        status: "active",
        price: PRICE_TEAM,
        period_end: b.now_s() + 30 * 86_400,
        cancel_at_period_end: false,
        ws: b.ws.clone(),
    };
    let event = subscription_event("customer.subscription.created", &sub, b.now_s());
    let body = event.to_string();
    let now = b.now_s();
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("unsigned", body.clone(), None),
        ("empty header", body.clone(), Some(String::new())),
        ("no v1", body.clone(), Some(format!("t={now}"))),
        ("no timestamp", body.clone(), Some("v1=abc".into())),
        (
            "wrong secret",
            body.clone(),
            Some(sign(body.as_bytes(), "whsec_attacker", now)),
        ),
        (
            "stale",
            body.clone(),
            Some(sign(body.as_bytes(), WEBHOOK_SECRET, now - 301)),
        ),
        (
            "future",
            body.clone(),
            Some(sign(body.as_bytes(), WEBHOOK_SECRET, now + 301)),
        ),
        (
            "tampered",
            body.replace(PRICE_TEAM, PRICE_PRO),
            Some(sign(body.as_bytes(), WEBHOOK_SECRET, now)),
        ),
        (
            "signed junk",
            "{not json".into(),
            Some(sign(b"{not json", WEBHOOK_SECRET, now)),
        ),
        (
            "signed but no id",
            r#"{"type":"invoice.paid","created":1,"data":{"object":{}}}"#.into(),
            Some(sign(
                br#"{"type":"invoice.paid","created":1,"data":{"object":{}}}"#,
                WEBHOOK_SECRET,
                now,
            )),
        ),
    ];
    for (name, body, header) in cases {
        let (status, resp) = b.deliver_signed(&body, header).await;
        assert_eq!(status, 400, "{name}: {resp}");
        let code = resp["error"]["code"].as_str().unwrap();
        assert!(
            code == "invalid_signature" || code == "invalid_event",
            "{name}: {resp}"
        );
        assert!(!resp["error"]["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(b.plan().await, "free");
    assert!(b.usage().await["subscription"].is_null());

    // A replay of a genuine delivery after the tolerance is stale, whatever it says.
    let header = sign(body.as_bytes(), WEBHOOK_SECRET, now);
    b.clock.set(b.clock.now_ms() + 6 * 60_000);
    let (status, _) = b.deliver_signed(&body, Some(header)).await;
    assert_eq!(status, 400);
    assert_eq!(b.plan().await, "free");

    // Rotation: a delivery signed with the previous secret, or carrying several v1 signatures
    // of which one is good, is accepted.
    let now = b.now_s();
    let rotated = format!(
        "t={now},v1={},v1={}",
        "0".repeat(64),
        sign(body.as_bytes(), OLD_WEBHOOK_SECRET, now)
            .split("v1=")
            .nth(1)
            .unwrap()
    );
    let (status, resp) = b.deliver_signed(&body, Some(rotated)).await;
    assert_eq!(
        (status, resp["outcome"].as_str()),
        (200, Some("applied")),
        "{resp}"
    );
    assert_eq!(b.plan().await, "team");
}

#[tokio::test]
async fn each_event_is_processed_once_and_unknown_ones_are_acknowledged() {
    let b = billed().await;
    let sub = b.subscribe("pro").await;
    let failed = invoice_event("invoice.payment_failed", &sub, b.now_s());
    let (s1, r1) = b.deliver(&failed).await;
    let (s2, r2) = b.deliver(&failed).await;
    assert_eq!((s1, r1["outcome"].as_str()), (200, Some("applied")), "{r1}");
    assert_eq!(
        (s2, r2["outcome"].as_str()),
        (200, Some("duplicate")),
        "{r2}"
    );
    let warned: Vec<String> = subjects(&b.app, &b.owner_email)
        .into_iter()
        .filter(|s| s.starts_with("Payment failed"))
        .collect();
    assert_eq!(warned.len(), 1, "one email for one failure: {warned:?}");

    // A type we do not use, and an event about a customer that is not ours.
    let (status, resp) = b
        .deliver(&envelope(
            "customer.created",
            b.now_s(),
            json!({"id": "cus_x", "object": "customer"}),
        ))
        .await;
    assert_eq!(
        (status, resp["outcome"].as_str()),
        (200, Some("ignored")),
        "{resp}"
    );
    let stranger = Sub {
        customer: "cus_unknown".into(),
        ws: "ws_unknown".into(),
        ..sub.clone()
    };
    let (status, resp) = b
        .deliver(&invoice_event("invoice.paid", &stranger, b.now_s()))
        .await;
    assert_eq!(
        (status, resp["outcome"].as_str()),
        (200, Some("ignored")),
        "{resp}"
    );
    assert_eq!(b.usage().await["subscription"]["status"], "past_due");
}

#[tokio::test]
async fn an_older_event_never_overwrites_newer_state() {
    let b = billed().await;
    let sub = b.subscribe("pro").await;
    let t = b.now_s();
    let newer = Sub {
        price: PRICE_TEAM,
        ..sub.clone()
    };
    let older = Sub {
        status: "past_due",
        ..sub.clone()
    };
    let (_, r) = b
        .deliver(&subscription_event(
            "customer.subscription.updated",
            &newer,
            t + 10,
        ))
        .await;
    assert_eq!(r["outcome"], "applied", "{r}");
    let (status, r) = b
        .deliver(&subscription_event(
            "customer.subscription.updated",
            &older,
            t + 5,
        ))
        .await;
    assert_eq!(
        (status, r["outcome"].as_str()),
        (200, Some("unchanged")),
        "{r}"
    );
    let usage = b.usage().await;
    assert_eq!(usage["plan"], "team");
    assert_eq!(usage["subscription"]["status"], "active");
    // An invoice paid long ago does not undo a newer failure either.
    let (_, r) = b
        .deliver(&invoice_event("invoice.payment_failed", &sub, t + 20))
        .await;
    assert_eq!(r["outcome"], "applied");
    let (_, r) = b
        .deliver(&invoice_event("invoice.paid", &sub, t + 15))
        .await;
    assert_eq!(r["outcome"], "unchanged", "{r}");
    assert_eq!(b.usage().await["subscription"]["status"], "past_due");
}

#[tokio::test]
async fn an_unpaid_invoice_ends_in_free_when_the_grace_period_is_over() {
    let b = billed().await;
    let sub = b.subscribe("pro").await;
    // Pro limits: more than free's 2 keys.
    let keys = format!("/v1/workspaces/{}/keys", b.ws);
    for i in 0..3 {
        let (s, r) = b
            .owner
            .post(&keys, json!({"name": format!("k{i}"), "source": "prod"}))
            .await;
        assert_eq!(s, 201, "{r}");
    }
    let failed_at = b.now_s();
    let (_, r) = b
        .deliver(&invoice_event("invoice.payment_failed", &sub, failed_at))
        .await;
    assert_eq!(r["outcome"], "applied");
    let usage = b.usage().await;
    assert_eq!(usage["plan"], "pro", "the grace period keeps the plan");
    assert_eq!(usage["subscription"]["status"], "past_due");
    let grace_end = failed_at * 1000 + GRACE_PERIOD_MS;
    assert_eq!(
        usage["subscription"]["grace_ends_at"],
        llmtrack_shared::domain::time::rfc3339(grace_end)
    );
    let warning = b
        .app
        .mails_to(&b.owner_email)
        .into_iter()
        .find(|m| m.contains("Subject: Payment failed"))
        .expect("a payment failure email to the owner");
    assert!(
        warning.contains(&llmtrack_shared::domain::time::rfc3339(grace_end)),
        "{warning}"
    );

    // Stripe retries and fails again: the grace period does not move, and no second email.
    b.clock.set(b.clock.now_ms() + 3 * DAY_MS);
    let (s, r) = b
        .deliver(&invoice_event("invoice.payment_failed", &sub, b.now_s()))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        b.usage().await["subscription"]["grace_ends_at"],
        llmtrack_shared::domain::time::rfc3339(grace_end)
    );
    let warnings = subjects(&b.app, &b.owner_email)
        .into_iter()
        .filter(|s| s.starts_with("Payment failed"))
        .count();
    assert_eq!(warnings, 1);

    b.clock.set(grace_end - 60_000);
    assert_eq!(
        llmtrack::upkeep(&b.app.parts).await.map(|_| ()).ok(),
        Some(())
    );
    assert_eq!(b.plan().await, "pro");

    b.clock.set(grace_end + 60_000);
    llmtrack::upkeep(&b.app.parts).await.unwrap();
    assert_eq!(b.plan().await, "free");
    assert!(
        subjects(&b.app, &b.owner_email)
            .iter()
            .any(|s| s.contains("is now on the free plan"))
    );
    // Free limits at once: three active keys are over free's two, so no new one.
    let (s, r) = b
        .owner
        .post(&keys, json!({"name": "k3", "source": "prod"}))
        .await;
    assert_eq!(s, 409, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("free plan allows 2"),
        "{r}"
    );

    // The customer pays after all: the plan comes back.
    let (_, r) = b
        .deliver(&invoice_event("invoice.paid", &sub, b.now_s()))
        .await;
    assert_eq!(r["outcome"], "applied", "{r}");
    assert_eq!(b.plan().await, "pro");
    assert!(b.usage().await["subscription"]["grace_ends_at"].is_null());
}

#[tokio::test]
async fn a_cancellation_takes_effect_at_the_end_of_the_paid_period() {
    let b = billed().await;
    let sub = b.subscribe("team").await;
    let cancelling = Sub {
        cancel_at_period_end: true,
        ..sub.clone()
    };
    let (_, r) = b
        .deliver(&subscription_event(
            "customer.subscription.updated",
            &cancelling,
            b.now_s(),
        ))
        .await;
    assert_eq!(r["outcome"], "applied", "{r}");
    let usage = b.usage().await;
    assert_eq!(usage["plan"], "team");
    assert_eq!(usage["subscription"]["cancel_at_period_end"], true);
    assert_eq!(
        usage["subscription"]["period_ends_at"],
        llmtrack_shared::domain::time::rfc3339(sub.period_end * 1000)
    );
    b.clock.set(sub.period_end * 1000 - 1000);
    llmtrack::upkeep(&b.app.parts).await.unwrap();
    assert_eq!(b.plan().await, "team");
    b.clock.set(sub.period_end * 1000 + 1000);
    llmtrack::upkeep(&b.app.parts).await.unwrap();
    assert_eq!(b.plan().await, "free");
    // Stripe's own deletion event at the period end changes nothing more.
    let ended = Sub {
        status: "canceled",
        ..cancelling
    };
    let (_, r) = b
        .deliver(&subscription_event(
            "customer.subscription.deleted",
            &ended,
            b.now_s(),
        ))
        .await;
    assert_eq!(r["outcome"], "applied");
    assert_eq!(b.plan().await, "free");
    assert_eq!(b.usage().await["subscription"]["status"], "canceled");
}

#[tokio::test]
async fn a_plan_change_applies_to_every_limit_at_once() {
    let b = billed().await;
    let ws = llmtrack_shared::domain::ids::WorkspaceId::parse(&b.ws).unwrap();
    // Free: 2 keys (these two), 1 member, 7 days of history, 10,000 events a month.
    let read = b.app.key(&ws, Scope::Read, "prod").await;
    let ingest = b.app.key(&ws, Scope::Ingest, "prod").await;
    assert_eq!(b.try_growing(&read, 1).await, (409, 409, true));
    assert_eq!(b.usage().await["events"]["limit"], 10_000);

    // The month's 10,000 events are used up: the next batch is refused.
    let now = b.clock.now_ms();
    for batch in 0..100 {
        let events: Vec<Value> = (0..100)
            .map(|i| event(batch * 100 + i, now - ((batch * 100 + i) as i64) * 1_000))
            .collect();
        let (s, r) = b.app.post_events(&ingest, &json!({"events": events})).await;
        assert_eq!(s, 200, "{r}");
    }
    let more = json!({"events": [event(20_000, now - 5)]});
    let (s, r) = b.app.post_events(&ingest, &more).await;
    assert_eq!(
        (s, r["error"]["code"].as_str()),
        (429, Some("quota_exceeded")),
        "{r}"
    );

    // Pro, from the webhook on: every limit at once.
    let sub = b.subscribe("pro").await;
    let (s, r) = b.app.post_events(&ingest, &more).await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(1)), "{r}");
    assert_eq!(b.try_growing(&read, 2).await, (201, 201, false));
    let usage = b.usage().await;
    assert_eq!(usage["events"]["limit"], 1_000_000);
    assert_eq!(usage["active_keys"]["limit"], 20);
    assert_eq!(usage["history_days"], 90);

    // And back down when the subscription ends.
    b.end(&sub).await;
    assert_eq!(b.plan().await, "free");
    assert_eq!(b.try_growing(&read, 3).await, (409, 409, true));
    let (s, _) = b
        .app
        .post_events(&ingest, &json!({"events": [event(20_001, now - 5)]}))
        .await;
    assert_eq!(s, 429, "free's quota is used up again");
    assert_eq!(
        b.usage().await["events"]["limit"],
        Plan::Free.limits().events_per_month
    );
}

/// Events inside the new window are kept for it; those outside are deleted, on the local store.
#[tokio::test]
async fn stored_history_follows_the_plan_both_ways() {
    // A fixed day, so the month boundaries the rollups follow are known: 30 days back is last
    // month (its report long made), 10 days back this month.
    let b = billed_at(
        chrono::DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .unwrap()
            .timestamp_millis(),
    )
    .await;
    let ws = llmtrack_shared::domain::ids::WorkspaceId::parse(&b.ws).unwrap();
    let sub = b.subscribe("pro").await;
    let ingest = b.app.key(&ws, Scope::Ingest, "prod").await;
    let now = b.clock.now_ms();
    let times = [
        now - 30 * DAY_MS,
        now - 10 * DAY_MS,
        now - 2 * DAY_MS,
        now - 3_600_000,
    ];
    let events: Vec<Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| event(i, *t))
        .collect();
    let (s, r) = b.app.post_events(&ingest, &json!({"events": events})).await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(4)), "{r}");
    let stored = |store: Arc<dyn Store>| {
        let ws = ws.clone();
        async move {
            let mut out = store.events(&ws, 0, i64::MAX, None, 100).await.unwrap();
            out.sort_by_key(|e| e.ts_ms);
            out.into_iter()
                .map(|e| (e.ts_ms, e.expires_ms))
                .collect::<Vec<_>>()
        }
    };
    let pro = Plan::Pro.history_ms();
    assert_eq!(
        stored(b.app.store.clone()).await,
        times.iter().map(|t| (*t, t + pro)).collect::<Vec<_>>()
    );

    // Downgrade: outside free's 7 days is deleted; the rest now expires after 7 days.
    b.end(&sub).await;
    assert_eq!(b.plan().await, "free");
    b.settle().await;
    let free = Plan::Free.history_ms();
    assert_eq!(
        stored(b.app.store.clone()).await,
        times[2..]
            .iter()
            .map(|t| (*t, t + free))
            .collect::<Vec<_>>()
    );

    // Upgrade again: what is still held is kept for the longer window.
    let team = Sub {
        id: format!("sub_{}", ulid::Ulid::new()),
        price: PRICE_TEAM,
        status: "active",
        period_end: b.now_s() + 30 * 86_400,
        ..sub
    };
    b.deliver(&subscription_event(
        "customer.subscription.created",
        &team,
        b.now_s(),
    ))
    .await;
    assert_eq!(b.plan().await, "team");
    b.settle().await;
    let year = Plan::Team.history_ms();
    assert_eq!(
        stored(b.app.store.clone()).await,
        times[2..]
            .iter()
            .map(|t| (*t, t + year))
            .collect::<Vec<_>>()
    );
    // Rollups follow their own rule: kept for the window, and until their month's report is
    // made. Last month's hour (past its report's grace) is gone; this month's stays for its
    // report even though its raw event was deleted.
    let hours = |t: i64| (t / 3_600_000, t / 3_600_000 + 1);
    for (t, kept) in [(times[0], false), (times[1], true), (times[3], true)] {
        let (from, to) = hours(t);
        let total = b
            .app
            .store
            .rollups(&ws, &View::of(Dimension::Total), from, to)
            .await
            .unwrap();
        let model = b
            .app
            .store
            .rollups(&ws, &View::of(Dimension::Model), from, to)
            .await
            .unwrap();
        assert_eq!(!total.is_empty(), kept, "total rollup of {t}");
        assert_eq!(!model.is_empty(), kept, "model rollup of {t}");
    }
}

/// The same rules on DynamoDB (moto): the record, the plan and the event id saved in one
/// transaction, a repeated delivery refused by it, and the sweep finding the record through the
/// due index.
#[tokio::test]
async fn on_dynamodb_an_event_applies_once_and_the_grace_period_ends_in_free() {
    let b = billed_on(Arc::new(dynamo_store().await), None, now_ms()).await;
    let sub = b.subscribe("team").await;
    let failed = invoice_event("invoice.payment_failed", &sub, b.now_s());
    let (_, first) = b.deliver(&failed).await;
    let (_, again) = b.deliver(&failed).await;
    assert_eq!(
        (first["outcome"].as_str(), again["outcome"].as_str()),
        (Some("applied"), Some("duplicate"))
    );
    let warnings = subjects(&b.app, &b.owner_email)
        .into_iter()
        .filter(|s| s.starts_with("Payment failed"))
        .count();
    assert_eq!(warnings, 1);
    let stale = Sub {
        status: "active",
        ..sub.clone()
    };
    let (_, r) = b
        .deliver(&subscription_event(
            "customer.subscription.updated",
            &stale,
            b.now_s() - 60,
        ))
        .await;
    assert_eq!(
        r["outcome"], "unchanged",
        "an older update does not end the grace period: {r}"
    );
    b.clock.set((b.now_s() * 1000) + GRACE_PERIOD_MS + 60_000);
    llmtrack::upkeep(&b.app.parts).await.unwrap();
    assert_eq!(b.plan().await, "free");
    assert!(
        subjects(&b.app, &b.owner_email)
            .iter()
            .any(|s| s.contains("is now on the free plan"))
    );
}

/// Self-hosted, without Stripe: `admin set-plan` changes the plan and runs the retention pass
/// before it returns.
#[tokio::test]
async fn admin_set_plan_moves_stored_history_with_the_plan() {
    let app = spawn_app().await;
    let ws = app.workspace(Plan::Team).await;
    let key = app.key(&ws, Scope::Ingest, "prod").await;
    let now = now_ms();
    let times = [now - 40 * DAY_MS, now - 3 * DAY_MS];
    let events: Vec<Value> = times
        .iter()
        .enumerate()
        .map(|(i, t)| event(i, *t))
        .collect();
    let (s, r) = app.post_events(&key, &json!({"events": events})).await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(2)), "{r}");

    let job = llmtrack::admin::set_plan(app.store.as_ref(), ws.as_str(), Plan::Free, now_ms())
        .await
        .unwrap()
        .expect("a retention pass");
    let done = llmtrack::admin::run_retention(app.store.clone(), job)
        .await
        .unwrap();
    assert_eq!(done["events_deleted"], 1, "{done}");
    assert_eq!(done["events_kept"], 1, "{done}");
    let left = app.store.events(&ws, 0, i64::MAX, None, 10).await.unwrap();
    assert_eq!(
        left.iter()
            .map(|e| (e.ts_ms, e.expires_ms))
            .collect::<Vec<_>>(),
        vec![(times[1], times[1] + Plan::Free.history_ms())]
    );
    // The same plan again changes nothing and queues nothing.
    let again = llmtrack::admin::set_plan(app.store.as_ref(), ws.as_str(), Plan::Free, now_ms())
        .await
        .unwrap();
    assert!(again.is_none());
}

/// On AWS a retention pass whose Lambda ran out of time is carried on by the billing sweep once
/// it has made no progress for 15 minutes, and not before.
#[tokio::test]
async fn the_sweep_carries_on_a_stalled_retention_pass() {
    let b = billed().await;
    let ws = llmtrack_shared::domain::ids::WorkspaceId::parse(&b.ws).unwrap();
    let job = llmtrack_shared::retention_job::start(
        b.app.store.as_ref(),
        &ws,
        Plan::Free,
        Plan::Free,
        b.clock.now_ms(),
    )
    .await
    .unwrap();
    let billing = b.app.parts.billing();
    b.clock.set(b.clock.now_ms() + 14 * 60_000);
    llmtrack_billing::sweep(&billing).await.unwrap();
    let state = |j: Option<llmtrack_shared::ports::Job>| j.unwrap().state;
    assert_eq!(
        state(b.app.store.job(&ws, &job.id).await.unwrap()),
        llmtrack_shared::ports::JobState::Queued
    );
    b.clock.set(b.clock.now_ms() + 2 * 60_000);
    llmtrack_billing::sweep(&billing).await.unwrap();
    assert_eq!(
        state(b.app.store.job(&ws, &job.id).await.unwrap()),
        llmtrack_shared::ports::JobState::Done
    );
}
