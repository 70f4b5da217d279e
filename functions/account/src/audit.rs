//! Reading a workspace's audit log, newest first, a page at a time (admins and owners).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use llmtrack_shared::auth;
use llmtrack_shared::domain::access::Action;
use llmtrack_shared::domain::audit::AuditEntry;
use llmtrack_shared::extract::Query;
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{AccountState, Result};

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
pub(crate) async fn audit_log(
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
