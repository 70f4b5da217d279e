//! The account function: passwordless sign-in, sessions, workspaces, members, invitations, usage
//! against plan limits, and the audit log. Every workspace route checks the permission matrix
//! (`llmtrack_shared::domain::access`); another workspace's ids answer 404.
//!
//! One module a resource: `signin`, `me`, `workspaces`, `usage`, `members`, `invitations`,
//! `prices`, `budgets` and `audit` hold their handlers and the types they take and return; this file holds the state,
//! every route in one place, and the helpers several of them share.

mod audit;
mod budgets;
mod digest;
mod invitations;
mod me;
mod members;
mod prices;
mod signin;
mod tags;
mod usage;
mod workspaces;

use axum::http::HeaderMap;
use llmtrack_shared::auth::{self, Gate};
use llmtrack_shared::config::WebConfig;
use llmtrack_shared::domain::access::Role;
use llmtrack_shared::domain::account::{self, User};
use llmtrack_shared::domain::ids::{UserId, WorkspaceId};
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::extract::Peer;
use llmtrack_shared::ports::{DynClock, DynMailer, Refusal, StoreError, Workspace};
use llmtrack_shared::usecases::Actor;
use llmtrack_shared::{ApiError, ErrorCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

llmtrack_shared::store_ports! {
    /// People, their sign-in, their workspaces and members; what the overview counts.
    pub struct AccountPorts {
        accounts: Accounts,
        workspaces: Workspaces,
        members: Members,
        keys: Keys,
        events: Events,
        alert_rules: AlertRules,
        billing_records: BillingRecords,
        audit_log: AuditLog,
    }
}

#[derive(Clone)]
pub struct AccountState {
    pub gate: Gate,
    pub store: AccountPorts,
    pub clock: DynClock,
    pub mailer: DynMailer,
    pub web: WebConfig,
    /// Printed in emails and on the privacy page only when configured (and so verified by the
    /// operator).
    pub support_email: Option<String>,
    /// Whether Stripe is set up, so the dashboard can say plainly when billing is not.
    pub billing_configured: bool,
}

fn routes() -> OpenApiRouter<AccountState> {
    OpenApiRouter::new()
        .routes(routes!(signin::request_code))
        .routes(routes!(signin::verify_code))
        .routes(routes!(signin::logout))
        .routes(routes!(me::about))
        .routes(routes!(me::me, me::update_me))
        .routes(routes!(
            workspaces::list_workspaces,
            workspaces::create_workspace
        ))
        .routes(routes!(
            workspaces::get_workspace,
            workspaces::update_workspace
        ))
        .routes(routes!(usage::usage))
        .routes(routes!(members::list_members))
        .routes(routes!(members::change_role, members::remove_member))
        .routes(routes!(invitations::list_invitations, invitations::invite))
        .routes(routes!(invitations::revoke_invitation))
        .routes(routes!(invitations::accept_invitation))
        .routes(routes!(audit::audit_log))
        .routes(routes!(prices::list_prices, prices::add_price))
        .routes(routes!(prices::replace_price, prices::remove_price))
        .routes(routes!(budgets::list_budgets, budgets::add_budget))
        .routes(routes!(budgets::replace_budget, budgets::remove_budget))
        .routes(routes!(digest::get_digest, digest::set_digest))
        .routes(routes!(tags::get_tags, tags::set_tags))
}

pub fn router(state: AccountState) -> OpenApiRouter {
    llmtrack_shared::openapi::strict_query(routes()).with_state(state)
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

type Result<T> = std::result::Result<T, ApiError>;

impl AccountState {
    fn addr(&self, headers: &HeaderMap, peer: &Peer) -> Option<String> {
        auth::client_addr(headers, peer.0, &self.web)
    }

    async fn audit(
        &self,
        ws: &WorkspaceId,
        who: &User,
        action: &str,
        target: Option<String>,
        ip: Option<&str>,
    ) {
        Actor::person(who, ip)
            .record(
                self.store.audit_log.as_ref(),
                ws,
                self.clock.now_ms(),
                action,
                target,
            )
            .await;
    }

    /// Counts `hits` against a limit for `key` (0 to only look); 429 once past it.
    async fn limit(&self, limit: &account::WindowLimit, key: &str, hits: u64) -> Result<()> {
        let now = self.clock.now_ms();
        let window = limit.window(now);
        let counted = self
            .store
            .accounts
            .hit_rate_limit(
                &format!("{}:{key}", limit.bucket),
                window,
                limit.window_ms,
                hits,
            )
            .await?;
        // Looking, the limit is reached at `max`; counting, only past it.
        let over = if hits == 0 {
            counted >= limit.max
        } else {
            counted > limit.max
        };
        if over {
            let wait_s = (window + limit.window_ms - now) / 1000;
            let wait = if wait_s >= 3600 {
                format!("{} hours", wait_s / 3600 + 1)
            } else {
                format!("{} minutes", wait_s / 60 + 1)
            };
            return Err(ApiError::TooManyRequests {
                message: format!("too many {}; try again in {wait}", limit.what),
                retry_after_s: wait_s,
            });
        }
        Ok(())
    }

    fn footer(&self) -> String {
        match &self.support_email {
            Some(s) => format!("\n\nQuestions? Write to {s}."),
            None => String::new(),
        }
    }
}

fn refusal(e: StoreError, plan: Plan) -> ApiError {
    match e {
        StoreError::Refused(Refusal::MemberLimit) => ApiError::Conflict(format!(
            "the {} plan allows {} members; remove a member or upgrade the plan",
            plan.as_str(),
            plan.limits().members
        )),
        StoreError::Refused(Refusal::LastOwner) => ApiError::Conflict(
            "a workspace must keep at least one owner: make someone else owner first".into(),
        ),
        other => other.into(),
    }
}

async fn my_workspaces(s: &AccountState, user: &UserId) -> Result<Vec<(Workspace, Role)>> {
    let mut out = Vec::new();
    for m in s.store.members.memberships(user).await? {
        // One being deleted is already gone as far as its members can see.
        if let Some(ws) = s.store.workspaces.workspace(&m.workspace_id).await?
            && ws.deleting.is_none()
        {
            out.push((ws, m.role));
        }
    }
    Ok(out)
}

fn parse_role(role: &str) -> Result<Role> {
    Role::parse(role).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidRole,
            format!("`{role}` is not a role: use owner, admin or viewer"),
        )
    })
}
