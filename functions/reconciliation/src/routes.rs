//! The HTTP routes of provider connections: admins list, add, test, import and remove them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use llmtrack_shared::auth::{Member, client_addr, require};
use llmtrack_shared::domain::access::Action;
use llmtrack_shared::domain::reconciliation::{Connection, ImportStatus, Provider};
use llmtrack_shared::domain::time::rfc3339;
use llmtrack_shared::extract::{Json, Peer};
use llmtrack_shared::usecases::Actor;
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ReconciliationState;
use crate::connections::{self, NewConnection};

fn routes() -> OpenApiRouter<ReconciliationState> {
    OpenApiRouter::new()
        .routes(routes!(list_connections, create_connection))
        .routes(routes!(remove_connection))
        .routes(routes!(test_connection))
        .routes(routes!(import_connection))
}

pub fn router(state: ReconciliationState) -> OpenApiRouter {
    llmtrack_shared::openapi::strict_query(routes()).with_state(state)
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

type Result<T> = std::result::Result<T, ApiError>;

/// A connection as admins see it: never the key, only its last four characters.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// `pc_…`
    pub id: String,
    pub provider: Provider,
    /// The admin key's last four characters (`…wxyz`).
    pub key_hint: String,
    /// The provider-side projects (OpenAI) or workspaces (Anthropic) imported; empty for all.
    pub scope: Vec<String>,
    pub created_at: String,
    /// The last UTC day imported whole; null before the first import.
    pub imported_through: Option<String>,
    /// How the last import went; null before the first.
    pub last_import: Option<ImportStatus>,
}

