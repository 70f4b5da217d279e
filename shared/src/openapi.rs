//! Pieces of the OpenAPI document every function shares: the document's header and security
//! scheme, and the health route.

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

/// `GET /healthz`.
pub fn health() -> OpenApiRouter {
    OpenApiRouter::new().routes(routes!(healthz))
}

/// 200 when the server is up and ready to take requests.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, description = "Ready", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}
