//! The API's description: `GET /v1/openapi.json`, assembled from every function's handler
//! annotations (utoipa), so the document cannot drift from the routes; and `GET /healthz`.
//! It lives in its own small function so the others do not link each other's code to describe it.

use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The whole public API's OpenAPI 3.1 document, as served.
pub fn openapi_document() -> serde_json::Value {
    llmtrack_shared::openapi::served(annotated())
}

/// The document as the handlers' annotations give it.
fn annotated() -> utoipa::openapi::OpenApi {
    llmtrack_shared::openapi::document([
        llmtrack_shared::openapi::health().into_openapi(),
        llmtrack_ingest::openapi(),
        llmtrack_query::openapi(),
        llmtrack_account::openapi(),
        llmtrack_keys::openapi(),
        llmtrack_billing::openapi(),
        llmtrack_deletion::openapi(),
        llmtrack_reports::openapi(),
        llmtrack_alerts::openapi(),
        openapi_routes().into_openapi(),
    ])
}

fn openapi_routes() -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// `GET /v1/openapi.json` and `GET /healthz`, stateless.
pub fn router() -> axum::Router {
    let (docs, _) = openapi_routes().split_for_parts();
    let (health, _) = llmtrack_shared::openapi::health().split_for_parts();
    docs.merge(health)
}

/// This document: the OpenAPI 3.1 description of the LLMtrack API.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi_document())
}
