//! The dashboard, served by `llmtrack serve` on the same origin as the API.
//!
//! The built single-page app (`dashboard/dist`, made by `npm run build`) is embedded in release
//! builds, so a self-hosted release is one file; debug builds read the folder at run time, so a
//! rebuilt dashboard shows without recompiling Rust. App routes (`/signin`, `/workspaces/…`)
//! answer `index.html` (history fallback); `/v1/…` stays the API and answers JSON 404s.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../dashboard/dist"]
#[allow_missing = true]
struct Assets;

/// The Content-Security-Policy of every dashboard page: no inline script or style, nothing from
/// another origin, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Paths that belong to the API, never to the app: their unknown routes answer a JSON 404.
fn is_api(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/") || path == "/healthz" || path.starts_with("/otlp/")
}

/// Serves a dashboard file, or `index.html` for an app route; `None` when the path is the API's.
pub fn respond(method: &Method, uri: &Uri, request_headers: &HeaderMap) -> Option<Response> {
    let path = uri.path();
    if is_api(path) || (method != Method::GET && method != Method::HEAD) {
        return None;
    }
    let wanted = path.trim_start_matches('/');
    if let Some(file) = (!wanted.is_empty() && !wanted.ends_with('/'))
        .then(|| Assets::get(wanted))
        .flatten()
    {
        // Vite names hashed files under assets/: they never change, so cache them for good.
        let cache = if wanted.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return Some(file_response(
            file,
            cache,
            request_headers,
            method == Method::HEAD,
        ));
    }
    // A missing file with an extension is a 404, not the app: a stale asset URL must not get HTML.
    let last = wanted.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return Some(plain(StatusCode::NOT_FOUND, "not found\n"));
    }
    Some(match Assets::get("index.html") {
        Some(index) => {
            let mut r = file_response(index, "no-cache", request_headers, method == Method::HEAD);
            page_headers(r.headers_mut());
            r
        }
        None => {
            let mut r = plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "The dashboard is not built into this binary: run `make dashboard` (needs Node 20), then start `llmtrack serve` again. The API is at /v1/.\n",
            );
            page_headers(r.headers_mut());
            r
        }
    })
}

/// Headers of an HTML page of the app: its CSP and framing rules.
fn page_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn file_response(
    file: rust_embed::EmbeddedFile,
    cache: &'static str,
    request_headers: &HeaderMap,
    head: bool,
) -> Response {
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    if head {
        return (StatusCode::OK, headers).into_response();
    }
    (StatusCode::OK, headers, file.data.into_owned()).into_response()
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_never_the_app() {
        for p in ["/v1", "/v1/", "/v1/nope", "/healthz", "/otlp/v1/traces"] {
            let uri: Uri = p.parse().unwrap();
            assert!(
                respond(&Method::GET, &uri, &HeaderMap::new()).is_none(),
                "{p}"
            );
        }
        let uri: Uri = "/workspaces/ws_1/overview".parse().unwrap();
        assert!(respond(&Method::POST, &uri, &HeaderMap::new()).is_none());
    }

    #[test]
    fn missing_files_with_an_extension_are_404() {
        let uri: Uri = "/assets/gone-1234.js".parse().unwrap();
        let r = respond(&Method::GET, &uri, &HeaderMap::new()).unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
