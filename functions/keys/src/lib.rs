//! The keys function: a workspace's API keys. The raw key is in the one response that creates it
//! (or rotates it) and never again; the store keeps its SHA-256 and a display prefix.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use llmtrack_shared::auth::{self, Gate, Member, SignedIn};
use llmtrack_shared::config::WebConfig;
use llmtrack_shared::domain::access::Action;
use llmtrack_shared::domain::apikey::{ApiKey, KeyState, RawKey, Scope};
use llmtrack_shared::domain::ids::KeyId;
use llmtrack_shared::domain::names;
use llmtrack_shared::domain::time::rfc3339;
use llmtrack_shared::extract::{Json, Peer};
use llmtrack_shared::ports::{DynClock, DynStore, Refusal, StoreError, Workspace};
use llmtrack_shared::usecases::{self, Actor};
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

llmtrack_shared::store_ports! {
    pub struct KeysPorts {
        keys: Keys,
        audit_log: AuditLog,
    }
}

#[derive(Clone)]
pub struct KeysState {
    pub gate: Gate,
    pub store: KeysPorts,
    pub clock: DynClock,
    pub web: WebConfig,
}

impl KeysState {
    pub fn new(store: &DynStore, clock: DynClock, web: WebConfig) -> KeysState {
        KeysState {
            gate: Gate::new(store, &clock, &web),
            store: KeysPorts::of(store),
            clock,
            web,
        }
    }
}

fn routes() -> OpenApiRouter<KeysState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(delete_key))
        .routes(routes!(deactivate))
        .routes(routes!(reactivate))
        .routes(routes!(rotate))
}

