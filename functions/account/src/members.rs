//! A workspace's members: listing them, changing roles and removing (or leaving), within the
//! permission matrix and always keeping one owner.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use llmtrack_shared::ApiError;
use llmtrack_shared::auth;
use llmtrack_shared::domain::access::{Action, Role};
use llmtrack_shared::domain::account::Membership;
use llmtrack_shared::domain::ids::{UserId, WorkspaceId};
use llmtrack_shared::domain::time::rfc3339;
use llmtrack_shared::extract::{Json, Peer};
use llmtrack_shared::usecases;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{AccountState, Result, parse_role, refusal};

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
pub(crate) async fn list_members(
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

async fn target_member(s: &AccountState, ws: &WorkspaceId, user: &str) -> Result<Membership> {
    let not_found = || ApiError::NotFound(format!("member `{user}` not found"));
    let id = UserId::parse(user).ok_or_else(not_found)?;
    s.store.members.member(ws, &id).await?.ok_or_else(not_found)
}

/// Change a member's role. Admins manage roles below owner; only owners grant or revoke owner.
#[utoipa::path(patch, path = "/v1/workspaces/{id}/members/{user_id}", tag = "members", params(("id" = String, Path), ("user_id" = String, Path)), request_body = RoleRequest,
    responses((status = 200, body = MemberView), (status = 400, description = "Unknown role"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such member"), (status = 409, description = "Would leave no owner")))]
pub(crate) async fn change_role(
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
pub(crate) async fn remove_member(
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
    // Someone who is no longer a member gets no digest.
    usecases::set_digest(s.store.workspaces.as_ref(), &ws.id, &target.user_id, false).await?;
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
