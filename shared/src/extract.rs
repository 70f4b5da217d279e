//! Request extractors with our error shape: JSON bodies whose rejections say what is wrong, and the
//! TCP peer address when the server knows it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::{ApiError, ErrorCode};

/// `axum::Json`, but a bad body is a 400 (or 415) in the `{"error": ...}` shape.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with `Content-Type: application/json`".into(),
            )),
            Err(e) => Err(ApiError::bad_request(ErrorCode::InvalidBody, e.body_text())),
        }
    }
}

/// `axum::extract::Query`, but a malformed query string is a 400 in the `{"error": ...}` shape
/// that names the parameter and says what it must be.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidQuery, explain_query_error(&e)))
    }
}

/// serde's words made ours: `missing field `by`` → "the query parameter `by` is required".
fn explain_query_error(e: &serde_path_to_error::Error<serde::de::value::Error>) -> String {
    let message = e.inner().to_string();
    if let Some(missing) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        return format!("the query parameter `{missing}` is required");
    }
    let field = e.path().to_string();
    let what = if message.contains("invalid digit") || message.contains("number too large") {
        "must be a whole number in range".to_owned()
    } else if message.contains("provided string was not `true` or `false`") {
        "must be `true` or `false`".to_owned()
    } else {
        message
    };
    if field == "." || field.is_empty() {
        format!("the query string is not valid: {what}")
    } else {
        format!("the query parameter `{field}` {what}")
    }
}

/// The address a request came from: API Gateway's source IP on Lambda (put in the request by
/// `lambda::run`), or the TCP peer of the local server. Neither can be forged by a header.
pub struct Peer(pub Option<IpAddr>);

/// The source IP API Gateway saw, as a request extension.
#[derive(Debug, Clone, Copy)]
pub struct SourceIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts.extensions.get::<SourceIp>().map(|s| s.0).or_else(|| {
                parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip())
            }),
        ))
    }
}
