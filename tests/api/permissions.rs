//! The permission matrix (docs/PERMISSIONS.md), checked on every endpoint of every function for
//! owner, admin, viewer, a member of another workspace, a read key, an ingest key and no
//! credentials. Each call gets fresh targets, so destructive calls do not disturb the next.

use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::account::{Email, Invitation};
use llmtrack_shared::domain::apikey::Scope;
use llmtrack_shared::domain::ids::{InvitationId, UserId, WorkspaceId};
use llmtrack_shared::domain::plan::Plan;
use serde_json::{Value, json};

use crate::support::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Owner,
    Admin,
    Viewer,
    Outsider,
    ReadKey,
    IngestKey,
    Nobody,
}

/// Who may call an endpoint.
#[derive(Clone, Copy, Debug)]
enum Rule {
    /// Anyone signed in (not workspace-scoped).
    SignedIn,
    /// Members of the workspace with at least this role.
    Member(Role),
    /// A read key, or a member with a session (analytics).
    Reader,
    /// An ingest key.
    Ingest,
    /// Only the person the invitation is addressed to (none of the callers here).
    Invitee,
    /// Anyone at all.
    Public,
}

fn expected(rule: Rule, who: Who) -> u16 {
    match (rule, who) {
        (Rule::Public, _) => 200,
        (Rule::Invitee, Who::ReadKey | Who::IngestKey | Who::Nobody) => 401,
        (Rule::Invitee, _) => 404,
        (Rule::Ingest, Who::IngestKey) => 200,
        (Rule::Ingest, Who::ReadKey) => 403,
        (Rule::Ingest, _) => 401,
        (Rule::Reader, Who::Owner | Who::Admin | Who::Viewer | Who::ReadKey) => 200,
        (Rule::Reader, Who::IngestKey) => 403,
        (Rule::Reader, Who::Outsider) => 404,
        (Rule::Reader, Who::Nobody) => 401,
        (Rule::SignedIn, Who::Owner | Who::Admin | Who::Viewer | Who::Outsider) => 200,
        (Rule::SignedIn, _) => 401,
        (Rule::Member(_), Who::Outsider) => 404,
        (Rule::Member(_), Who::ReadKey | Who::IngestKey | Who::Nobody) => 401,
        (Rule::Member(min), who) => {
            let role = match who {
                Who::Owner => Role::Owner,
                Who::Admin => Role::Admin,
                _ => Role::Viewer,
            };
            if role >= min { 200 } else { 403 }
        }
    }
}

struct World {
    app: TestApp,
    ws: WorkspaceId,
    sessions: Vec<(Who, Browser)>,
    read_key: String,
    ingest_key: String,
}

async fn world() -> World {
    let app = spawn_app().await;
    let owner = app.sign_in("owner@example.com").await;
    let (_, ws) = owner.post("/v1/workspaces", json!({"name": "Acme"})).await;
    let ws = WorkspaceId::parse(ws["id"].as_str().unwrap()).unwrap();
    app.store.set_plan(&ws, Plan::Team).await.unwrap();
    llmtrack::admin::add_member(
        app.store.as_ref(),
        ws.as_str(),
        "admin@example.com",
        Role::Admin,
        now_ms(),
    )
    .await
    .unwrap();
    llmtrack::admin::add_member(
        app.store.as_ref(),
        ws.as_str(),
        "viewer@example.com",
        Role::Viewer,
        now_ms(),
    )
    .await
    .unwrap();
    let admin = app.sign_in("admin@example.com").await;
    let viewer = app.sign_in("viewer@example.com").await;
    let outsider = app.sign_in("outsider@example.com").await;
    outsider
        .post("/v1/workspaces", json!({"name": "Elsewhere"}))
        .await;
    let read_key = app.key(&ws, Scope::Read, "scripts").await;
    let ingest_key = app.key(&ws, Scope::Ingest, "production").await;
    World {
        app,
        ws,
        sessions: vec![
            (Who::Owner, owner),
            (Who::Admin, admin),
            (Who::Viewer, viewer),
            (Who::Outsider, outsider),
        ],
        read_key,
        ingest_key,
    }
}

