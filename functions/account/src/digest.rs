//! The weekly digest email of a workspace (`docs/REPORTS.md`): each member opts in or out for
//! themselves (off by default). Sending is the reports function's (`digest.rs`).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use llmtrack_shared::ApiError;
use llmtrack_shared::extract::Json;
use llmtrack_shared::usecases;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{AccountState, Result};

/// Whether the signed-in member gets the workspace's weekly digest.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DigestSubscription {
    subscribed: bool,
}

/// Whether you get the workspace's weekly digest email (any member).
#[utoipa::path(get, path = "/v1/workspaces/{id}/digest", tag = "workspaces", params(("id" = String, Path)),
    responses((status = 200, body = DigestSubscription), (status = 401, description = "No session"), (status = 404, description = "No such workspace among yours")))]
pub(crate) async fn get_digest(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<DigestSubscription>> {
    let who = s.gate.session(&headers).await?;
    let (ws, _) = s.gate.membership(&who, &id).await?;
    Ok(axum::Json(DigestSubscription {
        subscribed: ws.digest.contains(&who.user.id),
    }))
}

/// Turn your weekly digest email of the workspace on or off (any member, for themselves).
#[utoipa::path(put, path = "/v1/workspaces/{id}/digest", tag = "workspaces", params(("id" = String, Path)), request_body = DigestSubscription,
    responses((status = 200, body = DigestSubscription), (status = 401, description = "No session"), (status = 403, description = "Cross-site"), (status = 404, description = "No such workspace among yours")))]
pub(crate) async fn set_digest(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<DigestSubscription>,
) -> Result<axum::Json<DigestSubscription>> {
    let who = s.gate.writer(&headers).await?;
    let (ws, _) = s.gate.membership(&who, &id).await?;
    if !usecases::set_digest(
        s.store.workspaces.as_ref(),
        &ws.id,
        &who.user.id,
        req.subscribed,
    )
    .await?
    {
        return Err(ApiError::NotFound("no such workspace among yours".into()));
    }
    Ok(axum::Json(DigestSubscription {
        subscribed: req.subscribed,
    }))
}
