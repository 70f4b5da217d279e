//! API-key authentication, shared by every function that accepts keys.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

use crate::ApiError;
use crate::domain::apikey::{ApiKey, KeyState, RawKey, Scope};
use crate::ports::{DynClock, DynStore, Workspace};

/// last_used is written at most this often per key, so a busy key costs no extra write per request.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Resolves the bearer key of a request to its key record and workspace, checking state and scope.
pub async fn api_key(
    store: &DynStore,
    clock: &DynClock,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<(ApiKey, Workspace), ApiError> {
    let header = headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthorized(
            "missing Authorization header: send `Authorization: Bearer <api key>`".into(),
        )
    })?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("the Authorization header is not valid text".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <api key>`".into())
        })?
        .trim();
    let raw = RawKey::parse(token).ok_or_else(|| {
        ApiError::Unauthorized(
            "the API key is malformed: LLMtrack keys look like `llmt_` followed by 32 characters"
                .into(),
        )
    })?;
    let key = store.key_by_hash(&raw.hash()).await?.ok_or_else(|| {
        ApiError::Unauthorized("the API key is not recognised (it may have been deleted)".into())
    })?;
    if key.state != KeyState::Active {
        return Err(ApiError::Unauthorized(format!(
            "the API key `{}…` is deactivated",
            key.prefix
        )));
    }
    if key.scope != scope {
        return Err(ApiError::Forbidden(format!(
            "this API key has scope `{}`; this endpoint needs a key with scope `{}`",
            key.scope.as_str(),
            scope.as_str()
        )));
    }
    let workspace = store
        .workspace(&key.workspace_id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the API key's workspace no longer exists".into()))?;
    let now = clock.now_ms();
    if key.last_used_ms.is_none_or(|t| now - t >= TOUCH_EVERY_MS) {
        // Best effort: a failed touch must not fail the request it describes.
        if let Err(e) = store.touch_key(&key, now).await {
            tracing::warn!(key = %key.id, error = %e, "could not record key use");
        }
    }
    Ok((key, workspace))
}
