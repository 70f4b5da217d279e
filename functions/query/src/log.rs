//! The request log: raw events newest first, filtered, paged by an opaque cursor.

use crate::ReadErrors;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use llmtrack_shared::domain::analytics::Range;
use llmtrack_shared::domain::cursor::EventCursor;
use llmtrack_shared::domain::event::{CostSource, Event, MetaValue, PriceRef, Redaction};
use llmtrack_shared::domain::pricing::{PriceTable, Rates, ServiceTier};
use llmtrack_shared::domain::time::{HOUR_MS, rfc3339};
use llmtrack_shared::extract::Query;
use llmtrack_shared::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{QueryScope, QueryState, range_error, reader, zone};

pub const MAX_PAGE: usize = 500;
/// Events one request examines at most: a page whose filters match rarely comes back short,
/// with a cursor to continue, instead of scanning the whole history in one request.
pub const MAX_SCANNED_PER_PAGE: usize = 5_000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// Only events whose metadata has this `key:value` (the value compared as text).
    pub meta: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One event as stored.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LoggedEvent {
    pub id: String,
    pub timestamp: String,
    pub provider: String,
    /// The model as sent.
    pub model: String,
    /// The canonical id it was priced as (and is grouped by in breakdowns).
    pub model_canonical: String,
    pub service_tier: ServiceTier,
    pub feature: Option<String>,
    pub user_id: Option<String>,
    pub source: String,
    pub status: String,
    pub error_type: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cache_write_1h_tokens: u64,
    pub audio_input_tokens: u64,
    pub audio_output_tokens: u64,
    pub image_input_tokens: u64,
    pub image_output_tokens: u64,
    /// null when the cost is unknown (unpriced).
    pub cost_usd: Option<f64>,
    /// How the cost was obtained: `client` (sent as `cost_usd`), `provider` (sent as
    /// `provider_cost_usd`) or `table` (the bundled price table); null when unpriced or stored
    /// before this was recorded.
    pub cost_source: Option<CostSource>,
    /// The cost computed from the price table, beside a `client` or `provider` cost.
    pub computed_cost_usd: Option<f64>,
    /// The price version applied (or computed beside a sent cost).
    pub price: Option<AppliedPrice>,
    pub latency_ms: Option<f64>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Fields the privacy guard dropped at ingest (names and reasons; never the values).
    pub redacted: Vec<Redaction>,
}

/// The price version that priced an event (or that priced it beside a sent cost), with its
/// rates in USD per million tokens at the event's service tier.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppliedPrice {
    /// The host whose entry it is (`openai`, `aws`, `openrouter`, ...).
    pub provider: Option<String>,
    pub model: String,
    /// The version's first day, or `initial` for the earliest known prices.
    pub version: Option<String>,
    /// When the version's prices were last checked against their source.
    pub as_of: String,
    /// The table's rates for the version and tier; null when this release's table no longer
    /// holds that version (or the model is priced by a workspace rule alone).
    pub rates: Option<AppliedRates>,
    /// The workspace price rule (`pr_…`) that priced the event: its own rates replaced the
    /// table's, or its discount applied to them (GET /v1/workspaces/{id}/prices).
    pub rule: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppliedRates {
    /// The version's last day (exclusive), when a later version replaced it.
    pub effective_to: Option<String>,
    pub service_tier: ServiceTier,
    #[serde(flatten)]
    pub rates: UsdRates,
    /// Rates applied instead when the input is above `threshold` tokens.
    pub long_context: Option<LongContextRates>,
    pub source: String,
    /// Which source of the table gave the prices (`llmtrack`, `genai-prices 0.2.3`, ...).
    pub dataset: String,
}

/// Rates in USD per million tokens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsdRates {
    pub input: f64,
    pub cached_input: f64,
    pub cache_write: f64,
    pub cache_write_1h: f64,
    pub output: f64,
    pub reasoning: f64,
    pub audio_input: f64,
    pub audio_output: f64,
    pub image_input: f64,
    pub image_output: f64,
}

