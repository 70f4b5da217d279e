//! The account function: passwordless sign-in, sessions, workspaces, members, invitations, usage
//! against plan limits, and the audit log. Every workspace route checks the permission matrix
//! (`llmtrack_shared::domain::access`); another workspace's ids answer 404.

use std::str::FromStr as _;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llmtrack_shared::auth::{self, Gate};
use llmtrack_shared::config::WebConfig;
use llmtrack_shared::domain::access::{Action, Role};
use llmtrack_shared::domain::account::{
    self, CodeCheck, Email, Invitation, LoginCode, Membership, Session, SessionToken, User,
};
use llmtrack_shared::domain::apikey::KeyState;
use llmtrack_shared::domain::audit::AuditEntry;
use llmtrack_shared::domain::billing::{Billing, SubscriptionStatus};
use llmtrack_shared::domain::ids::{InvitationId, UserId, WorkspaceId};
use llmtrack_shared::domain::names;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::time::{month_of, next_month_start, rfc3339};
use llmtrack_shared::extract::Query;
use llmtrack_shared::extract::{Json, Peer};
use llmtrack_shared::ports::{DynClock, DynMailer, Mail, Refusal, StoreError, Workspace};
use llmtrack_shared::usecases::{self, Actor, NewWorkspace};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
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
        .routes(routes!(request_code))
        .routes(routes!(verify_code))
        .routes(routes!(logout))
        .routes(routes!(about))
        .routes(routes!(me, update_me))
        .routes(routes!(list_workspaces, create_workspace))
        .routes(routes!(get_workspace, update_workspace))
        .routes(routes!(usage))
        .routes(routes!(list_members))
        .routes(routes!(change_role, remove_member))
        .routes(routes!(list_invitations, invite))
        .routes(routes!(revoke_invitation))
        .routes(routes!(accept_invitation))
        .routes(routes!(audit_log))
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

// ---------- sign-in ----------

#[derive(Deserialize, ToSchema)]
pub struct EmailRequest {
    email: String,
}

#[derive(Serialize, ToSchema)]
pub struct Message {
    message: String,
}

/// Email a one-time sign-in code (and a link carrying it). A new address signs up this way.
#[utoipa::path(post, path = "/v1/auth/email", tag = "account", request_body = EmailRequest,
    responses((status = 202, body = Message), (status = 400, description = "Malformed email"), (status = 429, description = "Rate limited")))]
