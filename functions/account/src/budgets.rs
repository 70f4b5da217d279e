//! A workspace's budgets: an amount per calendar month (in the workspace's timezone) or per
//! rolling window, for the whole workspace or one model, feature, source or end-user. Members
//! read them; admins and owners change them, and each change is audited. How much of each is
//! spent, and the check an application makes before a call, are the query function's
//! (`/v1/stats/budgets`, `/v1/budgets/check`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use llmtrack_shared::auth;
use llmtrack_shared::domain::access::Action;
use llmtrack_shared::domain::alert::Filter;
use llmtrack_shared::domain::budget::{Budget, BudgetPeriod, DEFAULT_WARN_PCT, WorkspaceBudgets};
use llmtrack_shared::extract::{Json, Peer};
use llmtrack_shared::usecases::{self, Actor, BudgetChange, BudgetChangeError};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{AccountState, Result};

/// A budget as written.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetRequest {
    name: String,
    /// The amount for one period, in USD.
    amount_usd: f64,
    /// `{"kind": "month"}` (the calendar month in the workspace's timezone) or
    /// `{"kind": "rolling", "days": 7}` (1 to 90 days up to now).
    period: BudgetPeriod,
    /// One model, feature, source or end-user: `{"dimension": "feature", "value": "search"}`;
    /// absent or `null` for the whole workspace.
    #[serde(default)]
    scope: Option<Filter>,
    /// From this share of the amount, in percent, a check answers `warn` (default 80).
    warn_pct: Option<u32>,
    /// Whether a check answers `deny` once the amount is spent (default true); else `warn`.
    deny: Option<bool>,
}

impl BudgetRequest {
    fn into_budget(self, id: String) -> Budget {
        Budget {
            id,
            name: self.name,
            amount_usd: self.amount_usd,
            period: self.period,
            scope: self.scope,
            warn_pct: self.warn_pct.unwrap_or(DEFAULT_WARN_PCT),
            deny: self.deny.unwrap_or(true),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }
}

fn refused(e: BudgetChangeError) -> ApiError {
    match e {
        BudgetChangeError::NoWorkspace => {
            ApiError::NotFound("no such workspace among yours".into())
        }
        BudgetChangeError::NoBudget(id) => {
            ApiError::NotFound(format!("no budget `{id}` in this workspace"))
        }
        BudgetChangeError::Invalid(r) => ApiError::bad_request(
            ErrorCode::InvalidBudget,
            format!("{}: {}", r.field, r.message),
        ),
        e @ BudgetChangeError::TooMany => {
            ApiError::bad_request(ErrorCode::InvalidBudget, e.to_string())
        }
        e @ BudgetChangeError::Busy => ApiError::Conflict(e.to_string()),
        BudgetChangeError::Store(e) => e.into(),
    }
}

/// The workspace's budgets (any member). What each has spent is `GET /v1/stats/budgets`.
#[utoipa::path(get, path = "/v1/workspaces/{id}/budgets", tag = "budgets", params(("id" = String, Path)),
    responses((status = 200, body = WorkspaceBudgets), (status = 401, description = "No session"), (status = 404, description = "No such workspace among yours")))]
pub(crate) async fn list_budgets(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<WorkspaceBudgets>> {
    let who = s.gate.session(&headers).await?;
    let (ws, _) = s.gate.membership(&who, &id).await?;
    Ok(axum::Json(ws.budgets))
}

async fn change(
    s: &AccountState,
    peer: &Peer,
    headers: &HeaderMap,
    id: &str,
    change: BudgetChange,
) -> Result<Budget> {
    let who = s.gate.writer(headers).await?;
    let (ws, m) = s.gate.membership(&who, id).await?;
    auth::require(m.role, Action::ManageSettings)?;
    let ip = s.addr(headers, peer);
    usecases::change_budgets(
        s.store.workspaces.as_ref(),
        s.store.audit_log.as_ref(),
        &ws.id,
        change,
        Actor::person(&who.user, ip.as_deref()),
        s.clock.now_ms(),
    )
    .await
    .map_err(refused)
}

/// Add a budget (admins and owners), at most 20 a workspace.
#[utoipa::path(post, path = "/v1/workspaces/{id}/budgets", tag = "budgets", params(("id" = String, Path)), request_body = BudgetRequest,
    responses((status = 201, body = Budget), (status = 400, description = "A field is invalid (the message names it), or the workspace has 20 budgets"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such workspace among yours")))]
pub(crate) async fn add_budget(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<BudgetRequest>,
) -> Result<(StatusCode, axum::Json<Budget>)> {
    let b = change(
        &s,
        &peer,
        &headers,
        &id,
        BudgetChange::Add(req.into_budget(String::new())),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(b)))
}

/// Replace a budget (admins and owners); it keeps its id and creation time.
#[utoipa::path(put, path = "/v1/workspaces/{id}/budgets/{budget}", tag = "budgets", params(("id" = String, Path), ("budget" = String, Path)), request_body = BudgetRequest,
    responses((status = 200, body = Budget), (status = 400, description = "A field is invalid (the message names it)"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such workspace or budget")))]
pub(crate) async fn replace_budget(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, budget)): Path<(String, String)>,
    Json(req): Json<BudgetRequest>,
) -> Result<axum::Json<Budget>> {
    let b = change(
        &s,
        &peer,
        &headers,
        &id,
        BudgetChange::Replace(req.into_budget(budget)),
    )
    .await?;
    Ok(axum::Json(b))
}

/// Remove a budget (admins and owners).
#[utoipa::path(delete, path = "/v1/workspaces/{id}/budgets/{budget}", tag = "budgets", params(("id" = String, Path), ("budget" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such workspace or budget")))]
pub(crate) async fn remove_budget(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, budget)): Path<(String, String)>,
) -> Result<StatusCode> {
    change(&s, &peer, &headers, &id, BudgetChange::Remove(budget)).await?;
    Ok(StatusCode::NO_CONTENT)
}