impl From<Rates> for UsdRates {
    fn from(r: Rates) -> Self {
        // Rates are picodollars per token, so micro-USD per million: /1e6 gives USD per million.
        let usd = |v: i64| v as f64 / 1e6;
        UsdRates {
            input: usd(r.input),
            cached_input: usd(r.cached_input),
            cache_write: usd(r.cache_write),
            cache_write_1h: usd(r.cache_write_1h),
            output: usd(r.output),
            reasoning: usd(r.reasoning),
            audio_input: usd(r.audio_input),
            audio_output: usd(r.audio_output),
            image_input: usd(r.image_input),
            image_output: usd(r.image_output),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LongContextRates {
    pub threshold: u64,
    #[serde(flatten)]
    pub rates: UsdRates,
}

fn applied(p: &PriceRef, tier: ServiceTier) -> AppliedPrice {
    let table = PriceTable::bundled();
    // Events priced before hosts were recorded name the model alone: its maker's entry.
    let entry = match &p.provider {
        Some(host) => table.entry(host, &p.model),
        None => table.lookup("", &p.model).filter(|m| m.model == p.model),
    };
    let version = entry.and_then(|m| match &p.version {
        Some(id) => m.version(id),
        None => Some(m.latest()),
    });
    let rates = version.filter(|v| v.checked == p.as_of).map(|v| {
        let pricing = v.pricing(tier);
        AppliedRates {
            effective_to: v.effective_to.clone(),
            service_tier: tier,
            rates: pricing.rates.into(),
            long_context: pricing.long_context.map(|(threshold, r)| LongContextRates {
                threshold,
                rates: r.into(),
            }),
            source: v.source.clone(),
            dataset: v.dataset.clone(),
        }
    });
    AppliedPrice {
        provider: p.provider.as_deref().map(str::to_owned),
        model: p.model.to_string(),
        version: p.version.as_deref().map(str::to_owned),
        as_of: p.as_of.to_string(),
        rates,
        rule: p.rule.as_deref().map(str::to_owned),
    }
}

impl From<&Event> for LoggedEvent {
    fn from(e: &Event) -> Self {
        LoggedEvent {
            id: e.id.clone(),
            timestamp: rfc3339(e.ts_ms),
            provider: e.provider.clone(),
            model: e.model.clone(),
            model_canonical: e.canonical_model().to_owned(),
            service_tier: e.service_tier,
            feature: e.feature.clone(),
            user_id: e.user_id.clone(),
            source: e.source.clone(),
            status: e.status.as_str().to_owned(),
            error_type: e.error_type.clone(),
            input_tokens: e.tokens.input,
            output_tokens: e.tokens.output,
            cached_input_tokens: e.tokens.cached_input,
            cache_write_tokens: e.tokens.cache_write,
            reasoning_tokens: e.tokens.reasoning,
            cache_write_1h_tokens: e.tokens.cache_write_1h,
            audio_input_tokens: e.tokens.audio_input,
            audio_output_tokens: e.tokens.audio_output,
            image_input_tokens: e.tokens.image_input,
            image_output_tokens: e.tokens.image_output,
            cost_usd: e.cost_pico.map(|c| c as f64 / 1e12),
            cost_source: e.cost_source,
            computed_cost_usd: e.computed_cost_pico.map(|c| c as f64 / 1e12),
            price: e.price.as_ref().map(|p| applied(p, e.service_tier)),
            latency_ms: e.latency_ms,
            metadata: e
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
                .collect(),
            redacted: e.redactions.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<LoggedEvent>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
    /// The range searched, after clamping to the plan's history window.
    pub from: String,
    pub to: String,
    pub clamped: bool,
}

/// A metadata filter `key:value`.
pub(crate) fn parse_meta(meta: Option<&str>) -> Result<Option<(String, String)>, ApiError> {
    meta.map(|m| {
        m.split_once(':')
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::InvalidFilter,
                    format!("`meta` must be `key:value`, got `{m}`"),
                )
            })
    })
    .transpose()
}

pub(crate) fn meta_matches(e: &Event, meta: &Option<(String, String)>) -> bool {
    let Some((key, want)) = meta else { return true };
    e.metadata.iter().any(|(k, v)| {
        k == key
            && match v {
                MetaValue::String(s) => s == want,
                MetaValue::Bool(b) => b.to_string() == *want,
                MetaValue::Number(n) => {
                    n.to_string() == *want || want.parse::<f64>().ok() == Some(*n)
                }
            }
    })
}

/// The visible millisecond range of a log or export request.
pub(crate) fn visible_range(
    s: &QueryState,
    ws: &llmtrack_shared::ports::Workspace,
    q: &QueryScope,
) -> Result<(i64, i64, bool), ApiError> {
    let now = s.clock.now_ms();
    let tz = zone(ws, q.tz.as_deref())?;
    let range = Range::resolve(q.from.as_deref(), q.to.as_deref(), now, tz, 24 * HOUR_MS)
        .map_err(range_error)?;
    let first = now - ws.plan.history_ms();
    let from = range.from_ms.max(first);
    Ok((from, range.to_ms.max(from), range.from_ms < first))
}

/// Raw events, newest first, filtered by time, status, provider, model, feature, source,
/// end-user and one metadata `key:value`.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "analytics",
    params(QueryScope, LogParams),
    responses(
        (status = 200, description = "A page of events", body = EventPage),
        ReadErrors,
    ),
    security(("api_key" = []), ("session" = []))
)]
pub async fn events(
    State(s): State<QueryState>,
    headers: HeaderMap,
    Query(q): Query<QueryScope>,
    Query(p): Query<LogParams>,
) -> Result<Json<EventPage>, ApiError> {
    let ws = reader(&s, &headers, q.workspace.as_deref()).await?;
    let limit = p.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidLimit,
            format!("`limit` must be between 1 and {MAX_PAGE}, got {limit}"),
        ));
    }
    let filters = q.filters()?;
    let meta = parse_meta(p.meta.as_deref())?;
    let mut before = p
        .cursor
        .as_deref()
        .map(|c| {
            EventCursor::decode(c, ws.id.as_str())
                .map_err(|e| ApiError::bad_request(ErrorCode::InvalidCursor, e.to_string()))
        })
        .transpose()?
        .map(|c| (c.t, c.i));
    let (from, to, clamped) = visible_range(&s, &ws, &q)?;
    let mut out = Vec::new();
    let mut scanned = 0;
    let mut exhausted = false;
    while out.len() < limit && scanned < MAX_SCANNED_PER_PAGE {
        let want = (MAX_SCANNED_PER_PAGE - scanned).min(if filters.is_empty() && meta.is_none() {
            limit - out.len()
        } else {
            500
        });
        let page = s
            .store
            .events
            .recent_events(&ws.id, from, to, before.clone(), want)
            .await?;
        scanned += page.len();
        if page.len() < want {
            exhausted = true;
        }
        for e in &page {
            before = Some((e.ts_ms, e.id.clone()));
            if filters.matches(e) && meta_matches(e, &meta) {
                out.push(LoggedEvent::from(e));
                if out.len() == limit {
                    break;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    // Nothing left once the store ran dry short of a full page.
    let done = exhausted && out.len() < limit;
    let next_cursor = before.filter(|_| !done).map(|(t, i)| {
        EventCursor {
            w: ws.id.as_str().to_owned(),
            t,
            i,
        }
        .encode()
    });
    Ok(Json(EventPage {
        events: out,
        next_cursor,
        from: rfc3339(from),
        to: rfc3339(to),
        clamped,
    }))
}
