//! The ingest function: `POST /v1/events`, and the same events as OpenTelemetry spans (`otlp`)
//! and LiteLLM logger payloads (`litellm`). Parses and validates each event on its own, prices
//! it, and hands the valid ones to the store, which counts each exactly once and updates rollups.

use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llmtrack_shared::auth;
use llmtrack_shared::domain::apikey::{ApiKey, Scope};
use llmtrack_shared::domain::event::{self, Context, MAX_BODY_BYTES, Redaction, Rejection};
use llmtrack_shared::domain::pricing::PriceTable;
use llmtrack_shared::domain::time::{month_of, next_month_start};
use llmtrack_shared::error::ErrorDetail;
use llmtrack_shared::ports::{DynClock, IngestOutcome, Quota, Stored, Workspace};
use llmtrack_shared::ratelimit::{self, DynLimits};
use llmtrack_shared::telemetry;
use llmtrack_shared::{ApiError, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod litellm;
pub mod otlp;

llmtrack_shared::store_ports! {
    /// What ingest may touch: keys (to authenticate), workspaces (plan and deletion mark), and
    /// the write path. Nothing else: it cannot read a billing record or purge a workspace.
    pub struct IngestPorts {
        keys: Keys,
        workspaces: Workspaces,
        ingest: Ingest,
    }
}

#[derive(Clone)]
pub struct IngestState {
    pub store: IngestPorts,
    pub clock: DynClock,
    pub prices: &'static PriceTable,
    /// Request rates per key and per client address.
    pub limits: DynLimits,
}

impl IngestState {
    /// The ingest key a request carries and its workspace, within the key's request rate.
    async fn sender(&self, headers: &HeaderMap) -> Result<(ApiKey, Workspace), ApiError> {
        let (key, workspace) = auth::api_key(
            self.store.keys.as_ref(),
            self.store.workspaces.as_ref(),
            &self.clock,
            headers,
            Scope::Ingest,
        )
        .await?;
        self.limits.caller(&format!("key:{}", key.id))?;
        Ok((key, workspace))
    }

    /// Runs `check` with what pricing needs to know of the workspace and the time (now, which
    /// it also returns).
    fn check<T>(
        &self,
        key: &ApiKey,
        workspace: &Workspace,
        check: impl FnOnce(&Context) -> T,
    ) -> (T, i64) {
        let now = self.clock.now_ms();
        let rules = workspace.prices.ready();
        let ctx = Context {
            now_ms: now,
            source: &key.source,
            plan: workspace.plan,
            prices: self.prices,
            custom: &rules,
        };
        (check(&ctx), now)
    }
}

fn routes() -> OpenApiRouter<IngestState> {
    OpenApiRouter::new()
        .routes(routes!(post_events))
        .routes(routes!(otlp::post_traces))
        .routes(routes!(post_litellm))
}

/// The ingest routes.
pub fn router(state: IngestState) -> OpenApiRouter {
    // The body limit is enforced in the handler so the 413 has our JSON error shape.
    let limits = state.limits.clone();
    llmtrack_shared::openapi::strict_query(routes())
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            limits,
            ratelimit::per_address,
        ))
        .with_state(state)
}

/// The ingest part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Stored and counted.
    Accepted,
    /// Already stored by an earlier request with the same `id`: not counted again.
    Duplicate,
    /// Not stored; `error` says why. Fix and resend this event only.
    Rejected,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventResult {
    /// Position of the event in the request (0 for a single event).
    pub index: usize,
    pub status: EventStatus,
    /// The event's id: the one sent, or the one LLMtrack assigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Rejection>,
    /// Metadata fields that were not stored because they looked like secrets or card numbers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub redacted: Vec<Redaction>,
    /// Set when the event is stored but its cost is unknown: no `cost_usd` or
    /// `provider_cost_usd` was sent and the price table has no price for its model. It is
    /// counted as unpriced, never as $0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpriced: Option<Unpriced>,
}

/// An event checked and priced, with what the privacy guard dropped; or why it was rejected.
pub type Checked = Result<(event::Event, Vec<Redaction>), Rejection>;

