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
        "unknown_parameter",
        format!("unknown query parameter `{first}`: {takes}"),
    ))
}
