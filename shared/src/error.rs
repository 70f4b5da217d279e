//! The one error type every handler returns, and its HTTP form:
//! `{"error": {"code": "...", "message": "..."}}`. Internals never reach the client.
//!
//! Every code the API answers with is a variant of [`ErrorCode`]: its HTTP status, its stable
//! string and its meaning are written once, in the table below, which the OpenAPI document
//! (`ErrorCode` and `EventErrorCode` schemas) and docs/API-ERRORS.md are made from.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ports::StoreError;

/// Where a code is answered: as a whole response's `error.code`, as one event's
/// `results[].error.code` in `POST /v1/events`, or as both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeScope {
    Response,
    Event,
    Both,
}

/// Writes [`ErrorCode`] from one table (meilisearch's `Code` pattern): each row is a variant, its
/// documentation, its code string, its HTTP status and where it is answered.
macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])+ $variant:ident = $code:literal, $status:ident, $scope:ident; )+) => {
        /// Every stable, machine-readable code the API answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The code as clients see it: stable, snake_case.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }

            /// The status of a response whose `error.code` this is. A code only ever given to
            /// one event (never a whole response) says 400: the event was a bad request, and
            /// the request answers 400 when no event of it was stored (207 otherwise).
            pub const fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)+
                }
            }

            /// Where the code is answered.
            pub const fn scope(self) -> CodeScope {
                match self {
                    $(ErrorCode::$variant => CodeScope::$scope,)+
                }
            }

            /// What the code means, for people: the variant's documentation.
            pub fn doc(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => concat!($($doc),+),)+
                }
                .trim()
            }
        }
    };
}