impl EventResult {
    /// Each checked event's result, in order, and the valid events to store.
    fn all(
        checked: impl IntoIterator<Item = Checked>,
        workspace: &Workspace,
        now: i64,
    ) -> (Vec<EventResult>, Vec<event::Event>) {
        let mut results = Vec::new();
        let mut valid = Vec::new();
        for (index, checked) in checked.into_iter().enumerate() {
            let (result, event) = EventResult::checked(index, checked, workspace.id.as_str(), now);
            results.push(result);
            valid.extend(event);
        }
        (results, valid)
    }

    /// The result of one checked event, and the event to store when it is valid. An event
    /// whose cost is unknown is logged once per model, workspace and hour.
    fn checked(
        index: usize,
        checked: Checked,
        workspace: &str,
        now: i64,
    ) -> (EventResult, Option<event::Event>) {
        match checked {
            Ok((e, redacted)) => {
                let unpriced = Unpriced::of(&e);
                if unpriced.is_some() {
                    telemetry::unpriced_model(workspace, &e.provider, &e.model, now);
                }
                let result = EventResult {
                    index,
                    status: EventStatus::Accepted,
                    id: Some(e.id.clone()),
                    error: None,
                    redacted,
                    unpriced,
                };
                (result, Some(e))
            }
            Err(rejection) => (
                EventResult {
                    index,
                    status: EventStatus::Rejected,
                    id: None,
                    error: Some(rejection),
                    redacted: Vec::new(),
                    unpriced: None,
                },
                None,
            ),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Unpriced {
    pub provider: String,
    pub model: String,
    pub message: String,
}

impl Unpriced {
    fn of(e: &event::Event) -> Option<Unpriced> {
        e.cost_pico.is_none().then(|| Unpriced {
            provider: e.provider.clone(),
            model: e.model.clone(),
            message: format!(
                "no price for model `{}` from provider `{}`: its cost is unknown (counted as unpriced, not $0); send cost_usd, or check the model name against the price table",
                e.model, e.provider
            ),
        })
    }
}

/// A 400 of `POST /v1/events`: a body that could not be read has only the error; a body whose
/// every event was rejected has each event's result too.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum IngestRefusal {
    Results(IngestResponse),
    Error(llmtrack_shared::error::ErrorBody),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResponse {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// Events stored whose cost is unknown (each one's result says which model).
    pub unpriced: usize,
    /// One entry per event, in request order.
    pub results: Vec<EventResult>,
    /// Present when nothing was stored: every event rejected (400), or the monthly quota used up
    /// (429; events already stored are still answered `duplicate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// Send one usage event, or a batch as `{"events": [...]}`.
///
/// Every event gets its own result. 200: all stored (or duplicates). 207: some rejected, the others
/// stored; resend only the rejected ones. 400: none stored. 429: the plan's monthly quota is used up.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "ingest",
    request_body(content = event::IngestBody, description = "One event object, or {\"events\": [event, ...]} with at most 1000 events; body at most 5 MiB", content_type = "application/json"),
    responses(
        (status = 200, description = "Every event stored or recognised as a duplicate", body = IngestResponse),
        (status = 207, description = "Some events rejected; the others stored", body = IngestResponse),
        (status = 400, description = "Malformed body (the error shape), or every event rejected (results with the error)", body = IngestRefusal),
        (status = 401, description = "Missing, malformed, unknown or deactivated API key", body = llmtrack_shared::error::ErrorBody),
        (status = 403, description = "The key's scope is not `ingest`", body = llmtrack_shared::error::ErrorBody),
        (status = 413, description = "Body larger than 5 MiB", body = llmtrack_shared::error::ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = llmtrack_shared::error::ErrorBody),
        (status = 429, description = "Monthly event quota used up (`quota_exceeded`: nothing new stored; events already stored are answered `duplicate`), or too many requests for the key or address (`rate_limited`, error shape); see Retry-After", body = IngestResponse),
    ),
    security(("api_key" = []))
)]
async fn post_events(
    State(s): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (key, workspace) = s.sender(&headers).await?;
    require_json(&headers)?;
    let bytes = read_body(body).await?;
    let raw = event::split_body(&bytes)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidBody, e.to_string()))?;
    ingest(&s, &key, &workspace, |ctx| {
        raw.iter().map(|r| event::validate(r, ctx)).collect()
    })
    .await
}