async fn request_code(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<EmailRequest>,
) -> Result<(StatusCode, axum::Json<Message>)> {
    let email =
        Email::parse(&req.email).map_err(|m| ApiError::bad_request(ErrorCode::InvalidEmail, m))?;
    if let Some(addr) = s.addr(&headers, &peer) {
        s.limit(&account::AUTH_REQUESTS_PER_ADDRESS, &addr, 1)
            .await?;
    }
    s.limit(&account::CODES_PER_EMAIL, email.as_str(), 1)
        .await?;
    let code = account::new_code();
    let expires_ms = s.clock.now_ms() + account::CODE_TTL_MS;
    s.store
        .accounts
        .put_login_code(&LoginCode {
            email: email.clone(),
            hash: account::code_hash(&email, &code),
            expires_ms,
            attempts: 0,
        })
        .await?;
    let link = format!(
        "{}/signin?email={}&code={code}",
        s.web.public_url,
        email.as_str().replace('+', "%2B").replace('@', "%40")
    );
    let mail = Mail {
        to: email.as_str().to_owned(),
        subject: format!("Your LLMtrack sign-in code: {code}"),
        text: format!(
            "Your LLMtrack sign-in code is {code}.\n\nOr open this link to sign in: {link}\n\nThe code works once and expires in 10 minutes. If you did not ask for it, ignore this email.{}",
            s.footer()
        ),
        html: Some(format!(
            "<p>Your LLMtrack sign-in code is <strong style=\"font-size:1.4em\">{code}</strong>.</p><p><a href=\"{link}\">Sign in to LLMtrack</a></p><p>The code works once and expires in 10 minutes. If you did not ask for it, ignore this email.</p>"
        )),
        about: None,
    };
    s.mailer.send(&mail).await.map_err(ApiError::Unexpected)?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Message {
            message: format!(
                "a sign-in code was sent to {}; it expires in 10 minutes",
                email.as_str()
            ),
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyRequest {
    email: String,
    code: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    id: String,
    email: String,
    /// Whether the monthly report emails of your workspaces (as owner or admin) reach you.
    monthly_reports: bool,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.to_string(),
            email: u.email.as_str().to_owned(),
            monthly_reports: !u.reports_opt_out,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct MePatch {
    /// `false` stops the monthly report emails; `true` brings them back.
    monthly_reports: bool,
}

/// Change your settings: monthly report emails on or off.
#[utoipa::path(patch, path = "/v1/me", tag = "account", request_body = MePatch,
    responses((status = 200, body = UserView), (status = 401, description = "No session"), (status = 403, description = "Cross-site request")))]
async fn update_me(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Json(req): Json<MePatch>,
) -> Result<axum::Json<UserView>> {
    let who = s.gate.session(&headers).await?;
    auth::same_origin(&headers, &s.web)?;
    s.store
        .accounts
        .set_reports_opt_out(&who.user.id, !req.monthly_reports)
        .await?;
    let mut user = who.user;
    user.reports_opt_out = !req.monthly_reports;
    Ok(axum::Json(UserView::from(&user)))
}

/// Exchange the emailed code for a session cookie (HttpOnly, SameSite=Lax, Secure).
#[utoipa::path(post, path = "/v1/auth/verify", tag = "account", request_body = VerifyRequest,
    responses((status = 200, body = UserView, description = "Signed in; the session cookie is set"), (status = 400, description = "Wrong, used or expired code"), (status = 429, description = "Rate limited")))]
async fn verify_code(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<VerifyRequest>,
) -> Result<Response> {
    let email =
        Email::parse(&req.email).map_err(|m| ApiError::bad_request(ErrorCode::InvalidEmail, m))?;
    let addr = s.addr(&headers, &peer);
    if let Some(addr) = &addr {
        s.limit(&account::VERIFY_REQUESTS_PER_ADDRESS, addr, 1)
            .await?;
    }
    // Wrong codes count per email across all its codes: requesting new codes does not buy
    // new guesses.
    for limit in &account::FAILED_SIGNINS {
        s.limit(limit, email.as_str(), 0).await?;
    }
    let now = s.clock.now_ms();
    let wrong = match s
        .store
        .accounts
        .check_login_code(&email, &account::code_hash(&email, &req.code), now)
        .await?
    {
        CodeCheck::Valid => None,
        CodeCheck::Wrong => Some("the code is wrong; check the latest email or request a new code"),
        CodeCheck::Missing => Some(
            "no valid code for this email: it expired, was used, or had too many wrong tries; request a new one",
        ),
    };
    if let Some(message) = wrong {
        for limit in &account::FAILED_SIGNINS {
            // Counted; the refusal comes with the next attempt.
            if let Err(e) = s.limit(limit, email.as_str(), 1).await
                && !matches!(e, ApiError::TooManyRequests { .. })
            {
                return Err(e);
            }
        }
        return Err(ApiError::bad_request(ErrorCode::InvalidCode, message));
    }
    let user = s
        .store
        .accounts
        .upsert_user(&User {
            id: UserId::generate(now),
            email,
            created_ms: now,
            reports_opt_out: false,
        })
        .await?;
    let token = SessionToken::generate();
    s.store
        .accounts
        .create_session(&Session {
            hash: token.hash(),
            user_id: user.id.clone(),
            created_ms: now,
            expires_ms: now + account::SESSION_TTL_MS,
        })
        .await?;
    for (ws, _) in my_workspaces(&s, &user.id).await? {
        s.audit(&ws.id, &user, "signin", None, addr.as_deref())
            .await;
    }
    tracing::info!(user = %user.id, "signed in");
    let mut response = axum::Json(UserView::from(&user)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        auth::session_cookie(token.expose(), account::SESSION_TTL_MS / 1000, &s.web),
    );
    Ok(response)
}

