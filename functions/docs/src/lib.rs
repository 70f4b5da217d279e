//! The API's description, `GET /v1/openapi.json`, and `GET /healthz`, in a function of their own.
//! The document is `docs/openapi.json` as committed, served as is: `infra` assembles it from every
//! function's handler annotations (utoipa) and a test there fails when the file no longer matches
//! them, so it cannot drift from the routes. Serving the file rather than assembling it here keeps
//! every other function's code out of this Lambda: no function crate depends on another.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The whole public API's OpenAPI 3.1 document, as served.
pub const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

fn openapi_routes() -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This crate's routes, described: its part of the whole document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = llmtrack_shared::openapi::health().into_openapi();
    doc.merge(openapi_routes().into_openapi());
    doc
}

/// `GET /v1/openapi.json` and `GET /healthz`, stateless.
pub fn router() -> axum::Router {
    let (docs, _) = openapi_routes().split_for_parts();
    let (health, _) = llmtrack_shared::openapi::health().split_for_parts();
    docs.merge(health)
}

/// This document: the OpenAPI 3.1 description of the LLMtrack API.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