/// Receive LiteLLM's generic API logger payloads.
///
/// What a LiteLLM proxy (or the SDK) with `callbacks: ["generic_api"]` sends when
/// `GENERIC_LOGGER_ENDPOINT` points here and `GENERIC_LOGGER_HEADERS` carries
/// `Authorization=Bearer <ingest key>`: its `StandardLoggingPayload` for each call, as a JSON
/// array (the default), newline-delimited JSON, or one object. Each becomes an event
/// (docs/INGEST.md, "LiteLLM"); prompts and responses in the payload are ignored. Answers as
/// `POST /v1/events` does, one result per payload.
#[utoipa::path(
    post,
    path = "/v1/integrations/litellm",
    tag = "ingest",
    request_body(content = Vec<Object>, description = "LiteLLM StandardLoggingPayload objects: a JSON array, newline-delimited JSON, or one object; at most 1000, body at most 5 MiB", content_type = "application/json"),
    responses(
        (status = 200, description = "Every payload stored or recognised as a duplicate", body = IngestResponse),
        (status = 207, description = "Some payloads rejected; the others stored", body = IngestResponse),
        (status = 400, description = "Malformed body (the error shape), or every payload rejected (results with the error)", body = IngestRefusal),
        (status = 401, description = "Missing, malformed, unknown or deactivated API key", body = llmtrack_shared::error::ErrorBody),
        (status = 403, description = "The key's scope is not `ingest`", body = llmtrack_shared::error::ErrorBody),
        (status = 413, description = "Body larger than 5 MiB", body = llmtrack_shared::error::ErrorBody),
        (status = 415, description = "Content-Type is not application/json or application/x-ndjson", body = llmtrack_shared::error::ErrorBody),
        (status = 429, description = "Monthly event quota used up, or too many requests; see Retry-After", body = IngestResponse),
    ),
    security(("api_key" = []))
)]
async fn post_litellm(
    State(s): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (key, workspace) = s.sender(&headers).await?;
    if require_json(&headers).is_err() && !content_type_is(&headers, "application/x-ndjson") {
        return Err(ApiError::UnsupportedMediaType(
            "send `Content-Type: application/json` (or `application/x-ndjson`)".into(),
        ));
    }
    let bytes = read_body(body).await?;
    let raw = litellm::split(&bytes)
        .map_err(|message| ApiError::bad_request(ErrorCode::InvalidBody, message))?;
    ingest(&s, &key, &workspace, |ctx| {
        raw.iter()
            .map(|r| litellm::event(r).and_then(|input| event::check(input, ctx)))
            .collect()
    })
    .await
}

fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(expected))
}

/// Checks each event of a request with `check` (given the workspace's pricing context), stores
/// the valid ones and answers with each one's result: the tail of every JSON ingest route.
async fn ingest(
    s: &IngestState,
    key: &ApiKey,
    workspace: &Workspace,
    check: impl FnOnce(&Context) -> Vec<Checked>,
) -> Result<Response, ApiError> {
    let (checked, now) = s.check(key, workspace, check);
    let (mut results, mut valid) = EventResult::all(checked, workspace, now);

    if let Some(refusal) = store(s, workspace, &mut results, &mut valid, now).await? {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(IngestResponse::of(
                results,
                Some(ErrorDetail {
                    code: ErrorCode::QuotaExceeded,
                    message: refusal.message,
                }),
            )),
        )
            .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(refusal.retry_after_s),
        );
        return Ok(response);
    }

    let rejected = results
        .iter()
        .filter(|r| r.status == EventStatus::Rejected)
        .count();
    let (status, error) = if rejected == 0 {
        (StatusCode::OK, None)
    } else if rejected < results.len() {
        (StatusCode::MULTI_STATUS, None)
    } else {
        let message = match results.as_slice() {
            [only] => {
                let e = only
                    .error
                    .as_ref()
                    .map(|e| (e.field.as_str(), e.message.as_str()))
                    .unwrap_or_default();
                if e.0.is_empty() {
                    format!("the event was rejected: {}", e.1)
                } else {
                    format!("the event was rejected: {}: {}", e.0, e.1)
                }
            }
            _ => format!(
                "all {} events were rejected; `results` says why for each",
                results.len()
            ),
        };
        (
            StatusCode::BAD_REQUEST,
            Some(ErrorDetail {
                code: ErrorCode::InvalidEvent,
                message,
            }),
        )
    };
    let response = IngestResponse::of(results, error);
    tracing::info!(workspace = %workspace.id, accepted = response.accepted, duplicates = response.duplicates, rejected = response.rejected, "events ingested");
    Ok((status, Json(response)).into_response())
}

