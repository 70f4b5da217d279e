//! What every HTTP answer carries, on Lambda and on the local server alike: security headers, and
//! a 500 in the error shape (instead of a dropped connection) should a handler ever panic.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Wraps a router with the headers and the panic guard every LLMtrack answer has.
pub fn harden(router: axum::Router) -> axum::Router {
    router
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    // Workspace and report ids are in the app's URLs: never send them to another site.
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    // API answers are personal (and some hold a raw key or secret once): no cache keeps them,
    // unless the handler said otherwise (the dashboard's hashed assets).
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The payload is not logged: a panic message may quote request data.
    tracing::error!("a request handler panicked");
    crate::ApiError::Unexpected(anyhow::anyhow!("handler panicked")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn answers_carry_security_headers_and_panics_become_500s() {
        let app = harden(
            axum::Router::new()
                .route("/ok", axum::routing::get(|| async { "ok" }))
                .route(
                    "/cached",
                    axum::routing::get(|| async {
                        ([(header::CACHE_CONTROL, "public, max-age=60")], "asset")
                    }),
                )
                .route(
                    "/boom",
                    axum::routing::get(|| async {
                        let v: Vec<u8> = Vec::new();
                        #[allow(clippy::indexing_slicing)]
                        let x = v[3];
                        x.to_string()
                    }),
                ),
        );
        let get = |p: &'static str| {
            axum::http::Request::get(p)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let r = app.clone().oneshot(get("/ok")).await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["referrer-policy"], "same-origin");
        let r = app.clone().oneshot(get("/cached")).await.unwrap();
        assert_eq!(r.headers()["cache-control"], "public, max-age=60");
        let r = app.oneshot(get("/boom")).await.unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
}