impl World {
    /// Fresh targets for one call, made only when the path names them: a key, a viewer, an invitation.
    async fn path(&self, template: &str, n: usize) -> String {
        let mut path = template.replace("{ws}", self.ws.as_str());
        if path.contains("{key}") {
            let raw = self.app.key(&self.ws, Scope::Ingest, "target").await;
            let keys = self.app.store.keys(&self.ws).await.unwrap();
            let id = keys
                .iter()
                .find(|k| raw.starts_with(&k.prefix))
                .unwrap()
                .id
                .to_string();
            path = path.replace("{key}", &id);
        }
        if path.contains("{member}") {
            let m = llmtrack::admin::add_member(
                self.app.store.as_ref(),
                self.ws.as_str(),
                &format!("target{n}@example.com"),
                Role::Viewer,
                now_ms(),
            )
            .await
            .unwrap();
            path = path.replace("{member}", m.user_id.as_str());
        }
        if path.contains("{del}") {
            let spec = llmtrack_deletion::job::Spec {
                scope: llmtrack_shared::domain::deletion::Scope::Usage {
                    from_ms: 0,
                    to_ms: 3_600_000,
                    source: None,
                },
                requested_by: UserId::generate(now_ms()),
                notify: None,
                purge_after_ms: 0,
            };
            let job = llmtrack_deletion::job::new_job(&self.ws, &spec, now_ms()).unwrap();
            assert!(self.app.store.begin_deletion(&job, false).await.unwrap());
            path = path.replace("{del}", &job.id);
        }
        if path.contains("{rule}") {
            let rule = llmtrack_shared::domain::alert::AlertRule {
                id: format!("alr_{}", ulid::Ulid::new().to_string().to_lowercase()),
                workspace: self.ws.clone(),
                name: "target".into(),
                condition: llmtrack_shared::domain::alert::Condition::Forecast { budget_usd: 10.0 },
                filter: None,
                email: true,
                webhook_url: None,
                slack: None,
                state: Default::default(),
                created_ms: now_ms(),
                updated_ms: now_ms(),
                version: 0,
            };
            self.app
                .store
                .create_alert_rule(&rule, u32::MAX)
                .await
                .unwrap();
            path = path.replace("{rule}", &rule.id);
        }
        if path.contains("{price}") {
            let rule: llmtrack_shared::domain::pricing::custom::PriceRule =
                serde_json::from_value(json!({"id": "", "provider": "openai", "model": "gpt-4o",
                    "kind": "discount", "percent": 10, "updated_at": ""}))
                .unwrap();
            let rule = llmtrack_shared::usecases::change_prices(
                self.app.store.as_ref(),
                self.app.store.as_ref(),
                &self.ws,
                llmtrack_shared::usecases::PriceChange::Add(rule),
                llmtrack_shared::usecases::Actor::CLI,
                now_ms(),
            )
            .await
            .unwrap();
            path = path.replace("{price}", &rule.id);
        }
        if path.contains("{inv}") {
            let inv = Invitation {
                id: InvitationId::generate(now_ms()),
                workspace_id: self.ws.clone(),
                email: Email::parse(&format!("invitee{n}@example.com")).unwrap(),
                role: Role::Viewer,
                invited_by: UserId::generate(now_ms()),
                created_ms: now_ms(),
                expires_ms: now_ms() + 86_400_000,
            };
            self.app.store.create_invitation(&inv).await.unwrap();
            path = path.replace("{inv}", inv.id.as_str());
        }
        path
    }

    async fn call(&self, who: Who, method: &str, path: &str, body: Option<Value>) -> u16 {
        let key = match who {
            Who::ReadKey => Some(&self.read_key),
            Who::IngestKey => Some(&self.ingest_key),
            _ => None,
        };
        if let Some((_, b)) = self.sessions.iter().find(|(w, _)| *w == who) {
            return b.send(method, path, body).await.0;
        }
        let mut req = self
            .app
            .http
            .request(method.parse().unwrap(), self.app.url(path))
            .header("origin", self.app.url(""));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap().status().as_u16()
    }
}