error_codes! {
    // Malformed requests (400).
    /// The body is not the JSON the operation takes (or, for `POST /v1/events`, could not be
    /// read, is not one event or `{"events": [...]}`, is empty or has too many events);
    /// the message says what and where.
    InvalidBody = "invalid_body", BAD_REQUEST, Response;
    /// A query parameter has a value of the wrong type or shape.
    InvalidQuery = "invalid_query", BAD_REQUEST, Response;
    /// The request names a query parameter its operation does not take.
    UnknownParameter = "unknown_parameter", BAD_REQUEST, Response;
    /// Not a valid email address (or longer than 254 characters).
    InvalidEmail = "invalid_email", BAD_REQUEST, Response;
    /// The sign-in code is wrong, expired, used or tried too often; request a new one.
    InvalidCode = "invalid_code", BAD_REQUEST, Response;
    /// A workspace's, key's or alert rule's name is empty, longer than 64 characters or holds
    /// control characters.
    InvalidName = "invalid_name", BAD_REQUEST, Response;
    /// A key's source label is not 1 to 64 letters, digits, `.`, `_` or `-`.
    InvalidSource = "invalid_source", BAD_REQUEST, Response;
    /// A key's scope is not `ingest` or `read`.
    InvalidScope = "invalid_scope", BAD_REQUEST, Response;
    /// A member's role is not `owner`, `admin` or `viewer`.
    InvalidRole = "invalid_role", BAD_REQUEST, Response;
    /// Not an IANA timezone (the `tz` parameter, or the workspace's own).
    InvalidTimezone = "invalid_timezone", BAD_REQUEST, Response;
    /// `span_labels` lists too many attributes, or an attribute name that cannot be one.
    InvalidSpanLabels = "invalid_span_labels", BAD_REQUEST, Response;
    /// `from` or `to` is neither an RFC 3339 time nor a named range.
    InvalidTime = "invalid_time", BAD_REQUEST, Response;
    /// The range is backwards or longer than its granularity allows.
    InvalidRange = "invalid_range", BAD_REQUEST, Response;
    /// `granularity` is not `hour` or `day`.
    InvalidGranularity = "invalid_granularity", BAD_REQUEST, Response;
    /// `by` (or another dimension parameter) is not a dimension.
    InvalidDimension = "invalid_dimension", BAD_REQUEST, Response;
    /// A breakdown export without `by`.
    MissingDimension = "missing_dimension", BAD_REQUEST, Response;
    /// `metric` (or `sort`) is not a metric.
    InvalidMetric = "invalid_metric", BAD_REQUEST, Response;
    /// A filter has a value it cannot have (`status` other than `success` or `error`).
    InvalidFilter = "invalid_filter", BAD_REQUEST, Response;
    /// `order` is not `asc` or `desc`.
    InvalidOrder = "invalid_order", BAD_REQUEST, Response;
    /// `limit` is out of its range.
    InvalidLimit = "invalid_limit", BAD_REQUEST, Response;
    /// `top` is out of its range.
    InvalidTop = "invalid_top", BAD_REQUEST, Response;
    /// `cursor` is not one this endpoint returned (for this workspace).
    InvalidCursor = "invalid_cursor", BAD_REQUEST, Response;
    /// With a session, an analytics request must say which workspace (`?workspace=ws_…`).
    MissingWorkspace = "missing_workspace", BAD_REQUEST, Response;
    /// Filters answered from raw events over a range holding too many of them: narrow the
    /// range or the filters.
    TooManyEvents = "too_many_events", BAD_REQUEST, Response;
    /// An export would hold more events than an export may.
    ExportTooLarge = "export_too_large", BAD_REQUEST, Response;
    /// Not a month (`YYYY-MM`), or a month not over yet.
    InvalidMonth = "invalid_month", BAD_REQUEST, Response;
    /// An alert rule's field is missing or out of range; the message names it.
    InvalidRule = "invalid_rule", BAD_REQUEST, Response;
    /// A workspace price rule's field is missing or out of range, or the workspace already has
    /// as many rules as it may; the message names the field.
    InvalidPriceRule = "invalid_price_rule", BAD_REQUEST, Response;
    /// A budget's field is missing or out of range, or the workspace already has as many
    /// budgets as it may; the message names the field.
    InvalidBudget = "invalid_budget", BAD_REQUEST, Response;
    /// The workspace's tag keys: too many, listed twice, or not a valid key; the message names
    /// the one.
    InvalidTags = "invalid_tags", BAD_REQUEST, Response;
    /// A deletion request is not one that can be carried out; the message names the field.
    InvalidDeletion = "invalid_deletion", BAD_REQUEST, Response;
    /// A repricing's range is not one that can be repriced (not ended yet, or older than the
    /// plan's history); the message names the field.
    InvalidRepricing = "invalid_repricing", BAD_REQUEST, Response;
    /// A provider connection's field is missing or not valid (the provider, the admin key, a
    /// scope id, an import range); the message names it.
    InvalidConnection = "invalid_connection", BAD_REQUEST, Response;
    /// The plan is free, unknown or not for sale here.
    InvalidPlan = "invalid_plan", BAD_REQUEST, Response;
    /// A Stripe webhook delivery whose `Stripe-Signature` is missing, malformed, wrong or
    /// too old.
    InvalidSignature = "invalid_signature", BAD_REQUEST, Response;
    /// `POST /v1/events`: every event was rejected (`results` says why for each), or, for one
    /// event, it could not be parsed at all; or a signed Stripe webhook delivery that is not a
    /// Stripe event.
    InvalidEvent = "invalid_event", BAD_REQUEST, Both;

    // Credentials and permissions.
    /// Not signed in, or the session or key is missing, malformed, unknown or deactivated.
    Unauthorized = "unauthorized", UNAUTHORIZED, Response;
    /// Signed in, but not allowed: a role or key scope that does not permit the action, or a
    /// cross-site request.
    Forbidden = "forbidden", FORBIDDEN, Response;
    /// A download link whose time is up (local server).
    LinkExpired = "link_expired", FORBIDDEN, Response;
    /// A download link that is forged, altered or mangled (local server).
    BadSignature = "bad_signature", FORBIDDEN, Response;

    // The resource and the request as a whole.
    /// No such resource among yours (foreign ids answer the same), or no such endpoint.
    NotFound = "not_found", NOT_FOUND, Response;
    /// The request was not handled within the local server's deadline (reading its body
    /// included).
    RequestTimeout = "request_timeout", REQUEST_TIMEOUT, Response;
    /// The change conflicts with the current state: it exists already, a plan limit is
    /// reached, the last owner would go, or the workspace is being deleted.
    Conflict = "conflict", CONFLICT, Response;
    /// The body is larger than the operation accepts.
    PayloadTooLarge = "payload_too_large", PAYLOAD_TOO_LARGE, Response;
    /// `Content-Type` is not `application/json`.
    UnsupportedMediaType = "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, Response;
    /// The plan's monthly event quota is used up (see `Retry-After`); per event, the event
    /// was not stored for that reason.
    QuotaExceeded = "quota_exceeded", TOO_MANY_REQUESTS, Both;
    /// The provider refused the connection's admin key (revoked, not an admin key, missing
    /// the usage scope): the message gives the provider's reason.
    ProviderKeyRefused = "provider_key_refused", UNPROCESSABLE_ENTITY, Response;
    /// Too many requests for the key, user or address; retry after `Retry-After` seconds.
    RateLimited = "rate_limited", TOO_MANY_REQUESTS, Response;
    /// Something went wrong on our side; the details are in the server's log, not here.
    Internal = "internal", INTERNAL_SERVER_ERROR, Response;
    /// Billing is not set up on this deployment (no Stripe keys).
    BillingNotConfigured = "billing_not_configured", SERVICE_UNAVAILABLE, Response;
    /// The payment provider did not answer; try again later.
    PaymentProviderUnavailable = "payment_provider_unavailable", SERVICE_UNAVAILABLE, Response;
    /// The LLM provider's billing API did not answer, or kept failing or rate limiting after
    /// retries; try again later.
    ProviderUnavailable = "provider_unavailable", BAD_GATEWAY, Response;

    // One event of `POST /v1/events` (`results[].error.code`; `field` names the field).
    /// A field is missing, unknown or of the wrong type.
    InvalidField = "invalid_field", BAD_REQUEST, Event;
    /// A number is outside the range the field accepts.
    OutOfRange = "out_of_range", BAD_REQUEST, Event;
    /// A part of the tokens (cached input, reasoning) is larger than the total it belongs to.
    SubsetExceedsTotal = "subset_exceeds_total", BAD_REQUEST, Event;
    /// A cost computed from the token counts and the price table is out of range.
    CostOutOfRange = "cost_out_of_range", BAD_REQUEST, Event;
    /// `timestamp` is more than 5 minutes in the future.
    TimestampInFuture = "timestamp_in_future", BAD_REQUEST, Event;
    /// `timestamp` is older than the plan's history window.
    TimestampTooOld = "timestamp_too_old", BAD_REQUEST, Event;
    /// A text field is empty.
    Empty = "empty", BAD_REQUEST, Event;
    /// A text field, or a metadata value, is longer than it may be.
    TooLong = "too_long", BAD_REQUEST, Event;
    /// A text field holds control characters.
    InvalidCharacters = "invalid_characters", BAD_REQUEST, Event;
    /// A field that must not hold secrets looks like one (an API key, a token).
    LooksLikeSecret = "looks_like_secret", BAD_REQUEST, Event;
    /// `metadata` has more keys than allowed.
    TooManyKeys = "too_many_keys", BAD_REQUEST, Event;
    /// A `metadata` key is empty, too long or not printable.
    InvalidKey = "invalid_key", BAD_REQUEST, Event;
    /// A `metadata` value is `null` or a number that is not finite.
    InvalidValue = "invalid_value", BAD_REQUEST, Event;
    /// A `metadata` value is an object or an array: metadata is flat.
    NestedMetadata = "nested_metadata", BAD_REQUEST, Event;
    /// `metadata` as a whole is larger than allowed.
    TooLarge = "too_large", BAD_REQUEST, Event;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl CodeScope {
    /// Answered as a whole response's `error.code`.
    pub fn in_response(self) -> bool {
        matches!(self, CodeScope::Response | CodeScope::Both)
    }

    /// Answered as one event's `results[].error.code`.
    pub fn in_event(self) -> bool {
        matches!(self, CodeScope::Event | CodeScope::Both)
    }
}

/// A string schema whose values are the codes `keep` selects, each listed in the description
/// with its meaning (and status, for response codes).
fn code_schema(
    intro: &str,
    keep: fn(CodeScope) -> bool,
    status: bool,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    let codes: Vec<ErrorCode> = ErrorCode::ALL
        .iter()
        .copied()
        .filter(|c| keep(c.scope()))
        .collect();
    let mut description = format!("{intro}\n");
    for c in &codes {
        if status {
            description.push_str(&format!(
                "\n- `{}` ({}): {}",
                c.as_str(),
                c.status().as_u16(),
                c.doc()
            ));
        } else {
            description.push_str(&format!("\n- `{}`: {}", c.as_str(), c.doc()));
        }
    }
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(codes.iter().map(|c| c.as_str())))
        .description(Some(description))
        .into()
}

impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        code_schema(
            "Stable, machine-readable code of an error response (docs/API-ERRORS.md). The HTTP status each comes with is in parentheses.",
            CodeScope::in_response,
            true,
        )
    }
}

impl ToSchema for ErrorCode {}

/// The schema of one rejected event's `code` in `POST /v1/events`: the codes of
/// [`ErrorCode`] answered per event. (Only a schema: the field's type is `ErrorCode`.)
pub struct EventErrorCode;

impl utoipa::PartialSchema for EventErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        code_schema(
            "Stable, machine-readable code of why one event was rejected (docs/API-ERRORS.md).",
            CodeScope::in_event,
            false,
        )
    }
}

impl ToSchema for EventErrorCode {}

/// The tables of docs/API-ERRORS.md, as the enum gives them: response codes, then event codes.
pub fn markdown_tables() -> String {
    let mut out = String::from("| code | status | meaning |\n|---|---|---|\n");
    for c in ErrorCode::ALL.iter().filter(|c| c.scope().in_response()) {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            c.as_str(),
            c.status().as_u16(),
            c.doc().replace('|', "\\|")
        ));
    }
    out.push_str("\nPer event, in `results[].error.code` of `POST /v1/events`:\n\n");
    out.push_str("| code | meaning |\n|---|---|\n");
    for c in ErrorCode::ALL.iter().filter(|c| c.scope().in_event()) {
        out.push_str(&format!(
            "| `{}` | {} |\n",
            c.as_str(),
            c.doc().replace('|', "\\|")
        ));
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { code: ErrorCode, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{message}")]
    QuotaExceeded { message: String, retry_after_s: i64 },
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_s: i64 },
    #[error("{0}")]
    Conflict(String),
    /// A feature this deployment has not been set up for (billing without Stripe keys), or a
    /// service behind it that did not answer.
    #[error("{message}")]
    Unavailable { code: ErrorCode, message: String },
    #[error("an unexpected error occurred")]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// What is wrong and where, for people.
    pub message: String,
}

