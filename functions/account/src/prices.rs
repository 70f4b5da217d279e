//! A workspace's own prices: rules that replace the table's rates for some models, or take a
//! negotiated discount off them, from a date. Members read them; admins and owners change them,
//! and each change is audited. Events are priced with the rules in force when they arrive; stored
//! events keep the cost they were priced with.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use llmtrack_shared::auth;
use llmtrack_shared::domain::access::Action;
use llmtrack_shared::domain::pricing::custom::{PriceRule, RulePrice, WorkspacePrices};
use llmtrack_shared::extract::{Json, Peer};
use llmtrack_shared::usecases::{self, Actor, PriceChange, PriceChangeError};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::{AccountState, Result};

/// A rule as written: what it prices, how, and when.
#[derive(Deserialize, ToSchema)]
pub struct PriceRuleRequest {
    /// The provider of the events it prices (any spelling: `aws` also covers `bedrock`), or `*`.
    provider: String,
    /// A model name (also matching decorated forms of it), or a pattern with `*`.
    model: String,
    /// First day it applies (`YYYY-MM-DD`, UTC); absent: all past events.
    effective_from: Option<String>,
    /// Day it stops applying (exclusive); absent: until changed.
    effective_to: Option<String>,
    /// `rates` (with `rates`, and optionally `batch_percent`) or `discount` (with `percent`).
    #[serde(flatten)]
    price: RulePrice,
    note: Option<String>,
}

impl PriceRuleRequest {
    fn into_rule(self, id: String) -> PriceRule {
        PriceRule {
            id,
            provider: self.provider,
            model: self.model,
            effective_from: self.effective_from,
            effective_to: self.effective_to,
            price: self.price,
            note: self.note,
            updated_at: String::new(),
        }
    }
}

fn refused(e: PriceChangeError) -> ApiError {
    match e {
        PriceChangeError::NoWorkspace => ApiError::NotFound("no such workspace among yours".into()),
        PriceChangeError::NoRule(id) => {
            ApiError::NotFound(format!("no price rule `{id}` in this workspace"))
        }
        PriceChangeError::Invalid(r) => ApiError::bad_request(
            ErrorCode::InvalidPriceRule,
            format!("{}: {}", r.field, r.message),
        ),
        e @ PriceChangeError::TooMany => {
            ApiError::bad_request(ErrorCode::InvalidPriceRule, e.to_string())
        }
        e @ PriceChangeError::Busy => ApiError::Conflict(e.to_string()),
        PriceChangeError::Store(e) => e.into(),
    }
}

/// The workspace's price rules (any member).
#[utoipa::path(get, path = "/v1/workspaces/{id}/prices", tag = "pricing", params(("id" = String, Path)),
    responses((status = 200, body = WorkspacePrices), (status = 401, description = "No session"), (status = 404, description = "No such workspace among yours")))]
pub(crate) async fn list_prices(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<WorkspacePrices>> {
    let who = s.gate.session(&headers).await?;
    let (ws, _) = s.gate.membership(&who, &id).await?;
    Ok(axum::Json(ws.prices))
}

async fn change(
    s: &AccountState,
    peer: &Peer,
    headers: &HeaderMap,
    id: &str,
    change: PriceChange,
) -> Result<PriceRule> {
    let who = s.gate.writer(headers).await?;
    let (ws, m) = s.gate.membership(&who, id).await?;
    auth::require(m.role, Action::ManageSettings)?;
    let ip = s.addr(headers, peer);
    usecases::change_prices(
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

/// Add a price rule (admins and owners). Events arriving from now on are priced with it;
/// stored events keep their cost until a repricing (`POST /v1/workspaces/{id}/repricing`).
#[utoipa::path(post, path = "/v1/workspaces/{id}/prices", tag = "pricing", params(("id" = String, Path)), request_body = PriceRuleRequest,
    responses((status = 201, body = PriceRule), (status = 400, description = "A field is invalid (the message names it), or the workspace has 100 rules"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such workspace among yours")))]
pub(crate) async fn add_price(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<PriceRuleRequest>,
) -> Result<(StatusCode, axum::Json<PriceRule>)> {
    let rule = change(
        &s,
        &peer,
        &headers,
        &id,
        PriceChange::Add(req.into_rule(String::new())),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(rule)))
}

/// Replace a price rule (admins and owners); it keeps its id.
#[utoipa::path(put, path = "/v1/workspaces/{id}/prices/{price}", tag = "pricing", params(("id" = String, Path), ("price" = String, Path)), request_body = PriceRuleRequest,
    responses((status = 200, body = PriceRule), (status = 400, description = "A field is invalid (the message names it)"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such workspace or rule")))]
pub(crate) async fn replace_price(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, price)): Path<(String, String)>,
    Json(req): Json<PriceRuleRequest>,
) -> Result<axum::Json<PriceRule>> {
    let rule = change(
        &s,
        &peer,
        &headers,
        &id,
        PriceChange::Replace(req.into_rule(price)),
    )
    .await?;
    Ok(axum::Json(rule))
}

/// Remove a price rule (admins and owners).
#[utoipa::path(delete, path = "/v1/workspaces/{id}/prices/{price}", tag = "pricing", params(("id" = String, Path), ("price" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such workspace or rule")))]
pub(crate) async fn remove_price(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, price)): Path<(String, String)>,
) -> Result<StatusCode> {
    change(&s, &peer, &headers, &id, PriceChange::Remove(price)).await?;
    Ok(StatusCode::NO_CONTENT)
}