#[derive(Deserialize, IntoParams)]
pub struct LogoutParams {
    /// `true` ends every session of the account, on every device.
    everywhere: Option<bool>,
}

/// Sign out this session, or every session of the account with `?everywhere=true`.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "account", params(LogoutParams),
    responses((status = 204, description = "Signed out"), (status = 401, description = "No session"), (status = 403, description = "Cross-site request")))]
async fn logout(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Query(p): Query<LogoutParams>,
) -> Result<Response> {
    let who = s.gate.writer(&headers).await?;
    if p.everywhere == Some(true) {
        s.store.accounts.delete_user_sessions(&who.user.id).await?;
    } else {
        s.store.accounts.delete_session(&who.session_hash).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, auth::session_cookie("", 0, &s.web));
    Ok(response)
}

#[derive(Serialize, ToSchema)]
pub struct WorkspaceView {
    id: String,
    name: String,
    plan: Plan,
    timezone: String,
    created_at: String,
    /// The caller's role in it.
    role: Role,
}

fn view(ws: &Workspace, role: Role) -> WorkspaceView {
    WorkspaceView {
        id: ws.id.to_string(),
        name: ws.name.clone(),
        plan: ws.plan,
        timezone: ws.timezone.clone(),
        created_at: rfc3339(ws.created_ms),
        role,
    }
}