impl ApiError {
    /// A 400-class refusal: `message` is anything displayable (a string, a domain error).
    pub fn bad_request(code: ErrorCode, message: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest {
            code,
            message: message.to_string(),
        }
    }

    /// The error's code; its HTTP status is the code's.
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest { code, .. } | ApiError::Unavailable { code, .. } => *code,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::Forbidden(_) => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::RequestTimeout(_) => ErrorCode::RequestTimeout,
            ApiError::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            ApiError::TooManyRequests { .. } => ErrorCode::RateLimited,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::Unexpected(_) => ErrorCode::Internal,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            StoreError::Refused(r) => ApiError::Conflict(r.to_string()),
            StoreError::Unexpected(e) => ApiError::Unexpected(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status = code.status();
        if let ApiError::Unexpected(e) = &self {
            // The cause goes to the log, never to the client.
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let retry_after = match &self {
            ApiError::QuotaExceeded { retry_after_s, .. }
            | ApiError::TooManyRequests { retry_after_s, .. } => Some(*retry_after_s),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(s) = retry_after.and_then(|s| HeaderValue::from_str(&s.max(1).to_string()).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, s);
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn codes_are_unique_snake_case_and_documented() {
        let mut seen = BTreeSet::new();
        for c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "`{s}` is the code of two variants");
            assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "`{s}` is not snake_case"
            );
            assert!(!c.doc().is_empty(), "`{s}` has no documentation");
            assert!(
                c.status().is_client_error() || c.status().is_server_error(),
                "`{s}`: {} is not an error status",
                c.status()
            );
            if !c.scope().in_response() {
                assert_eq!(c.status(), StatusCode::BAD_REQUEST, "`{s}`");
            }
        }
    }

    #[test]
    fn an_error_answers_its_codes_status_and_string() {
        let r = ApiError::bad_request(ErrorCode::InvalidLimit, "no").into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = ApiError::Unavailable {
            code: ErrorCode::BillingNotConfigured,
            message: "no".into(),
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let r = ApiError::TooManyRequests {
            message: "slow down".into(),
            retry_after_s: 3,
        };
        assert_eq!(r.code().as_str(), "rate_limited");
        assert_eq!(
            serde_json::to_value(ErrorDetail {
                code: ErrorCode::InvalidBody,
                message: "m".into()
            })
            .unwrap(),
            serde_json::json!({"code": "invalid_body", "message": "m"})
        );
    }

    /// docs/API-ERRORS.md holds the tables the enum gives, between its two markers, so the
    /// documentation cannot drift from the codes. `LLMTRACK_WRITE_DOCS=1` rewrites them.
    #[test]
    fn the_docs_list_every_code() {
        const BEGIN: &str = "<!-- BEGIN error codes: made by shared/src/error.rs -->\n";
        const END: &str = "<!-- END error codes -->";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/API-ERRORS.md");
        let text = std::fs::read_to_string(path).expect("docs/API-ERRORS.md");
        let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END)) else {
            panic!("docs/API-ERRORS.md has lost its markers");
        };
        let written = &text[start + BEGIN.len()..end];
        let expected = markdown_tables();
        if written != expected {
            if std::env::var_os("LLMTRACK_WRITE_DOCS").is_some() {
                let new = format!("{}{expected}{}", &text[..start + BEGIN.len()], &text[end..]);
                std::fs::write(path, new).expect("writing docs/API-ERRORS.md");
            } else {
                panic!(
                    "docs/API-ERRORS.md does not list the codes of ErrorCode; rerun with LLMTRACK_WRITE_DOCS=1 to rewrite it:\n{expected}"
                );
            }
        }
    }
}
