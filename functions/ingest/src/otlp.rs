//! OTLP/HTTP trace ingest: `POST /otlp/v1/traces`, so an OpenTelemetry exporter pointed at
//! `<base>/otlp` sends LLMtrack its GenAI spans with no code.
//!
//! Answers as the OTLP specification says (opentelemetry.io/docs/specs/otlp, "OTLP/HTTP"): the
//! response in the request's encoding (protobuf or JSON), a partial success naming how many
//! spans were rejected and why, and for a request that fails as a whole a `google.rpc.Status`
//! body with the HTTP status the exporter acts on (retry only 429, 502, 503 and 504). Each LLM
//! span is checked and stored exactly as a `POST /v1/events` event is (`crate::store`).

mod spans;
pub mod wire;

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llmtrack_shared::ApiError;
use llmtrack_shared::domain::event::{self, Context, MAX_BATCH_EVENTS, MAX_BODY_BYTES};
use llmtrack_shared::domain::spans::SpanLabels;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use wire::{ExportRequest, Span};

use crate::{Checked, EventResult, EventStatus, IngestState};

/// Largest body once decompressed: a gzip body may not expand past what an uncompressed one
/// may be, so a small body cannot become a large one in memory.
pub const MAX_DECODED_BYTES: usize = MAX_BODY_BYTES;
/// Most spans of any kind one export may carry (LLM spans are further held to
/// [`MAX_BATCH_EVENTS`]); the SDKs' default batch is 512.
pub const MAX_SPANS: usize = 10_000;
/// Rejections named in a partial success's message; the count covers them all.
const NAMED_REJECTIONS: usize = 5;

/// How a request's body is encoded, and so how the answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of every failed OTLP/HTTP response. Not part of the OTLP
/// messages the `opentelemetry-proto` crate generates, so declared here (its two fields we set;
/// `details` stays empty).
#[derive(Clone, PartialEq, Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// A request that fails as a whole: its HTTP status, the message, and the headers our API
/// errors carry (`Retry-After`, `WWW-Authenticate`).
pub struct Failure {
    status: StatusCode,
    message: String,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn answer(self, encoding: Encoding) -> Response {
        // google.rpc.Code for the HTTP status (the mapping of google/rpc/code.proto).
        let code = match self.status {
            StatusCode::UNAUTHORIZED => 16,
            StatusCode::FORBIDDEN => 7,
            StatusCode::TOO_MANY_REQUESTS => 8,
            StatusCode::SERVICE_UNAVAILABLE => 14,
            s if s.is_server_error() => 13,
            _ => 3,
        };
        let status = RpcStatus {
            code,
            message: self.message,
        };
        let body = match encoding {
            Encoding::Protobuf => status.encode_to_vec(),
            Encoding::Json => serde_json::to_vec(&status).unwrap_or_default(),
        };
        let mut response = (self.status, body).into_response();
        response.headers_mut().extend(self.headers);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(encoding.content_type()),
        );
        response
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        // Our own answer first (it logs unexpected errors and sets the headers), then its
        // status and message in the OTLP shape.
        let message = match &e {
            ApiError::Unexpected(_) => "an unexpected error occurred".to_owned(),
            other => other.to_string(),
        };
        let response = e.into_response();
        let headers = [header::RETRY_AFTER, header::WWW_AUTHENTICATE]
            .into_iter()
            .filter_map(|name| Some((name.clone(), response.headers().get(&name)?.clone())))
            .collect();
        Failure {
            status: response.status(),
            message,
            headers,
        }
    }
}

