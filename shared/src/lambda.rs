//! Running a function's router on Lambda: the same hardening as the local server, and the
//! client's address from API Gateway's request context, or from CloudFront when the request
//! proves it came through the stack's own distribution (never from a header alone).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;
use sha2::{Digest as _, Sha256};

use crate::extract::SourceIp;

/// The header the stack's CloudFront distribution adds to every request it forwards to the API
/// (template.yaml, the `api` origin), holding the edge secret.
pub const EDGE_HEADER: &str = "x-llmtrack-edge";
/// The header the distribution's viewer-request function sets to the viewer's address.
pub const VIEWER_HEADER: &str = "x-llmtrack-viewer";
/// The variable holding the edge secret (resolved from Secrets Manager at deploy time).
pub const EDGE_SECRET_VAR: &str = "EDGE_SECRET";

/// Serves `app` under the Lambda runtime until the runtime stops it.
pub async fn run(app: axum::Router) -> Result<(), lambda_http::Error> {
    let edge = Edge::from_env();
    let app = crate::http::harden(app).layer(axum::middleware::from_fn(move |req, next| {
        source_ip(edge.clone(), req, next)
    }));
    lambda_http::run(app).await
}

/// What proves a request came through the stack's CloudFront: the SHA-256 of the edge secret
/// (compared digest to digest, so the comparison's timing says nothing about the secret).
#[derive(Clone, Default)]
pub struct Edge(Option<[u8; 32]>);

impl Edge {
    pub fn from_env() -> Edge {
        Edge::new(std::env::var(EDGE_SECRET_VAR).ok().as_deref())
    }

    /// No secret (or an empty one): no request is believed to come from CloudFront.
    pub fn new(secret: Option<&str>) -> Edge {
        Edge(
            secret
                .filter(|s| !s.is_empty())
                .map(|s| Sha256::digest(s.as_bytes()).into()),
        )
    }

    fn vouches(&self, header: Option<&axum::http::HeaderValue>) -> bool {
        match (&self.0, header) {
            (Some(expected), Some(given)) => {
                <[u8; 32]>::from(Sha256::digest(given.as_bytes())) == *expected
            }
            _ => false,
        }
    }

    /// The client's address: the viewer's, as CloudFront saw it, when the request carries the
    /// edge secret; otherwise `source_ip`, the address API Gateway saw (behind CloudFront, an
    /// edge server's). Either way the edge headers are taken out of the request, so no handler
    /// sees (or logs) the secret.
    pub fn client_ip(
        &self,
        headers: &mut axum::http::HeaderMap,
        source_ip: Option<std::net::IpAddr>,
    ) -> Option<std::net::IpAddr> {
        let secret = headers.remove(EDGE_HEADER);
        let viewer = headers.remove(VIEWER_HEADER);
        if self.vouches(secret.as_ref()) {
            let viewer = viewer.and_then(|v| v.to_str().ok()?.trim().parse().ok());
            if viewer.is_some() {
                return viewer;
            }
        }
        source_ip
    }
}

async fn source_ip(edge: Edge, mut req: Request, next: Next) -> Response {
    let gateway = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(c)) => c.http.source_ip.clone(),
        _ => None,
    };
    let gateway = gateway.and_then(|s| s.parse().ok());
    if let Some(ip) = edge.client_ip(req.headers_mut(), gateway) {
        req.extensions_mut().insert(SourceIp(ip));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;
    use std::net::IpAddr;

    fn headers(secret: Option<&str>, viewer: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(s) = secret {
            h.insert(EDGE_HEADER, s.parse().unwrap());
        }
        if let Some(v) = viewer {
            h.insert(VIEWER_HEADER, v.parse().unwrap());
        }
        h
    }

    const GATEWAY: &str = "130.176.0.1";

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_viewer_address_counts_only_with_the_edge_secret() {
        let edge = Edge::new(Some("s3cret-from-secrets-manager"));
        let cases = [
            // Through CloudFront: the viewer, IPv4 or IPv6.
            (
                Some("s3cret-from-secrets-manager"),
                Some("203.0.113.7"),
                "203.0.113.7",
            ),
            (
                Some("s3cret-from-secrets-manager"),
                Some("2001:db8::7"),
                "2001:db8::7",
            ),
            // Straight to API Gateway, with a forged viewer header: API Gateway's address.
            (None, Some("203.0.113.7"), GATEWAY),
            (Some("guess"), Some("203.0.113.7"), GATEWAY),
            (Some(""), Some("203.0.113.7"), GATEWAY),
            // CloudFront, but no usable viewer address: API Gateway's.
            (Some("s3cret-from-secrets-manager"), None, GATEWAY),
            (
                Some("s3cret-from-secrets-manager"),
                Some("not an address"),
                GATEWAY,
            ),
        ];
        for (secret, viewer, want) in cases {
            let mut h = headers(secret, viewer);
            assert_eq!(
                edge.client_ip(&mut h, ip(GATEWAY)),
                ip(want),
                "{secret:?} {viewer:?}"
            );
            assert!(h.get(EDGE_HEADER).is_none() && h.get(VIEWER_HEADER).is_none());
        }
    }

    #[test]
    fn without_a_secret_no_header_is_believed() {
        for edge in [Edge::new(None), Edge::new(Some(""))] {
            let mut h = headers(Some(""), Some("203.0.113.7"));
            assert_eq!(edge.client_ip(&mut h, ip(GATEWAY)), ip(GATEWAY));
            let mut h = headers(Some("anything"), Some("203.0.113.7"));
            assert_eq!(edge.client_ip(&mut h, ip(GATEWAY)), ip(GATEWAY));
        }
    }
}
