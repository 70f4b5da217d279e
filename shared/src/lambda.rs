//! Running a function's router on Lambda: the same hardening as the local server, and the
//! client's address from API Gateway's request context (never from a header a client can write).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;

use crate::extract::SourceIp;

/// Serves `app` under the Lambda runtime until the runtime stops it.
pub async fn run(app: axum::Router) -> Result<(), lambda_http::Error> {
    let app = crate::http::harden(app).layer(axum::middleware::from_fn(source_ip));
    lambda_http::run(app).await
}

async fn source_ip(mut req: Request, next: Next) -> Response {
    let ip = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.http.source_ip.clone(),
        _ => None,
    };
    if let Some(ip) = ip.and_then(|s| s.parse().ok()) {
        req.extensions_mut().insert(SourceIp(ip));
    }
    next.run(req).await
}