/// Receive OpenTelemetry trace data (OTLP/HTTP).
///
/// Point an OTLP exporter at `<base>/otlp` with `Authorization: Bearer <ingest key>`. Spans
/// that describe an LLM call become usage events (docs/INGEST.md, "OpenTelemetry"); other
/// spans are ignored. Protobuf (`application/x-protobuf`) or JSON (`application/json`),
/// gzip-compressed or not; the answer is in the request's encoding.
#[utoipa::path(
    post,
    path = "/otlp/v1/traces",
    tag = "ingest",
    request_body(content = Vec<u8>, description = "An OTLP ExportTraceServiceRequest, protobuf or JSON, at most 5 MiB (compressed or not)", content_type = "application/x-protobuf"),
    responses(
        (status = 200, description = "Accepted; `partial_success` counts the LLM spans rejected and says why (ExportTraceServiceResponse)"),
        (status = 400, description = "The body is not an ExportTraceServiceRequest, or carries too many spans (google.rpc.Status)"),
        (status = 401, description = "Missing, malformed, unknown or deactivated API key (google.rpc.Status)"),
        (status = 403, description = "The key's scope is not `ingest` (google.rpc.Status)"),
        (status = 413, description = "Body larger than 5 MiB, before or after decompression (google.rpc.Status)"),
        (status = 415, description = "Content-Type is not `application/x-protobuf` or `application/json`, or Content-Encoding not `gzip` (google.rpc.Status)"),
        (status = 429, description = "Monthly event quota used up, or too many requests; see Retry-After (google.rpc.Status)"),
    ),
    security(("api_key" = []))
)]
pub(crate) async fn post_traces(
    State(s): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // An unreadable Content-Type gets its error in protobuf, the default encoding.
    let encoding = encoding(&headers);
    match traces(&s, &headers, body, encoding).await {
        Ok(response) => response,
        Err(failure) => failure.answer(encoding.unwrap_or(Encoding::Protobuf)),
    }
}

async fn traces(
    s: &IngestState,
    headers: &HeaderMap,
    body: Body,
    encoding: Option<Encoding>,
) -> Result<Response, Failure> {
    let (key, workspace) = s.sender(headers).await?;
    let encoding = encoding.ok_or_else(|| {
        Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send `Content-Type: application/x-protobuf` or `application/json`",
        )
    })?;
    let raw = crate::read_body(body).await?;
    let bytes = decompress(headers, raw)?;
    let request = decode(bytes, encoding)?;

    let span_count: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    if span_count > MAX_SPANS {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the export has {span_count} spans; at most {MAX_SPANS} are accepted per request: lower the batch processor's max export batch size"
            ),
        ));
    }

    let (checked, now) = s.check(&key, &workspace, |ctx| {
        check_export(&request, &workspace.spans, ctx)
    });
    // Refused before any result is made (an unpriced model is logged with its result).
    if checked.len() > MAX_BATCH_EVENTS {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the export has {} LLM spans; at most {MAX_BATCH_EVENTS} are accepted per request: lower the batch processor's max export batch size",
                checked.len()
            ),
        ));
    }
    // Which span each result is, for the rejection message.
    let (named, checked): (Vec<&Span>, Vec<_>) = checked.into_iter().unzip();
    let (mut results, mut valid) = EventResult::all(checked, &workspace, now);

    if let Some(refusal) = crate::store(s, &workspace, &mut results, &mut valid, now).await? {
        let mut failure = Failure::new(StatusCode::TOO_MANY_REQUESTS, refusal.message);
        failure.headers.push((
            header::RETRY_AFTER,
            HeaderValue::from(refusal.retry_after_s),
        ));
        return Err(failure);
    }

    let rejected: Vec<_> = results
        .iter()
        .filter(|r| r.status == EventStatus::Rejected)
        .collect();
    let count = |st| results.iter().filter(|r| r.status == st).count();
    tracing::info!(workspace = %workspace.id, spans = span_count, accepted = count(EventStatus::Accepted), duplicates = count(EventStatus::Duplicate), rejected = rejected.len(), "spans ingested");
    let partial_success = (!rejected.is_empty()).then(|| ExportTracePartialSuccess {
        rejected_spans: rejected.len() as i64,
        error_message: rejection_message(&rejected, &named),
    });
    let answer = ExportTraceServiceResponse { partial_success };
    let body = match encoding {
        Encoding::Protobuf => answer.encode_to_vec(),
        Encoding::Json => {
            serde_json::to_vec(&answer).map_err(|e| ApiError::Unexpected(e.into()))?
        }
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response())
}