pub fn router(state: KeysState) -> OpenApiRouter {
    llmtrack_shared::openapi::strict_query(routes()).with_state(state)
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

type Result<T> = std::result::Result<T, ApiError>;

#[derive(Serialize, ToSchema)]
pub struct KeyView {
    id: String,
    name: String,
    source: String,
    scope: Scope,
    state: KeyState,
    /// The first characters of the key, to recognise it.
    prefix: String,
    created_at: String,
    created_by: Option<String>,
    last_used_at: Option<String>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        KeyView {
            id: k.id.to_string(),
            name: k.name.clone(),
            source: k.source.clone(),
            scope: k.scope,
            state: k.state,
            prefix: k.prefix.clone(),
            created_at: rfc3339(k.created_ms),
            created_by: k.created_by.clone(),
            last_used_at: k.last_used_ms.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct NewKeyView {
    #[serde(flatten)]
    key: KeyView,
    /// The raw key. Shown this once: store it now.
    secret: String,
}

impl KeysState {
    async fn key(&self, ws: &Workspace, key: &str) -> Result<ApiKey> {
        let not_found = || ApiError::NotFound(format!("key `{key}` not found"));
        let id = KeyId::parse(key).ok_or_else(not_found)?;
        self.store
            .keys
            .keys(&ws.id)
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or_else(not_found)
    }

    async fn audit(
        &self,
        ws: &Workspace,
        who: &SignedIn,
        action: &str,
        key: &ApiKey,
        ip: Option<String>,
    ) {
        Actor::person(&who.user, ip.as_deref())
            .record(
                self.store.audit_log.as_ref(),
                &ws.id,
                self.clock.now_ms(),
                action,
                Some(usecases::key_target(key)),
            )
            .await;
    }

    /// Issues a key through the shared use case (which writes `key.created` to the audit log).
    async fn mint(
        &self,
        ws: &Workspace,
        by: Actor<'_>,
        name: String,
        source: String,
        scope: Scope,
    ) -> Result<(ApiKey, RawKey)> {
        usecases::create_key(
            self.store.keys.as_ref(),
            self.store.audit_log.as_ref(),
            ws,
            name,
            source,
            scope,
            by,
            self.clock.now_ms(),
        )
        .await
        .map_err(|e| limit(e, ws))
    }
}

fn limit(e: StoreError, ws: &Workspace) -> ApiError {
    match e {
        StoreError::Refused(Refusal::KeyLimit) => ApiError::Conflict(format!(
            "the {} plan allows {} active keys; deactivate or delete one, or upgrade the plan",
            ws.plan.as_str(),
            ws.plan.limits().active_keys
        )),
        other => other.into(),
    }
}

/// The workspace's keys (any member). Never the raw keys.
#[utoipa::path(get, path = "/v1/workspaces/{id}/keys", tag = "keys", params(("id" = String, Path)),
    responses((status = 200, body = Vec<KeyView>), (status = 401, description = "No session"), (status = 404, description = "No such workspace among yours")))]
async fn list_keys(
    State(s): State<KeysState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Vec<KeyView>>> {
    let ws = s.gate.member(&headers, &id, Action::Read).await?.workspace;
    Ok(axum::Json(
        s.store
            .keys
            .keys(&ws.id)
            .await?
            .iter()
            .map(KeyView::from)
            .collect(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateKey {
    name: String,
    /// Source label attached to every event the key sends (`production`, `staging`, ...).
    source: String,
    /// `ingest` (default) or `read`.
    scope: Option<String>,
}

/// Create a key (admins and owners). The response carries the raw key, this once.
#[utoipa::path(post, path = "/v1/workspaces/{id}/keys", tag = "keys", params(("id" = String, Path)), request_body = CreateKey,
    responses((status = 201, body = NewKeyView), (status = 400, description = "Invalid name, source or scope"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such workspace among yours"), (status = 409, description = "Active key limit reached")))]
async fn create_key(
    State(s): State<KeysState>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(req): Json<CreateKey>,
) -> Result<(StatusCode, axum::Json<NewKeyView>)> {
    let Member {
        who, workspace: ws, ..
    } = s.gate.member(&headers, &id, Action::ManageKeys).await?;
    let name = names::display_name("name", &req.name)
        .map_err(|m| ApiError::bad_request(ErrorCode::InvalidName, m))?;
    let source = names::source_label(&req.source)
        .map_err(|m| ApiError::bad_request(ErrorCode::InvalidSource, m))?;
    let scope = match req.scope.as_deref() {
        None => Scope::Ingest,
        Some(s) => Scope::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                ErrorCode::InvalidScope,
                format!("`{s}` is not a scope: use ingest or read"),
            )
        })?,
    };
    let ip = auth::client_addr(&headers, peer.0, &s.web);
    let (key, raw) = s
        .mint(
            &ws,
            Actor::person(&who.user, ip.as_deref()),
            name,
            source,
            scope,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(NewKeyView {
            key: KeyView::from(&key),
            secret: raw.expose().to_owned(),
        }),
    ))
}

async fn set_state(
    s: KeysState,
    peer: Peer,
    headers: HeaderMap,
    id: String,
    key: String,
    state: KeyState,
) -> Result<axum::Json<KeyView>> {
    let Member {
        who, workspace: ws, ..
    } = s.gate.member(&headers, &id, Action::ManageKeys).await?;
    let mut k = s.key(&ws, &key).await?;
    let ip = auth::client_addr(&headers, peer.0, &s.web);
    let changed = usecases::set_key_state(
        s.store.keys.as_ref(),
        s.store.audit_log.as_ref(),
        &ws,
        &k,
        state,
        Actor::person(&who.user, ip.as_deref()),
        s.clock.now_ms(),
    )
    .await
    .map_err(|e| limit(e, &ws))?;
    if !changed {
        // Deleted since it was read.
        return Err(ApiError::NotFound(format!("key `{key}` not found")));
    }
    k.state = state;
    Ok(axum::Json(KeyView::from(&k)))
}

/// Deactivate a key: ingest with it is refused from the next request on.
#[utoipa::path(post, path = "/v1/workspaces/{id}/keys/{key_id}/deactivate", tag = "keys", params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such key")))]
async fn deactivate(
    State(s): State<KeysState>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
) -> Result<axum::Json<KeyView>> {
    set_state(s, peer, headers, id, key, KeyState::Deactivated).await
}

/// Reactivate a key (counts against the plan's active key limit).
#[utoipa::path(post, path = "/v1/workspaces/{id}/keys/{key_id}/reactivate", tag = "keys", params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such key"), (status = 409, description = "Active key limit reached")))]
async fn reactivate(
    State(s): State<KeysState>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
) -> Result<axum::Json<KeyView>> {
    set_state(s, peer, headers, id, key, KeyState::Active).await
}

/// Rotate a key: a new key with the same name, source and scope; the old one is deactivated.
#[utoipa::path(post, path = "/v1/workspaces/{id}/keys/{key_id}/rotate", tag = "keys", params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 201, body = NewKeyView), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such key"), (status = 409, description = "Active key limit reached")))]
async fn rotate(
    State(s): State<KeysState>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
) -> Result<(StatusCode, axum::Json<NewKeyView>)> {
    let Member {
        who, workspace: ws, ..
    } = s.gate.member(&headers, &id, Action::ManageKeys).await?;
    let old = s.key(&ws, &key).await?;
    // Deactivate first so the replacement fits within the active key limit.
    s.store
        .keys
        .set_key_state(
            &ws.id,
            &old.id,
            KeyState::Deactivated,
            ws.plan.limits().active_keys,
        )
        .await?;
    let ip = auth::client_addr(&headers, peer.0, &s.web);
    s.audit(&ws, &who, "key.rotated", &old, ip.clone()).await;
    let by = Actor::person(&who.user, ip.as_deref());
    let (new, raw) = match s
        .mint(&ws, by, old.name.clone(), old.source.clone(), old.scope)
        .await
    {
        Ok(minted) => minted,
        Err(e) => {
            // Put the old key back as it was rather than leave the caller with no working key.
            if old.state == KeyState::Active {
                s.store
                    .keys
                    .set_key_state(&ws.id, &old.id, KeyState::Active, u32::MAX)
                    .await?;
                s.audit(&ws, &who, "key.reactivated", &old, ip.clone())
                    .await;
            }
            return Err(e);
        }
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(NewKeyView {
            key: KeyView::from(&new),
            secret: raw.expose().to_owned(),
        }),
    ))
}

/// Delete a key: ingest with it is refused from the next request on.
#[utoipa::path(delete, path = "/v1/workspaces/{id}/keys/{key_id}", tag = "keys", params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, description = "Role too low, or cross-site"), (status = 404, description = "No such key")))]
async fn delete_key(
    State(s): State<KeysState>,
    peer: Peer,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
) -> Result<StatusCode> {
    let Member {
        who, workspace: ws, ..
    } = s.gate.member(&headers, &id, Action::ManageKeys).await?;
    let k = s.key(&ws, &key).await?;
    s.store.keys.delete_key(&ws.id, &k.id).await?;
    s.audit(
        &ws,
        &who,
        "key.deleted",
        &k,
        auth::client_addr(&headers, peer.0, &s.web),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
