//! Invitations by email: sending them (rate limited, counted against the member limit while
//! pending), listing and revoking them, and accepting one addressed to the signed-in user.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use llmtrack_shared::auth;
use llmtrack_shared::domain::access::{Action, Role};
use llmtrack_shared::domain::account::{self, Email, Invitation, Membership};
use llmtrack_shared::domain::ids::{InvitationId, WorkspaceId};
use llmtrack_shared::domain::time::rfc3339;
use llmtrack_shared::extract::{Json, Peer};
use llmtrack_shared::ports::{Mail, Refusal, StoreError};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::workspaces::{WorkspaceView, view};
use crate::{AccountState, Result, parse_role, refusal};

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
pub(crate) async fn list_invitations(
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
pub(crate) async fn invite(
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
pub(crate) async fn revoke_invitation(
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
pub(crate) async fn accept_invitation(
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