#[tokio::test]
async fn every_endpoint_answers_by_the_matrix() {
    let w = world().await;
    type Case = (&'static str, &'static str, Option<Value>, Rule);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/workspaces/{ws}/deletions",
            // A range with nothing in it, so the world stays as it is; before the rename below,
            // so `confirm` is the workspace's name.
            Some(json!({"scope": "usage", "confirm": "Acme",
                "from": "2020-01-01T00:00:00Z", "to": "2020-01-01T01:00:00Z"})),
            Rule::Member(Role::Owner),
        ),
        ("GET", "/v1/me", None, Rule::SignedIn),
        ("GET", "/v1/workspaces", None, Rule::SignedIn),
        (
            "POST",
            "/v1/workspaces",
            Some(json!({"name": "New"})),
            Rule::SignedIn,
        ),
        (
            "GET",
            "/v1/workspaces/{ws}",
            None,
            Rule::Member(Role::Viewer),
        ),
        (
            "PATCH",
            "/v1/workspaces/{ws}",
            Some(json!({"name": "Renamed"})),
            Rule::Member(Role::Admin),
        ),
        (
            "GET",
            "/v1/workspaces/{ws}/usage",
            None,
            Rule::Member(Role::Viewer),
        ),
        (
            "GET",
            "/v1/workspaces/{ws}/members",
            None,
            Rule::Member(Role::Viewer),
        ),
        (
            "PATCH",
            "/v1/workspaces/{ws}/members/{member}",
            Some(json!({"role": "admin"})),
            Rule::Member(Role::Admin),
        ),
        (
            "DELETE",
            "/v1/workspaces/{ws}/members/{member}",
            None,
            Rule::Member(Role::Admin),
        ),
        (
            "GET",
            "/v1/workspaces/{ws}/invitations",
            None,
            Rule::Member(Role::Admin),
        ),
        (
            "POST",
            "/v1/workspaces/{ws}/invitations",
            Some(json!({"email": "new{n}@example.com", "role": "viewer"})),
            Rule::Member(Role::Admin),
        ),
        (
            "DELETE",
            "/v1/workspaces/{ws}/invitations/{inv}",
            None,
            Rule::Member(Role::Admin),
        ),
        (
            "GET",
            "/v1/workspaces/{ws}/audit",
            None,
            Rule::Member(Role::Admin),
        ),
        (
            "GET",
            "/v1/workspaces/{ws}/keys",
            None,
            Rule::Member(Role::Viewer),
        ),
        (
            "POST",
            "/v1/workspaces/{ws}/keys",
            Some(json!({"name": "k", "source": "prod"})),
            Rule::Member(Role::Admin),
        ),
        (
            "POST",
            "/v1/workspaces/{ws}/keys/{key}/deactivate",
            None,
            Rule::Member(Role::Admin),
        ),
        (
            "POST",
            "/v1/workspaces/{ws}/keys/{key}/reactivate",
            None,
            Rule::Member(Role::Admin),
        ),
        (
            "POST",
            "/v1/workspaces/{ws}/keys/{key}/rotate",
            None,
            Rule::Member(Role::Admin),
        ),
        (
            "DELETE",
            "/v1/workspaces/{ws}/keys/{key}",
            None,
            Rule::Member(Role::Admin),
        ),
        (
            "GET",
            "/v1/stats/summary?workspace={ws}",
            None,
            Rule::Reader,
        ),
        (
            "GET",
            "/v1/stats/timeseries?workspace={ws}&by=model",
            None,
            Rule::Reader,
        ),
        (
            "GET",
            "/v1/stats/breakdown?workspace={ws}&by=feature",
            None,
            Rule::Reader,
        ),
        ("GET", "/v1/stats/users?workspace={ws}", None, Rule::Reader),
        (
            "GET",
            "/v1/stats/users/someone?workspace={ws}",
            None,
            Rule::Reader,
        ),
        (
            "GET",
            "/v1/stats/forecast?workspace={ws}",
            None,
            Rule::Reader,
        ),
        ("GET", "/v1/events?workspace={ws}", None, Rule::Reader),
        (
            "POST",
            "/v1/exports",
            Some(json!({"kind": "events", "format": "csv", "workspace": "{ws}"})),
            Rule::Reader,
        ),
        (
            "POST",
            "/v1/events",
            Some(json!({"provider": "openai", "model": "gpt-4o"})),
            Rule::Ingest,
        ),
        (
            "POST",
            "/v1/workspaces/{ws}/invitations/{inv}/accept",
            None,
            Rule::Invitee,
        ),
        (
            "POST",
            "/v1/auth/email",
            Some(json!({"email": "someone{n}@example.com"})),
            Rule::Public,
        ),
        (
            "GET",
            "/v1/workspaces/{ws}/deletions/{del}",
            None,
            Rule::Member(Role::Owner),
        ),
        ("GET", "/v1/account/deletion", None, Rule::SignedIn),
        (
            "POST",
            "/v1/workspaces/{ws}/repricing",
            // A dry run: it changes nothing.
            Some(json!({})),
            Rule::Member(Role::Admin),
        ),
        (
            "PATCH",
            "/v1/me",
            Some(json!({"monthly_reports": true})),
            Rule::SignedIn,
        ),
        (
            "GET",
            "/v1/workspaces/{ws}/reports",
            None,
            Rule::Member(Role::Viewer),
        ),
        (
            "GET",
            "/v1/workspaces/{ws}/alerts",
            None,
            Rule::Member(Role::Viewer),
        ),
        (
            "POST",
            "/v1/workspaces/{ws}/alerts",
            Some(json!({"name": "r{n}", "condition": {"metric": "forecast", "budget_usd": 100}})),
            Rule::Member(Role::Admin),
        ),
        (
            "GET",
            "/v1/workspaces/{ws}/alerts/{rule}",
            None,
            Rule::Member(Role::Viewer),
        ),
        (
            "PATCH",
            "/v1/workspaces/{ws}/alerts/{rule}",
            Some(json!({"name": "renamed"})),
            Rule::Member(Role::Admin),
        ),
        (
            "GET",
            "/v1/workspaces/{ws}/alerts/{rule}/history",
            None,
            Rule::Member(Role::Viewer),
        ),
        (
            "POST",
            "/v1/workspaces/{ws}/alerts/{rule}/test",
            None,
            Rule::Member(Role::Admin),
        ),
        (
            "DELETE",
            "/v1/workspaces/{ws}/alerts/{rule}",
            None,
            Rule::Member(Role::Admin),
        ),
        (
            "GET",
            "/v1/workspaces/{ws}/prices",
            None,
            Rule::Member(Role::Viewer),
        ),
        (
            "POST",
            "/v1/workspaces/{ws}/prices",
            Some(
                json!({"provider": "openai", "model": "gpt-4o", "kind": "discount", "percent": 5}),
            ),
            Rule::Member(Role::Admin),
        ),
        (
            "PUT",
            "/v1/workspaces/{ws}/prices/{price}",
            Some(
                json!({"provider": "openai", "model": "gpt-4o", "kind": "discount", "percent": 7}),
            ),
            Rule::Member(Role::Admin),
        ),
        (
            "DELETE",
            "/v1/workspaces/{ws}/prices/{price}",
            None,
            Rule::Member(Role::Admin),
        ),
        ("GET", "/v1/openapi.json", None, Rule::Public),
        ("GET", "/healthz", None, Rule::Public),
        // `POST /v1/auth/logout` ends the caller's session, so it is walked through in account.rs;
        // `POST /v1/auth/verify` needs a code from the caller's own email, likewise;
        // `POST /v1/account/deletion` deletes the caller (deletion.rs).
    ];
    let whos = [
        Who::Owner,
        Who::Admin,
        Who::Viewer,
        Who::Outsider,
        Who::ReadKey,
        Who::IngestKey,
        Who::Nobody,
    ];
    let mut n = 0;
    let mut failures = Vec::new();
    for (method, template, body, rule) in &cases {
        for who in whos {
            n += 1;
            let path = w.path(template, n).await;
            let body = body.as_ref().map(|b| {
                let text = b.to_string().replace("{n}", &n.to_string());
                serde_json::from_str(&text.replace("{ws}", w.ws.as_str())).unwrap()
            });
            // Outsiders reach the workspace path too: they must see 404, not 403.
            let got = w.call(who, method, &path, body).await;
            let want = expected(*rule, who);
            let ok = if want == 200 {
                (200..300).contains(&got)
            } else {
                got == want
            };
            if !ok {
                failures.push(format!(
                    "{method} {template} as {who:?}: got {got}, want {want}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
