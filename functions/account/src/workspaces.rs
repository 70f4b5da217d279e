//! Workspaces as their members see them: listing, creating (on the free plan, creator as owner),
//! reading, renaming, and changing the timezone and the OpenTelemetry span labels.

use std::str::FromStr as _;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use llmtrack_shared::auth;
use llmtrack_shared::domain::access::{Action, Role};
use llmtrack_shared::domain::names;
use llmtrack_shared::domain::plan::Plan;
use llmtrack_shared::domain::spans::SpanLabels;
use llmtrack_shared::domain::time::rfc3339;
use llmtrack_shared::extract::{Json, Peer};
use llmtrack_shared::ports::Workspace;
use llmtrack_shared::usecases::{self, Actor, NewWorkspace};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{AccountState, Result, my_workspaces};

#[derive(Serialize, ToSchema)]
pub struct WorkspaceView {
    id: String,
    name: String,
    plan: Plan,
    timezone: String,
    created_at: String,
    /// The caller's role in it.
    role: Role,
    /// Which OpenTelemetry span (then resource) attributes name an event's feature and
    /// end-user when spans arrive at `POST /otlp/v1/traces`.
    span_labels: SpanLabels,
}

pub(crate) fn view(ws: &Workspace, role: Role) -> WorkspaceView {
    WorkspaceView {
        id: ws.id.to_string(),
        name: ws.name.clone(),
        plan: ws.plan,
        timezone: ws.timezone.clone(),
        created_at: rfc3339(ws.created_ms),
        role,
        span_labels: ws.spans.clone(),
    }
}

/// The workspaces the signed-in user belongs to.
#[utoipa::path(get, path = "/v1/workspaces", tag = "workspaces", responses((status = 200, body = Vec<WorkspaceView>), (status = 401, description = "No session")))]
pub(crate) async fn list_workspaces(
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
    /// Which OpenTelemetry attributes name feature and end-user (at most 8 each); events
    /// already stored keep their labels.
    span_labels: Option<SpanLabels>,
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
pub(crate) async fn create_workspace(
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
pub(crate) async fn get_workspace(
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
pub(crate) async fn update_workspace(
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
    if let Some(labels) = req.span_labels {
        ws.spans = labels
            .parse()
            .map_err(|message| ApiError::bad_request(ErrorCode::InvalidSpanLabels, message))?;
    }
    s.store.workspaces.update_workspace(&ws).await?;
    s.audit(
        &ws.id,
        &who.user,
        "workspace.updated",
        Some(format!(
            "name={}, timezone={}, span feature={}, span user={}",
            ws.name,
            ws.timezone,
            ws.spans.feature.join(","),
            ws.spans.user.join(",")
        )),
        s.addr(&headers, &peer).as_deref(),
    )
    .await;
    Ok(axum::Json(view(&ws, m.role)))
}