#[derive(Serialize, ToSchema)]
pub struct MeView {
    user: UserView,
    workspaces: Vec<WorkspaceView>,
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

#[derive(Serialize, ToSchema)]
pub struct AboutView {
    /// The address people may write to; absent until the operator configured (and verified) one.
    support_email: Option<String>,
    /// Whether subscriptions can be bought here (Stripe configured).
    billing_configured: bool,
    /// The server's version.
    version: &'static str,
}

/// What the dashboard shows before sign-in: the support address (privacy page) and whether
/// billing is set up. Public: nothing in it is secret.
#[utoipa::path(get, path = "/v1/about", tag = "account", responses((status = 200, description = "This deployment's public settings", body = AboutView)))]
async fn about(State(s): State<AccountState>) -> axum::Json<AboutView> {
    axum::Json(AboutView {
        support_email: s.support_email.clone(),
        billing_configured: s.billing_configured,
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// The signed-in user and their workspaces.
#[utoipa::path(get, path = "/v1/me", tag = "account", responses((status = 200, body = MeView), (status = 401, description = "No session")))]
async fn me(State(s): State<AccountState>, headers: HeaderMap) -> Result<axum::Json<MeView>> {
    let who = s.gate.session(&headers).await?;
    Ok(axum::Json(MeView {
        user: UserView::from(&who.user),
        workspaces: my_workspaces(&s, &who.user.id)
            .await?
            .iter()
            .map(|(ws, role)| view(ws, *role))
            .collect(),
    }))
}

// ---------- workspaces ----------

/// The workspaces the signed-in user belongs to.
#[utoipa::path(get, path = "/v1/workspaces", tag = "workspaces", responses((status = 200, body = Vec<WorkspaceView>), (status = 401, description = "No session")))]
async fn list_workspaces(
    State(s): State<AccountState>,
    headers: HeaderMap,
) -> Result<axum::Json<Vec<WorkspaceView>>> {
    let who = s.gate.session(&headers).await?;
    Ok(axum::Json(
        my_workspaces(&s, &who.user.id)
            .await?
            .iter()
            .map(|(ws, role)| view(ws, *role))
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct WorkspaceRequest {
    name: Option<String>,
    /// IANA timezone (e.g. `Europe/Paris`) for day boundaries and reports. Default UTC.
    timezone: Option<String>,
}

fn parse_timezone(tz: &str) -> Result<String> {
    chrono_tz::Tz::from_str(tz)
        .map(|t| t.name().to_owned())
        .map_err(|_| {
            ApiError::bad_request(
                ErrorCode::InvalidTimezone,
                format!("`{tz}` is not an IANA timezone such as `Europe/Paris` or `UTC`"),
            )
        })
}

fn parse_name(name: &str) -> Result<String> {
    names::display_name("name", name).map_err(|m| ApiError::bad_request(ErrorCode::InvalidName, m))
}

/// Create a workspace on the free plan; the creator is its owner.
#[utoipa::path(post, path = "/v1/workspaces", tag = "workspaces", request_body = WorkspaceRequest,
    responses((status = 201, body = WorkspaceView), (status = 400, description = "Invalid name or timezone"), (status = 401, description = "No session"), (status = 403, description = "Cross-site request")))]
async fn create_workspace(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Json(req): Json<WorkspaceRequest>,
) -> Result<(StatusCode, axum::Json<WorkspaceView>)> {
    let who = s.gate.writer(&headers).await?;
    let name = parse_name(req.name.as_deref().unwrap_or(""))?;
    let timezone = parse_timezone(req.timezone.as_deref().unwrap_or("UTC"))?;
    let ip = s.addr(&headers, &peer);
    let ws = usecases::create_workspace(
        s.store.workspaces.as_ref(),
        s.store.members.as_ref(),
        s.store.audit_log.as_ref(),
        NewWorkspace {
            name,
            timezone,
            plan: Plan::Free,
            owner: Some(who.user.clone()),
        },
        Actor::person(&who.user, ip.as_deref()),
        s.clock.now_ms(),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(view(&ws, Role::Owner))))
}

/// One workspace (any member).
#[utoipa::path(get, path = "/v1/workspaces/{id}", tag = "workspaces", params(("id" = String, Path)),
    responses((status = 200, body = WorkspaceView), (status = 401, description = "No session"), (status = 404, description = "No such workspace among yours")))]
async fn get_workspace(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<WorkspaceView>> {
    let who = s.gate.session(&headers).await?;
    let (ws, m) = s.gate.membership(&who, &id).await?;
    Ok(axum::Json(view(&ws, m.role)))
}

/// Rename a workspace or change its timezone (admins and owners).
#[utoipa::path(patch, path = "/v1/workspaces/{id}", tag = "workspaces", params(("id" = String, Path)), request_body = WorkspaceRequest,
    responses((status = 200, body = WorkspaceView), (status = 400, description = "Invalid name or timezone"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such workspace among yours")))]
async fn update_workspace(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<WorkspaceRequest>,
) -> Result<axum::Json<WorkspaceView>> {
    let who = s.gate.writer(&headers).await?;
    let (mut ws, m) = s.gate.membership(&who, &id).await?;
    auth::require(m.role, Action::ManageSettings)?;
    if let Some(name) = &req.name {
        ws.name = parse_name(name)?;
    }
    if let Some(tz) = &req.timezone {
        ws.timezone = parse_timezone(tz)?;
    }
    s.store.workspaces.update_workspace(&ws).await?;
    s.audit(
        &ws.id,
        &who.user,
        "workspace.updated",
        Some(format!("name={}, timezone={}", ws.name, ws.timezone)),
        s.addr(&headers, &peer).as_deref(),
    )
    .await;
    Ok(axum::Json(view(&ws, m.role)))
}

#[derive(Serialize, ToSchema)]
pub struct Limit {
    limit: u64,
    used: u64,
}

#[derive(Serialize, ToSchema)]
pub struct UsageView {
    plan: Plan,
    /// The quota month (UTC), `YYYY-MM`.
    month: String,
    /// When the monthly event quota resets.
    resets_at: String,
    events: Limit,
    active_keys: Limit,
    /// Members and pending invitations: both count against the plan's member limit.
    members: Limit,
    /// How many of `members.used` are invitations not yet accepted.
    pending_invitations: u64,
    alert_rules: Limit,
    history_days: u32,
    report_months: u32,
    /// The subscription behind the plan; absent when the workspace never subscribed.
    subscription: Option<SubscriptionView>,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionView {
    status: SubscriptionStatus,
    /// The plan subscribed to (the workspace's `plan` once it lapses is free).
    plan: Plan,
    /// When the paid period renews, or ends if cancelled.
    period_ends_at: Option<String>,
    cancel_at_period_end: bool,
    /// After a failed payment: when the workspace moves to free unless a payment succeeds.
    grace_ends_at: Option<String>,
}

impl From<&Billing> for SubscriptionView {
    fn from(b: &Billing) -> Self {
        SubscriptionView {
            status: b.status,
            plan: b.plan,
            period_ends_at: b.period_end_ms.map(rfc3339),
            cancel_at_period_end: b.cancel_at_period_end,
            grace_ends_at: b.grace_ends_ms().map(rfc3339),
        }
    }
}

/// The plan's limits against current use (any member), and the renewal or grace date.
#[utoipa::path(get, path = "/v1/workspaces/{id}/usage", tag = "workspaces", params(("id" = String, Path)),
    responses((status = 200, body = UsageView), (status = 404, description = "No such workspace among yours")))]
async fn usage(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<UsageView>> {
    let who = s.gate.session(&headers).await?;
    let (ws, _) = s.gate.membership(&who, &id).await?;
    let now = s.clock.now_ms();
    let month = month_of(now);
    let limits = ws.plan.limits();
    let events = s.store.events.usage(&ws.id, &month).await?;
    let active = s
        .store
        .keys
        .keys(&ws.id)
        .await?
        .iter()
        .filter(|k| k.state == KeyState::Active)
        .count() as u64;
    let members = s.store.members.members(&ws.id).await?.len() as u64;
    let pending = s
        .store
        .members
        .invitations(&ws.id)
        .await?
        .iter()
        .filter(|i| i.expires_ms > now)
        .count() as u64;
    let rules = s.store.alert_rules.alert_rules(&ws.id).await?.len() as u64;
    Ok(axum::Json(UsageView {
        plan: ws.plan,
        resets_at: rfc3339(next_month_start(now).timestamp_millis()),
        month,
        events: Limit {
            limit: limits.events_per_month,
            used: events,
        },
        active_keys: Limit {
            limit: limits.active_keys.into(),
            used: active,
        },
        members: Limit {
            limit: limits.members.into(),
            used: members + pending,
        },
        pending_invitations: pending,
        alert_rules: Limit {
            limit: limits.alert_rules.into(),
            used: rules,
        },
        history_days: limits.history_days,
        report_months: limits.report_months,
        subscription: s
            .store
            .billing_records
            .billing(&ws.id)
            .await?
            .as_ref()
            .map(SubscriptionView::from),
    }))
}

// ---------- members ----------

#[derive(Serialize, ToSchema)]
pub struct MemberView {
    user_id: String,
    email: String,
    role: Role,
    since: String,
}

impl From<&Membership> for MemberView {
    fn from(m: &Membership) -> Self {
        MemberView {
            user_id: m.user_id.to_string(),
            email: m.email.as_str().to_owned(),
            role: m.role,
            since: rfc3339(m.since_ms),
        }
    }
}

/// The workspace's members (any member).
#[utoipa::path(get, path = "/v1/workspaces/{id}/members", tag = "members", params(("id" = String, Path)),
    responses((status = 200, body = Vec<MemberView>), (status = 404, description = "No such workspace among yours")))]
async fn list_members(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<MemberView>>> {
    let who = s.gate.session(&headers).await?;
    let (ws, _) = s.gate.membership(&who, &id).await?;
    Ok(axum::Json(
        s.store
            .members
            .members(&ws.id)
            .await?
            .iter()
            .map(MemberView::from)
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct RoleRequest {
    /// `owner`, `admin` or `viewer`.
    #[schema(value_type = Role)]
    role: String,
}

fn parse_role(role: &str) -> Result<Role> {
    Role::parse(role).ok_or_else(|| {
        ApiError::bad_request(
            ErrorCode::InvalidRole,
            format!("`{role}` is not a role: use owner, admin or viewer"),
        )
    })
}

async fn target_member(s: &AccountState, ws: &WorkspaceId, user: &str) -> Result<Membership> {
    let not_found = || ApiError::NotFound(format!("member `{user}` not found"));
    let id = UserId::parse(user).ok_or_else(not_found)?;
    s.store.members.member(ws, &id).await?.ok_or_else(not_found)
}

/// Change a member's role. Admins manage roles below owner; only owners grant or revoke owner.
#[utoipa::path(patch, path = "/v1/workspaces/{id}/members/{user_id}", tag = "members", params(("id" = String, Path), ("user_id" = String, Path)), request_body = RoleRequest,
    responses((status = 200, body = MemberView), (status = 400, description = "Unknown role"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such member"), (status = 409, description = "Would leave no owner")))]
async fn change_role(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, user)): Path<(String, String)>,
    Json(req): Json<RoleRequest>,
) -> Result<axum::Json<MemberView>> {
    let who = s.gate.writer(&headers).await?;
    let (ws, me) = s.gate.membership(&who, &id).await?;
    auth::require(me.role, Action::ManageMembers)?;
    let role = parse_role(&req.role)?;
    let mut target = target_member(&s, &ws.id, &user).await?;
    if target.role == Role::Owner || role == Role::Owner {
        auth::require(me.role, Action::ManageOwners)?;
    }
    s.store
        .members
        .set_role(&ws.id, &target.user_id, role)
        .await
        .map_err(|e| refusal(e, ws.plan))?;
    s.audit(
        &ws.id,
        &who.user,
        "member.role_changed",
        Some(format!("{} -> {}", target.email.as_str(), role.as_str())),
        s.addr(&headers, &peer).as_deref(),
    )
    .await;
    target.role = role;
    Ok(axum::Json(MemberView::from(&target)))
}

/// Remove a member, or leave (your own user id). A workspace always keeps one owner.
#[utoipa::path(delete, path = "/v1/workspaces/{id}/members/{user_id}", tag = "members", params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such member"), (status = 409, description = "The last owner")))]
async fn remove_member(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode> {
    let who = s.gate.writer(&headers).await?;
    let (ws, me) = s.gate.membership(&who, &id).await?;
    let target = target_member(&s, &ws.id, &user).await?;
    let leaving = target.user_id == who.user.id;
    if !leaving {
        auth::require(me.role, Action::ManageMembers)?;
        if target.role == Role::Owner {
            auth::require(me.role, Action::ManageOwners)?;
        }
    }
    s.store
        .members
        .remove_member(&ws.id, &target.user_id)
        .await
        .map_err(|e| refusal(e, ws.plan))?;
    let action = if leaving {
        "member.left"
    } else {
        "member.removed"
    };
    s.audit(
        &ws.id,
        &who.user,
        action,
        Some(target.email.as_str().to_owned()),
        s.addr(&headers, &peer).as_deref(),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

// ---------- invitations ----------

#[derive(Serialize, ToSchema)]
pub struct InvitationView {
    id: String,
    email: String,
    role: Role,
    invited_by: String,
    created_at: String,
    expires_at: String,
}

impl From<&Invitation> for InvitationView {
    fn from(i: &Invitation) -> Self {
        InvitationView {
            id: i.id.to_string(),
            email: i.email.as_str().to_owned(),
            role: i.role,
            invited_by: i.invited_by.to_string(),
            created_at: rfc3339(i.created_ms),
            expires_at: rfc3339(i.expires_ms),
        }
    }
}

/// Pending invitations (admins and owners).
#[utoipa::path(get, path = "/v1/workspaces/{id}/invitations", tag = "members", params(("id" = String, Path)),
    responses((status = 200, body = Vec<InvitationView>), (status = 403, description = "Role too low"), (status = 404, description = "No such workspace among yours")))]
async fn list_invitations(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<InvitationView>>> {
    let who = s.gate.session(&headers).await?;
    let (ws, me) = s.gate.membership(&who, &id).await?;
    auth::require(me.role, Action::ManageMembers)?;
    let now = s.clock.now_ms();
    Ok(axum::Json(
        s.store
            .members
            .invitations(&ws.id)
            .await?
            .iter()
            .filter(|i| i.expires_ms > now)
            .map(InvitationView::from)
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct InviteRequest {
    email: String,
    /// `owner`, `admin` or `viewer`.
    #[schema(value_type = Role)]
    role: String,
}

/// Invite someone by email with a role. Counts against the plan's member limit while pending.
#[utoipa::path(post, path = "/v1/workspaces/{id}/invitations", tag = "members", params(("id" = String, Path)), request_body = InviteRequest,
    responses((status = 201, body = InvitationView), (status = 400, description = "Malformed email or unknown role"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such workspace among yours"), (status = 409, description = "Already a member, or member limit reached")))]
async fn invite(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<InviteRequest>,
) -> Result<(StatusCode, axum::Json<InvitationView>)> {
    let who = s.gate.writer(&headers).await?;
    let (ws, me) = s.gate.membership(&who, &id).await?;
    auth::require(me.role, Action::ManageMembers)?;
    let email =
        Email::parse(&req.email).map_err(|m| ApiError::bad_request(ErrorCode::InvalidEmail, m))?;
    let role = parse_role(&req.role)?;
    if role == Role::Owner {
        auth::require(me.role, Action::ManageOwners)?;
    }
    let now = s.clock.now_ms();
    let members = s.store.members.members(&ws.id).await?;
    if members.iter().any(|m| m.email == email) {
        return Err(ApiError::Conflict(format!(
            "{} is already a member",
            email.as_str()
        )));
    }
    let pending: Vec<Invitation> = s
        .store
        .members
        .invitations(&ws.id)
        .await?
        .into_iter()
        .filter(|i| i.expires_ms > now)
        .collect();
    if pending.iter().any(|i| i.email == email) {
        return Err(ApiError::Conflict(format!(
            "{} already has a pending invitation",
            email.as_str()
        )));
    }
    let max = ws.plan.limits().members as usize;
    if members.len() + pending.len() >= max {
        return Err(refusal(StoreError::Refused(Refusal::MemberLimit), ws.plan));
    }
    // Each invitation emails someone who did not ask for it: bounded per workspace and per
    // address, whoever sends them.
    s.limit(&account::INVITATIONS_PER_WORKSPACE, ws.id.as_str(), 1)
        .await?;
    s.limit(&account::INVITATIONS_PER_ADDRESS, email.as_str(), 1)
        .await?;
    let inv = Invitation {
        id: InvitationId::generate(now),
        workspace_id: ws.id.clone(),
        email,
        role,
        invited_by: who.user.id.clone(),
        created_ms: now,
        expires_ms: now + account::INVITATION_TTL_MS,
    };
    s.store.members.create_invitation(&inv).await?;
    let link = format!("{}/invitations/{}/{}", s.web.public_url, ws.id, inv.id);
    let mail = Mail {
        to: inv.email.as_str().to_owned(),
        // Fixed: a subject is what a stranger sees first, so it holds no text a sender chose.
        subject: "You are invited to a workspace on LLMtrack".to_owned(),
        text: format!(
            "{} invited you to join the workspace \"{}\" on LLMtrack as {}.\n\nAccept within 7 days: {link}\n\nSign in with this email address ({}) to accept.{}",
            who.user.email.as_str(),
            ws.name,
            role.as_str(),
            inv.email.as_str(),
            s.footer()
        ),
        html: None,
        about: Some(ws.id.clone()),
    };
    s.mailer.send(&mail).await.map_err(ApiError::Unexpected)?;
    s.audit(
        &ws.id,
        &who.user,
        "member.invited",
        Some(format!("{} as {}", inv.email.as_str(), role.as_str())),
        s.addr(&headers, &peer).as_deref(),
    )
    .await;
    Ok((StatusCode::CREATED, axum::Json(InvitationView::from(&inv))))
}

async fn find_invitation(s: &AccountState, ws: &WorkspaceId, id: &str) -> Result<Invitation> {
    let not_found = || ApiError::NotFound(format!("invitation `{id}` not found"));
    let inv_id = InvitationId::parse(id).ok_or_else(not_found)?;
    s.store
        .members
        .invitation(ws, &inv_id)
        .await?
        .filter(|i| i.expires_ms > s.clock.now_ms())
        .ok_or_else(not_found)
}

/// Revoke a pending invitation (admins and owners).
#[utoipa::path(delete, path = "/v1/workspaces/{id}/invitations/{invitation_id}", tag = "members", params(("id" = String, Path), ("invitation_id" = String, Path)),
    responses((status = 204, description = "Revoked"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such invitation")))]
async fn revoke_invitation(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, inv)): Path<(String, String)>,
) -> Result<StatusCode> {
    let who = s.gate.writer(&headers).await?;
    let (ws, me) = s.gate.membership(&who, &id).await?;
    auth::require(me.role, Action::ManageMembers)?;
    let inv = find_invitation(&s, &ws.id, &inv).await?;
    s.store.members.delete_invitation(&ws.id, &inv.id).await?;
    s.audit(
        &ws.id,
        &who.user,
        "invitation.revoked",
        Some(inv.email.as_str().to_owned()),
        s.addr(&headers, &peer).as_deref(),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invitation addressed to the signed-in user's email.
#[utoipa::path(post, path = "/v1/workspaces/{id}/invitations/{invitation_id}/accept", tag = "members", params(("id" = String, Path), ("invitation_id" = String, Path)),
    responses((status = 200, body = WorkspaceView), (status = 401, description = "No session"), (status = 403, description = "Cross-site"), (status = 404, description = "No such invitation for you"), (status = 409, description = "Member limit reached")))]
async fn accept_invitation(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, inv)): Path<(String, String)>,
) -> Result<axum::Json<WorkspaceView>> {
    let who = s.gate.writer(&headers).await?;
    let not_found = || ApiError::NotFound(format!("invitation `{inv}` not found"));
    let ws_id = WorkspaceId::parse(&id).ok_or_else(not_found)?;
    let invitation = find_invitation(&s, &ws_id, &inv).await?;
    // An invitation for another address is invisible to this user.
    if invitation.email != who.user.email {
        return Err(not_found());
    }
    let ws = s
        .store
        .workspaces
        .workspace(&ws_id)
        .await?
        .ok_or_else(not_found)?;
    let m = Membership {
        workspace_id: ws.id.clone(),
        user_id: who.user.id.clone(),
        email: who.user.email.clone(),
        role: invitation.role,
        since_ms: s.clock.now_ms(),
    };
    s.store
        .members
        .add_member(&m, ws.plan.limits().members)
        .await
        .map_err(|e| refusal(e, ws.plan))?;
    s.store
        .members
        .delete_invitation(&ws.id, &invitation.id)
        .await?;
    s.audit(
        &ws.id,
        &who.user,
        "member.joined",
        Some(invitation.role.as_str().to_owned()),
        s.addr(&headers, &peer).as_deref(),
    )
    .await;
    Ok(axum::Json(view(&ws, invitation.role)))
}

// ---------- audit ----------

#[derive(Deserialize, IntoParams)]
pub struct AuditParams {
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Entries per page, 1 to 100 (default 50).
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

/// The workspace's audit log, newest first (admins and owners). Kept 400 days.
#[utoipa::path(get, path = "/v1/workspaces/{id}/audit", tag = "workspaces", params(("id" = String, Path), AuditParams),
    responses((status = 200, body = AuditPage), (status = 400, description = "Bad cursor or limit"), (status = 403, description = "Role too low"), (status = 404, description = "No such workspace among yours")))]
async fn audit_log(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(p): Query<AuditParams>,
) -> Result<axum::Json<AuditPage>> {
    let who = s.gate.session(&headers).await?;
    let (ws, me) = s.gate.membership(&who, &id).await?;
    auth::require(me.role, Action::ReadAudit)?;
    let limit = p.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidLimit,
            "`limit` must be between 1 and 100",
        ));
    }
    // The cursor is an entry id (a ULID); it only ever selects within this workspace's log.
    if let Some(c) = &p.cursor
        && (c.len() != 26 || !c.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidCursor,
            "`cursor` is not one this endpoint returned",
        ));
    }
    let entries = s
        .store
        .audit_log
        .audit(&ws.id, p.cursor.as_deref(), limit)
        .await?;
    let next_cursor = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    Ok(axum::Json(AuditPage {
        entries,
        next_cursor,
    }))
}