/// The monthly quota turned events away: nothing new was stored.
struct QuotaRefusal {
    message: String,
    retry_after_s: i64,
}

/// Tags and stores the valid events (`valid`, in the order of the `Accepted` entries of
/// `results`) and marks each result with what became of it: accepted, a duplicate, or refused
/// by the quota. Shared by the JSON and OpenTelemetry paths, so both count and refuse alike.
async fn store(
    s: &IngestState,
    workspace: &Workspace,
    results: &mut [EventResult],
    valid: &mut [event::Event],
    now: i64,
) -> Result<Option<QuotaRefusal>, ApiError> {
    if valid.is_empty() {
        return Ok(None);
    }
    llmtrack_shared::usecases::tag_events(
        s.store.workspaces.as_ref(),
        &workspace.id,
        &workspace.tags,
        valid,
    )
    .await?;
    let limit = workspace.plan.limits().events_per_month;
    let quota = Quota {
        month: month_of(now),
        limit,
    };
    let outcomes = match s.store.ingest.ingest(&workspace.id, valid, &quota).await? {
        IngestOutcome::Stored(outcomes) => outcomes,
        // A retry of events already acknowledged is answered as such whatever the quota, so
        // a client that lost an acknowledgement can confirm it.
        IngestOutcome::QuotaExceeded { stored, .. } if stored.iter().all(|s| *s) => {
            vec![Stored::Duplicate; valid.len()]
        }
        IngestOutcome::QuotaExceeded { used, stored } => {
            let reset = next_month_start(now);
            let message = format!(
                "the {} plan's limit of {limit} events per month is used up ({used} counted this month); it resets at {}. Upgrade the plan to send more.",
                workspace.plan.as_str(),
                reset.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
            let mut stored = stored.into_iter();
            for r in results
                .iter_mut()
                .filter(|r| r.status == EventStatus::Accepted)
            {
                if stored.next() == Some(true) {
                    r.status = EventStatus::Duplicate;
                } else {
                    r.status = EventStatus::Rejected;
                    r.unpriced = None;
                    r.error = Some(Rejection::new(
                        "",
                        ErrorCode::QuotaExceeded,
                        "not stored: the monthly event quota is used up",
                    ));
                }
            }
            let retry_after_s = ((reset.timestamp_millis() - now) / 1000).max(1);
            return Ok(Some(QuotaRefusal {
                message,
                retry_after_s,
            }));
        }
    };
    let mut outcomes = outcomes.into_iter();
    for r in results
        .iter_mut()
        .filter(|r| r.status == EventStatus::Accepted)
    {
        if outcomes.next() == Some(Stored::Duplicate) {
            r.status = EventStatus::Duplicate;
        }
    }
    Ok(None)
}

impl IngestResponse {
    fn of(results: Vec<EventResult>, error: Option<ErrorDetail>) -> IngestResponse {
        let count = |st: EventStatus| results.iter().filter(|r| r.status == st).count();
        IngestResponse {
            accepted: count(EventStatus::Accepted),
            duplicates: count(EventStatus::Duplicate),
            rejected: count(EventStatus::Rejected),
            unpriced: results
                .iter()
                .filter(|r| r.status != EventStatus::Rejected && r.unpriced.is_some())
                .count(),
            results,
            error,
        }
    }
}

/// The request body, at most [`MAX_BODY_BYTES`].
async fn read_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            if e.into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::PayloadTooLarge(format!(
                    "the body is larger than {MAX_BODY_BYTES} bytes; split the batch"
                ))
            } else {
                ApiError::bad_request(
                    ErrorCode::InvalidBody,
                    "the body could not be read to its end",
                )
            }
        })
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else if content_type.is_empty() {
        Err(ApiError::UnsupportedMediaType(
            "missing Content-Type: send `Content-Type: application/json`".into(),
        ))
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type `{content_type}` is not accepted: send `application/json`"
        )))
    }
}