/// Each LLM span of an export with its checked, priced event, or why it cannot be counted, in
/// the order they came; spans that are not LLM calls are left out.
pub fn check_export<'r>(
    request: &'r ExportRequest,
    labels: &SpanLabels,
    ctx: &Context,
) -> Vec<(&'r Span, Checked)> {
    let mut out = Vec::new();
    for resource_spans in &request.resource_spans {
        let resource = resource_spans
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
            if let Some(submitted) = spans::event(span, resource, labels) {
                out.push((span, submitted.and_then(|input| event::check(input, ctx))));
            }
        }
    }
    out
}

/// The encoding a Content-Type names, if it is one OTLP/HTTP defines.
fn encoding(headers: &HeaderMap) -> Option<Encoding> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/x-protobuf")
        || essence.eq_ignore_ascii_case("application/protobuf")
    {
        Some(Encoding::Protobuf)
    } else if essence.eq_ignore_ascii_case("application/json") {
        Some(Encoding::Json)
    } else {
        None
    }
}

fn decompress(headers: &HeaderMap, raw: Bytes) -> Result<Bytes, Failure> {
    let coding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match coding.as_deref() {
        None | Some("") | Some("identity") => Ok(raw),
        Some("gzip") => {
            let mut out = Vec::with_capacity(raw.len().saturating_mul(4).min(MAX_DECODED_BYTES));
            flate2::read::GzDecoder::new(raw.as_ref())
                .take(MAX_DECODED_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    Failure::new(
                        StatusCode::BAD_REQUEST,
                        format!("the body is not valid gzip: {e}"),
                    )
                })?;
            if out.len() > MAX_DECODED_BYTES {
                return Err(Failure::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the body is larger than {MAX_DECODED_BYTES} bytes once decompressed; export smaller batches"
                    ),
                ));
            }
            Ok(out.into())
        }
        Some(other) => Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Encoding `{other}` is not accepted: send `gzip` or no compression"),
        )),
    }
}

/// The export, in the wire types ingest reads. OTLP/JSON is read with `opentelemetry-proto`'s
/// serde mapping and encoded to protobuf first: one decoding path for both encodings.
pub fn decode(bytes: Bytes, encoding: Encoding) -> Result<ExportRequest, Failure> {
    let bytes = match encoding {
        Encoding::Protobuf => bytes,
        Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(&bytes)
            .map_err(|e| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not an OTLP/JSON ExportTraceServiceRequest: {e}"),
                )
            })?
            .encode_to_vec()
            .into(),
    };
    ExportRequest::decode(bytes).map_err(|e| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not a protobuf ExportTraceServiceRequest: {e}"),
        )
    })
}

/// The partial success's message: how many LLM spans were rejected, and why for the first few,
/// each named by its span id and name.
fn rejection_message(rejected: &[&EventResult], spans: &[&Span]) -> String {
    let mut message = format!(
        "{} LLM span{} rejected",
        rejected.len(),
        if rejected.len() == 1 { "" } else { "s" }
    );
    for r in rejected.iter().take(NAMED_REJECTIONS) {
        let span = spans[r.index];
        let why = r
            .error
            .as_ref()
            .map(|e| {
                if e.field.is_empty() {
                    e.message.clone()
                } else {
                    format!("{}: {}", e.field, e.message)
                }
            })
            .unwrap_or_default();
        let id: String = span.span_id.iter().map(|b| format!("{b:02x}")).collect();
        message.push_str(&format!("; span {id} `{}`: {why}", span.name()));
    }
    if rejected.len() > NAMED_REJECTIONS {
        message.push_str(&format!("; and {} more", rejected.len() - NAMED_REJECTIONS));
    }
    message
}
