//! A workspace's cost-allocation tag keys (`domain::tags`): the metadata keys whose values become
//! breakdown dimensions (`by=tag:team`) and FOCUS export tags. Members read them; admins and
//! owners change them, and each change is audited.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use llmtrack_shared::auth;
use llmtrack_shared::domain::access::Action;
use llmtrack_shared::domain::tags::{MAX_TAG_KEYS, MAX_TAG_VALUES, TagKeyView, TagKeys};
use llmtrack_shared::extract::{Json, Peer};
use llmtrack_shared::usecases::{self, Actor, TagChangeError};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{AccountState, Result};

/// The keys to declare, in order: kept keys keep their values; a new key tags events from this
/// hour; a removed key's values stay in the past but are no longer shown.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagKeysRequest {
    /// At most 3 metadata keys, e.g. `["team", "project"]`.
    keys: Vec<String>,
}

/// The workspace's tag keys.
#[derive(Serialize, ToSchema)]
pub struct TagKeysView {
    keys: Vec<TagKeyView>,
    max_keys: usize,
    max_values: usize,
}

impl TagKeysView {
    fn of(t: &TagKeys) -> TagKeysView {
        TagKeysView {
            keys: t.keys.iter().map(TagKeyView::of).collect(),
            max_keys: MAX_TAG_KEYS,
            max_values: MAX_TAG_VALUES,
        }
    }
}

/// The workspace's tag keys and the values each keeps (any member).
#[utoipa::path(get, path = "/v1/workspaces/{id}/tags", tag = "workspaces", params(("id" = String, Path)),
    responses((status = 200, body = TagKeysView), (status = 401, description = "No session"), (status = 404, description = "No such workspace among yours")))]
pub(crate) async fn get_tags(
    State(s): State<AccountState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<TagKeysView>> {
    let who = s.gate.session(&headers).await?;
    let (ws, _) = s.gate.membership(&who, &id).await?;
    Ok(axum::Json(TagKeysView::of(&ws.tags)))
}

/// Declare the workspace's tag keys (admins and owners).
#[utoipa::path(put, path = "/v1/workspaces/{id}/tags", tag = "workspaces", params(("id" = String, Path)), request_body = TagKeysRequest,
    responses((status = 200, body = TagKeysView), (status = 400, description = "Too many keys, one listed twice, or not a valid key (the message names it)"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such workspace among yours")))]
pub(crate) async fn set_tags(
    State(s): State<AccountState>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<TagKeysRequest>,
) -> Result<axum::Json<TagKeysView>> {
    let who = s.gate.writer(&headers).await?;
    let (ws, m) = s.gate.membership(&who, &id).await?;
    auth::require(m.role, Action::ManageSettings)?;
    let ip = s.addr(&headers, &peer);
    let tags = usecases::declare_tags(
        s.store.workspaces.as_ref(),
        s.store.audit_log.as_ref(),
        &ws.id,
        &req.keys,
        Actor::person(&who.user, ip.as_deref()),
        s.clock.now_ms(),
    )
    .await
    .map_err(|e| match e {
        TagChangeError::NoWorkspace => ApiError::NotFound("no such workspace among yours".into()),
        TagChangeError::Invalid(r) => ApiError::bad_request(
            ErrorCode::InvalidTags,
            format!("{}: {}", r.field, r.message),
        ),
        e @ TagChangeError::Busy => ApiError::Conflict(e.to_string()),
        TagChangeError::Store(e) => e.into(),
    })?;
    Ok(axum::Json(TagKeysView::of(&tags)))
}