impl ConnectionView {
    pub fn of(c: &Connection) -> ConnectionView {
        ConnectionView {
            id: c.id.clone(),
            provider: c.provider,
            key_hint: c.key_hint.clone(),
            scope: c.scope.clone(),
            created_at: rfc3339(c.created_at_ms),
            imported_through: c.imported_through.clone(),
            last_import: c.last_import.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    connections: Vec<ConnectionView>,
}

/// A connection to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionRequest {
    /// `openai` or `anthropic`.
    provider: String,
    /// The organisation's Admin API key: OpenAI `sk-admin-…` (Organization settings → Admin
    /// keys), Anthropic `sk-ant-admin…` (Console → Settings → Admin keys). Sealed at once, never
    /// shown again.
    admin_key: String,
    /// Only these OpenAI project ids or Anthropic workspace ids; all when left out.
    #[serde(default)]
    scope: Vec<String>,
}

/// Days to import; both left out: the days due.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// First UTC day (`YYYY-MM-DD`).
    from: Option<String>,
    /// The UTC day after the last (`YYYY-MM-DD`, exclusive).
    to: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TestResult {
    ok: bool,
}

async fn admin(s: &ReconciliationState, headers: &HeaderMap, id: &str) -> Result<Member> {
    s.gate.member(headers, id, Action::ManageSettings).await
}

fn actor<'a>(m: &'a Member, ip: &'a Option<String>) -> Actor<'a> {
    Actor::person(&m.who.user, ip.as_deref())
}

fn ip(s: &ReconciliationState, headers: &HeaderMap, peer: &Peer) -> Option<String> {
    client_addr(headers, peer.0, &s.gate.web)
}

/// A workspace's provider connections (admins).
#[utoipa::path(get, path = "/v1/workspaces/{id}/connections", tag = "reconciliation",
    params(("id" = String, Path, description = "The workspace")),
    responses((status = 200, body = ConnectionList), (status = 401, description = "No session"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such workspace among yours")))]
async fn list_connections(
    State(s): State<ReconciliationState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<ConnectionList>> {
    // A read: no Origin check (browsers send none on a same-origin GET), but admins only.
    let who = s.gate.session(&headers).await?;
    let (ws, m) = s.gate.membership(&who, &id).await?;
    require(m.role, Action::ManageSettings)?;
    let all = s.deps.store.connections.connections(&ws.id).await?;
    Ok(axum::Json(ConnectionList {
        connections: all.iter().map(ConnectionView::of).collect(),
    }))
}

/// Connect a provider organisation (admins): the key is checked with the provider, sealed,
/// and the last 30 days are imported before the answer.
#[utoipa::path(post, path = "/v1/workspaces/{id}/connections", tag = "reconciliation",
    params(("id" = String, Path, description = "The workspace")), request_body = ConnectionRequest,
    responses((status = 201, body = ConnectionView, description = "Connected; `last_import` says how the first import went"),
        (status = 400, description = "A field is not valid: the message names it"),
        (status = 401, description = "No session"), (status = 403, description = "Not an admin"),
        (status = 404, description = "No such workspace among yours"),
        (status = 409, description = "The workspace holds as many connections as it may"),
        (status = 422, description = "The provider refused the key: the message gives its reason"),
        (status = 502, description = "The provider did not answer")))]
async fn create_connection(
    State(s): State<ReconciliationState>,
    headers: HeaderMap,
    peer: Peer,
    Path(id): Path<String>,
    Json(req): Json<ConnectionRequest>,
) -> Result<Response> {
    let m = admin(&s, &headers, &id).await?;
    let new = NewConnection::parse(&req.provider, &req.admin_key, req.scope)?;
    let ip = ip(&s, &headers, &peer);
    let c = connections::add(&s.deps, &m.workspace.id, new, actor(&m, &ip)).await?;
    Ok((StatusCode::CREATED, axum::Json(ConnectionView::of(&c))).into_response())
}

/// Remove a connection (admins): its sealed key and every figure it imported are deleted.
#[utoipa::path(delete, path = "/v1/workspaces/{id}/connections/{connection}", tag = "reconciliation",
    params(("id" = String, Path, description = "The workspace"), ("connection" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 401, description = "No session"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such workspace or connection among yours")))]
async fn remove_connection(
    State(s): State<ReconciliationState>,
    headers: HeaderMap,
    peer: Peer,
    Path((id, connection)): Path<(String, String)>,
) -> Result<StatusCode> {
    let m = admin(&s, &headers, &id).await?;
    let ip = ip(&s, &headers, &peer);
    connections::remove(&s.deps, &m.workspace.id, &connection, actor(&m, &ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check that the saved key still reads the organisation's usage and cost (admins).
#[utoipa::path(post, path = "/v1/workspaces/{id}/connections/{connection}/test", tag = "reconciliation",
    params(("id" = String, Path, description = "The workspace"), ("connection" = String, Path)),
    responses((status = 200, body = TestResult), (status = 401, description = "No session"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such workspace or connection among yours"),
        (status = 422, description = "The provider refused the key: the message gives its reason"),
        (status = 502, description = "The provider did not answer")))]
async fn test_connection(
    State(s): State<ReconciliationState>,
    headers: HeaderMap,
    Path((id, connection)): Path<(String, String)>,
) -> Result<axum::Json<TestResult>> {
    let m = admin(&s, &headers, &id).await?;
    connections::test(&s.deps, &m.workspace.id, &connection).await?;
    Ok(axum::Json(TestResult { ok: true }))
}

fn day(field: &str, v: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(
            ErrorCode::InvalidConnection,
            format!("`{field}` must be a day as YYYY-MM-DD, got `{v}`"),
        )
    })
}

/// Import now (admins): the days given, or the days due; each day imported replaces what was
/// imported for it. How it went is the answer's `last_import`.
#[utoipa::path(post, path = "/v1/workspaces/{id}/connections/{connection}/import", tag = "reconciliation",
    params(("id" = String, Path, description = "The workspace"), ("connection" = String, Path)),
    request_body = ImportRequest,
    responses((status = 200, body = ConnectionView), (status = 400, description = "The range is not valid"),
        (status = 401, description = "No session"), (status = 403, description = "Not an admin"),
        (status = 404, description = "No such workspace or connection among yours")))]
async fn import_connection(
    State(s): State<ReconciliationState>,
    headers: HeaderMap,
    Path((id, connection)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<axum::Json<ConnectionView>> {
    let m = admin(&s, &headers, &id).await?;
    // The body is optional: none (or `{}`) imports the days due.
    let req: ImportRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ImportRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidBody, e))?
    };
    let range = match (req.from, req.to) {
        (None, None) => None,
        (Some(f), Some(t)) => Some((day("from", &f)?, day("to", &t)?)),
        _ => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidConnection,
                "give both `from` and `to`, or neither (the days due)",
            ));
        }
    };
    let c = connections::import_now(&s.deps, &m.workspace.id, &connection, range).await?;
    Ok(axum::Json(ConnectionView::of(&c)))
}
