//! Pieces of the OpenAPI document every function shares: the document's header and security
//! scheme, the health route, and the check that a request names no query parameter its
//! operation does not declare.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::IntoResponse;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Merges the functions' parts into the one document served at `/v1/openapi.json`.
pub fn document(parts: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("LLMtrack API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("LLM usage and cost tracking: send one usage event per LLM call; read cost, usage and latency back."))
                .build(),
        )
        .build();
    for part in parts {
        doc.merge(part);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "api_key",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("llmt_…")
                .description(Some("An LLMtrack API key"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::auth::SESSION_COOKIE,
            "The dashboard's session cookie, set by POST /v1/auth/verify",
        ))),
    );
    doc
}

/// Operations that take no credential; every other operation is authenticated by a session
/// (or a key, where its annotation says so).
const PUBLIC: [(&str, &str); 7] = [
    ("post", "/v1/auth/email"),
    ("post", "/v1/auth/verify"),
    ("get", "/v1/about"),
    ("get", "/healthz"),
    ("get", "/v1/openapi.json"),
    ("post", "/v1/billing/webhook"),
    ("get", "/v1/archive/{key}"),
];

/// The document as served: `doc` completed with what every operation shares, so no annotation
/// can forget it: a description on every response (OpenAPI requires one), the error shape on
/// every 4xx and 5xx without a body of its own, the session as the security of every operation
/// that names none and is not public, the 400 every operation answers for an unknown query
/// parameter, and the local server's signed archive links.
pub fn served(doc: OpenApi) -> serde_json::Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_default();
    let error = serde_json::json!({"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}});
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        paths.insert("/v1/archive/{key}".into(), serde_json::json!({"get": {
            "tags": ["meta"],
            "summary": "Download an archived file (local server only)",
            "description": "Export files and monthly reports on `llmtrack serve` are downloaded through HMAC-signed links that expire (`expires` and `sig` in the query string). On AWS the links are presigned S3 URLs instead.",
            "operationId": "archive_download",
            "parameters": [
                {"name": "key", "in": "path", "required": true, "schema": {"type": "string"}, "description": "The object's key, e.g. `exports/ws_…/exp_….csv`"},
                {"name": "expires", "in": "query", "required": true, "schema": {"type": "integer"}, "description": "When the link stops working (epoch seconds)"},
                {"name": "filename", "in": "query", "required": false, "schema": {"type": "string"}, "description": "The name the download is saved as"},
                {"name": "sig", "in": "query", "required": true, "schema": {"type": "string"}, "description": "The link's signature"}
            ],
            "responses": {
                "200": {"description": "The file", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "403": {"description": "The link is forged, altered or expired"},
                "404": {"description": "No such file (it expired or was deleted)"}
            }
        }}));
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                let public = PUBLIC.contains(&(method.as_str(), path.as_str()));
                if !public && !op.contains_key("security") {
                    op.insert("security".into(), serde_json::json!([{"session": []}]));
                }
                let responses = op
                    .entry("responses")
                    .or_insert_with(|| serde_json::json!({}));
                let Some(responses) = responses.as_object_mut() else {
                    continue;
                };
                responses.entry("400").or_insert_with(|| {
                    serde_json::json!({"description": "An unknown query parameter, or a malformed request: `error.message` says what and where"})
                });
                if !public {
                    responses.entry("401").or_insert_with(|| serde_json::json!({"description": "Not signed in, or the session or key is not valid"}));
                }
                for (status, r) in responses.iter_mut() {
                    let Some(r) = r.as_object_mut() else { continue };
                    let empty = r
                        .get("description")
                        .and_then(|d| d.as_str())
                        .is_none_or(str::is_empty);
                    if empty {
                        r.insert("description".into(), reason(status).into());
                    }
                    if status.starts_with('4') || status.starts_with('5') {
                        r.entry("content").or_insert_with(|| error.clone());
                    }
                }
            }
        }
    }
    // An untagged enum comes out as `oneOf`, which demands that exactly one branch match; an
    // ingest refusal with results also carries `error`, so it matches both: either will do.
    if let Some(o) = doc
        .pointer_mut("/components/schemas/IngestRefusal")
        .and_then(|s| s.as_object_mut())
        && let Some(branches) = o.remove("oneOf")
    {
        o.insert("anyOf".into(), branches);
    }
    doc
}

/// The standard phrase of a status code, for responses annotated without a description.
fn reason(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        "204" => "No content",
        "207" => "Some parts succeeded, others failed",
        "400" => "Bad request",
        "401" => "Not signed in, or the session or key is not valid",
        "403" => "Not allowed",
        "404" => "Not found",
        "409" => "Conflict",
        "413" => "Too large",
        "415" => "Unsupported media type",
        "429" => "Too many requests",
        "503" => "Unavailable",
        _ => "See the error's message",
    }
}

/// `GET /healthz`.
pub fn health() -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(healthz))
}

/// 200 when the server is up and ready to take requests.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, description = "Ready", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Query parameters each operation declares, by (method, path template).
type Declared = HashMap<(String, String), BTreeSet<String>>;

fn declared(api: &OpenApi) -> Declared {
    let mut out = Declared::new();
    for (path, item) in &api.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in operations {
            let Some(op) = op else { continue };
            let names = op
                .parameters
                .iter()
                .flatten()
                .filter_map(|p| match p {
                    utoipa::openapi::RefOr::T(p) => Some(p),
                    utoipa::openapi::RefOr::Ref(_) => None,
                })
                .filter(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query))
                .map(|p| p.name.clone())
                .collect();
            out.insert((method.to_owned(), path.clone()), names);
        }
    }
    out
}

/// Refuses query parameters the operation does not declare in the OpenAPI document (400
/// `unknown_parameter`), so a misspelt `?form=last_7d` is not silently answered for the default
/// range. The document is the one list, so what is accepted and what is documented agree.
pub fn strict_query<S: Clone + Send + Sync + 'static>(
    router: OpenApiRouter<S>,
) -> OpenApiRouter<S> {
    let declared = Arc::new(declared(router.get_openapi()));
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let declared = declared.clone();
            async move {
                match unknown_parameter(&declared, &req) {
                    Some(e) => e.into_response(),
                    None => next.run(req).await,
                }
            }
        },
    ))
}

fn unknown_parameter(declared: &Declared, req: &Request) -> Option<crate::ApiError> {
    let query = req.uri().query().filter(|q| !q.is_empty())?;
    let path = req.extensions().get::<MatchedPath>()?.as_str();
    let allowed = declared.get(&(req.method().as_str().to_owned(), path.to_owned()))?;
    let unknown: BTreeSet<String> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, _)| k.into_owned())
        .filter(|k| !allowed.contains(k))
        .collect();
    let first = unknown.iter().next()?;
    let takes = if allowed.is_empty() {
        "this endpoint takes no query parameters".to_owned()
    } else {
        format!(
            "this endpoint takes {}",
            allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Some(crate::ApiError::bad_request(
        crate::ErrorCode::UnknownParameter,
        format!("unknown query parameter `{first}`: {takes}"),
    ))
}
