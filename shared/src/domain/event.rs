//! The usage event (brief, section 3): parsed at the edge into a validated, priced [`Event`].
//!
//! A batch is parsed one event at a time so one bad event is rejected with its index and field
//! while the rest are kept.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::ids;
use super::plan::Plan;
use super::pricing::custom::Rules;
use super::pricing::{PriceTable, ServiceTier};
use super::privacy;
use crate::error::ErrorCode;

/// Most events one request may carry.
pub const MAX_BATCH_EVENTS: usize = 1000;
/// Largest request body, in bytes (Lambda's synchronous payload limit is 6 MB).
pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// How far in the future a timestamp may be (clock skew allowance).
pub const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;
pub const MAX_ID_CHARS: usize = 128;
pub const MAX_NAME_CHARS: usize = 128;
pub const MAX_USER_ID_CHARS: usize = 256;
pub const MAX_METADATA_KEYS: usize = 16;
pub const MAX_METADATA_KEY_CHARS: usize = 64;
pub const MAX_METADATA_VALUE_CHARS: usize = 256;
/// Sum of all metadata keys and values, in bytes: keeps an event a single small store item.
pub const MAX_METADATA_BYTES: usize = 1024;
/// Upper bound on `cost_usd` for one call, and on the cost computed from its tokens: catches
/// cents-vs-dollars and overflow mistakes.
pub const MAX_COST_USD: f64 = 100_000.0;
const MAX_COST_PICO: i128 = 100_000 * 1_000_000_000_000;
/// Upper bound on each token count of one call: a thousand times the largest context window
/// offered today, and small enough that no sum of counts in a rollup can overflow.
pub const MAX_TOKENS: u64 = 1_000_000_000;
/// Upper bound on `latency_ms`: one day.
pub const MAX_LATENCY_MS: f64 = 86_400_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Success,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Error => "error",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "success" => Some(Status::Success),
            "error" => Some(Status::Error),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    pub reasoning: u64,
    /// The part of `cache_write` kept for an hour (priced above the default 5 minutes).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_1h: u64,
    /// Uncached audio and image parts of `input`, and audio and image parts of `output`: priced
    /// at their own rates where the provider has them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub audio_input: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub audio_output: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub image_input: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub image_output: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MetaValue {
    Bool(bool),
    Number(f64),
    String(String),
}

/// How a retry of an event is recognised. Kept as a kind, not a joined string, so no id can be
/// mistaken for another id and a timestamp (`{"id": "req@T"}` is not `{"id": "req", "timestamp": T}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dedup {
    /// No client id: the id was made by LLMtrack and the event is always new.
    #[default]
    None,
    /// A client id without a timestamp: the id alone identifies the event (a retry gets a new
    /// receive time).
    Id,
    /// A client id with a timestamp: both identify the event.
    IdAndTimestamp,
}

/// A validated, priced event, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredEvent")]
pub struct Event {
    /// The client's id, or one we made (`ev_…`) when it sent none.
    pub id: String,
    /// What makes a retry a duplicate.
    pub dedup: Dedup,
    pub ts_ms: i64,
    pub provider: String,
    /// The model as sent.
    pub model: String,
    /// The model's canonical id (the maker's, as priced: `gpt-4o` for `openai/gpt-4o` or
    /// `GPT-4o`), when it differs from `model`. Breakdowns by model group by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_canonical: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "is_standard")]
    pub service_tier: ServiceTier,
    pub feature: Option<String>,
    pub user_id: Option<String>,
    /// The source label of the API key that sent it.
    pub source: String,
    pub tokens: Tokens,
    /// Picodollars; None when the cost is unknown (unpriced).
    pub cost_pico: Option<i64>,
    /// How the cost was obtained (None: unpriced, or stored before this was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_source: Option<CostSource>,
    /// The price that priced it (`cost_source` `table`), or that would have (`client` or
    /// `provider`, beside `computed_cost_pico`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<PriceRef>,
    /// The cost computed from the tokens when the cost kept came from the client or the provider,
    /// so the two can be compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_cost_pico: Option<i64>,
    pub latency_ms: Option<f64>,
    pub status: Status,
    pub error_type: Option<String>,
    pub metadata: Vec<(String, MetaValue)>,
    /// Fields the privacy guard dropped, as reported to the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redactions: Vec<Redaction>,
    /// Its cost-allocation tags, by slot (`domain::tags`): each of the workspace's tag keys' value
    /// from the metadata when it was stored, `tags::OTHER` past the key's bound of values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(u8, String)>,
    /// When the store may delete it: its time plus the plan's history window.
    pub expires_ms: i64,
}

/// An event as stored, in this release's form or an earlier one's: stores written before
/// [`Dedup`] hold `idempotency_key` (`"{id}@{ts}"`, or the id alone when sent without a timestamp).
#[derive(Deserialize)]
struct StoredEvent {
    id: String,
    #[serde(default)]
    dedup: Option<Dedup>,
    #[serde(default)]
    idempotency_key: Option<String>,
    ts_ms: i64,
    provider: String,
    model: String,
    #[serde(default)]
    model_canonical: Option<Arc<str>>,
    #[serde(default)]
    service_tier: ServiceTier,
    feature: Option<String>,
    user_id: Option<String>,
    source: String,
    tokens: Tokens,
    cost_pico: Option<i64>,
    #[serde(default)]
    cost_source: Option<CostSource>,
    #[serde(default)]
    price: Option<PriceRef>,
    #[serde(default)]
    computed_cost_pico: Option<i64>,
    latency_ms: Option<f64>,
    status: Status,
    error_type: Option<String>,
    metadata: Vec<(String, MetaValue)>,
    #[serde(default)]
    redactions: Vec<Redaction>,
    #[serde(default)]
    tags: Vec<(u8, String)>,
    expires_ms: i64,
}

impl From<StoredEvent> for Event {
    fn from(s: StoredEvent) -> Event {
        let dedup = match (s.dedup, &s.idempotency_key) {
            (Some(d), _) => d,
            (None, None) => Dedup::None,
            (None, Some(key)) if *key == s.id => Dedup::Id,
            (None, Some(_)) => Dedup::IdAndTimestamp,
        };
        Event {
            id: s.id,
            dedup,
            ts_ms: s.ts_ms,
            provider: s.provider,
            model: s.model,
            model_canonical: s.model_canonical,
            service_tier: s.service_tier,
            feature: s.feature,
            user_id: s.user_id,
            source: s.source,
            tokens: s.tokens,
            cost_pico: s.cost_pico,
            cost_source: s.cost_source,
            price: s.price,
            computed_cost_pico: s.computed_cost_pico,
            latency_ms: s.latency_ms,
            status: s.status,
            error_type: s.error_type,
            metadata: s.metadata,
            redactions: s.redactions,
            tags: s.tags,
            expires_ms: s.expires_ms,
        }
    }
}

fn is_standard(tier: &ServiceTier) -> bool {
    *tier == ServiceTier::Standard
}

impl Event {
    /// The model id breakdowns group by: the canonical id, or the name as sent when the two are
    /// the same (or the event predates canonical ids).
    pub fn canonical_model(&self) -> &str {
        self.model_canonical.as_deref().unwrap_or(&self.model)
    }

    /// The store's idempotency key: `i:{id}` for an id sent alone, `t:{ts}:{id}` for an id sent
    /// with its timestamp, none for an id LLMtrack made. The tag and the timestamp (an integer,
    /// no `:`) come first, so the encoding is unambiguous whatever the id holds.
    pub fn idempotency_key(&self) -> Option<String> {
        match self.dedup {
            Dedup::None => None,
            Dedup::Id => Some(format!("i:{}", self.id)),
            Dedup::IdAndTimestamp => Some(format!("t:{}:{}", self.ts_ms, self.id)),
        }
    }

    /// Whether the client left the timestamp out (a retry is then found by the id alone).
    pub fn idempotent_without_timestamp(&self) -> bool {
        self.dedup == Dedup::Id
    }

    /// Whether its cost is the client's or the provider's, or may be: a cost stored before
    /// costs recorded their source.
    pub fn cost_was_sent(&self) -> bool {
        matches!(
            (self.cost_source, self.cost_pico),
            (Some(CostSource::Client | CostSource::Provider), _) | (None, Some(_))
        )
    }

    /// The event priced again with `prices` and the workspace's `custom` rules, as if it
    /// arrived now; None when nothing about its cost would change. A cost the client or the
    /// provider sent is theirs and stays, as does a cost stored before its source was recorded
    /// (it may have been sent). A cost now out of range stays too: ingest would have refused it.
    pub fn repriced(&self, prices: &PriceTable, custom: &Rules) -> Option<Event> {
        if self.cost_was_sent() {
            return None;
        }
        let now = costed(
            Call {
                provider: &self.provider,
                model: &self.model,
                service_tier: self.service_tier,
                tokens: &self.tokens,
                ts_ms: self.ts_ms,
            },
            None,
            None,
            prices,
            custom,
        )
        .ok()?;
        let was = Costed {
            cost_pico: self.cost_pico,
            cost_source: self.cost_source,
            price: self.price.clone(),
            computed_cost_pico: self.computed_cost_pico,
            model_canonical: self.model_canonical.clone(),
        };
        (now != was).then(|| Event {
            cost_pico: now.cost_pico,
            cost_source: now.cost_source,
            price: now.price,
            computed_cost_pico: now.computed_cost_pico,
            model_canonical: now.model_canonical,
            ..self.clone()
        })
    }
}

/// Why one event was refused: which field, a stable code, and a message for people.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Rejection {
    pub field: String,
    #[schema(value_type = crate::error::EventErrorCode)]
    pub code: ErrorCode,
    pub message: String,
}

impl Rejection {
    pub fn new(field: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Rejection {
        Rejection {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

/// A problem with the body as a whole: nothing in it is processed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is not valid JSON: {0}")]
    Malformed(String),
    #[error("the body must be one event object or {{\"events\": [ ... ]}}")]
    WrongShape,
    #[error("`events` is empty: send at least one event")]
    EmptyBatch,
    #[error("`events` has {0} events; at most {MAX_BATCH_EVENTS} are accepted per request")]
    TooManyEvents(usize),
}

/// One usage event as sent to `POST /v1/events`: the public contract (docs/INGEST.md), for the
/// OpenAPI document. `Submitted` below is what actually reads it, borrowing from the body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UsageEvent)]
#[allow(dead_code)]
pub struct EventSchema {
    /// The idempotency key: a retry with the same id (and timestamp, when sent) is never counted twice.
    #[schema(min_length = 1, max_length = 128)]
    id: Option<String>,
    /// RFC 3339 time or epoch milliseconds; default: when received. At most 5 minutes ahead,
    /// not older than the plan's history window.
    timestamp: Option<TimestampSchema>,
    /// `openai`, `anthropic`, `google`, `aws.bedrock`, ... (OpenTelemetry `gen_ai.provider.name`).
    #[schema(min_length = 1, max_length = 128)]
    provider: String,
    #[schema(min_length = 1, max_length = 128)]
    model: String,
    /// The product feature that made the call.
    #[schema(min_length = 1, max_length = 128)]
    feature: Option<String>,
    /// Your own pseudonymous end-user id.
    #[schema(min_length = 1, max_length = 256)]
    user_id: Option<String>,
    /// All input tokens, cached reads and cache writes included.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    input_tokens: Option<u64>,
    /// All output tokens, reasoning included.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    output_tokens: Option<u64>,
    /// Part of `input_tokens` read from the prompt cache.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    cached_input_tokens: Option<u64>,
    /// Part of `input_tokens` written to the prompt cache.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    cache_write_tokens: Option<u64>,
    /// Part of `output_tokens`.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    reasoning_tokens: Option<u64>,
    /// Part of `cache_write_tokens` written with a one-hour lifetime (Anthropic's
    /// `cache_creation.ephemeral_1h_input_tokens`).
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    cache_write_1h_tokens: Option<u64>,
    /// Uncached audio part of `input_tokens`.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    audio_input_tokens: Option<u64>,
    /// Audio part of `output_tokens`.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    audio_output_tokens: Option<u64>,
    /// Uncached image part of `input_tokens`.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    image_input_tokens: Option<u64>,
    /// Image part of `output_tokens`.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    image_output_tokens: Option<u64>,
    /// `standard` (default; `default`, `auto`, `on_demand` and `scale` mean the same), `batch`,
    /// `flex` or `priority`: which of the model's rates apply.
    service_tier: Option<String>,
    /// The call's cost as your own code computed it; kept as sent, and first in precedence.
    #[schema(minimum = 0, maximum = 100_000)]
    cost_usd: Option<f64>,
    /// The cost the provider reported for the call (OpenRouter's `usage.cost`); kept when no
    /// `cost_usd` is sent, with the cost computed from the price table beside it.
    #[schema(minimum = 0, maximum = 100_000)]
    provider_cost_usd: Option<f64>,
    #[schema(minimum = 0, maximum = 86_400_000)]
    latency_ms: Option<f64>,
    status: Option<Status>,
    /// `rate_limit`, `timeout`, ...
    #[schema(min_length = 1, max_length = 128)]
    error_type: Option<String>,
    /// Flat: at most 16 keys of 1 to 64 characters, string values of at most 256 characters,
    /// 1,024 bytes in all.
    metadata: Option<HashMap<String, MetaValue>>,
}

/// An RFC 3339 time or epoch milliseconds.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum TimestampSchema {
    #[schema(format = DateTime)]
    Rfc3339(String),
    EpochMs(i64),
}

/// The body of `POST /v1/events`: one event, or a batch of at most 1,000.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
// Never built: only its schema is used (the OpenAPI document), so its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum IngestBody {
    One(EventSchema),
    Batch(BatchSchema),
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BatchSchema {
    #[schema(min_items = 1, max_items = 1000)]
    events: Vec<EventSchema>,
}

/// Splits a body into its raw events without parsing them, so each can fail on its own.
/// One pass over a batch: each event is only delimited here and parsed by [`validate`].
pub fn split_body(body: &[u8]) -> Result<Vec<&RawValue>, BodyError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch<'a> {
        #[serde(borrow)]
        events: Vec<&'a RawValue>,
    }
    if let Ok(batch) = serde_json::from_slice::<Batch>(body) {
        return match batch.events.len() {
            0 => Err(BodyError::EmptyBatch),
            n if n > MAX_BATCH_EVENTS => Err(BodyError::TooManyEvents(n)),
            _ => Ok(batch.events),
        };
    }
    // Not a well-formed batch: either one event, or something to explain.
    let whole: &RawValue =
        serde_json::from_slice(body).map_err(|e| BodyError::Malformed(e.to_string()))?;
    if !whole.get().trim_start().starts_with('{') {
        return Err(BodyError::WrongShape);
    }
    #[derive(Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        events: Option<&'a RawValue>,
    }
    match serde_json::from_str::<Probe>(whole.get()) {
        Ok(Probe { events: Some(_) }) => Err(BodyError::WrongShape),
        _ => Ok(vec![whole]),
    }
}

/// What validation needs to know besides the event.
pub struct Context<'a> {
    pub now_ms: i64,
    pub source: &'a str,
    pub plan: Plan,
    pub prices: &'a PriceTable,
    /// The workspace's own prices, which come before the table's.
    pub custom: &'a Rules<'a>,
}

/// A field that was dropped by the privacy guard (the value itself is never kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Redaction {
    pub field: String,
    pub reason: String,
}

/// How an event's cost was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// Sent by the client as `cost_usd`.
    Client,
    /// Reported by the provider (for example OpenRouter's `usage.cost`), sent as
    /// `provider_cost_usd`.
    Provider,
    /// Computed from the token counts with one of the workspace's own prices (a rule's rates,
    /// or a discount off the table's price).
    WorkspacePrice,
    /// Computed from the token counts with the bundled price table.
    Table,
}

/// Which price-table entry and version priced an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PriceRef {
    /// The host whose entry it is (`openai`, `aws`, ...); absent in events priced before hosts.
    // Shared with the price table's entry: pricing an event allocates none of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub provider: Option<Arc<str>>,
    /// The entry's model id.
    #[schema(value_type = String)]
    pub model: Arc<str>,
    /// The version's first day (`YYYY-MM-DD`), or `initial` for the earliest prices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub version: Option<Arc<str>>,
    /// When the version's prices were last checked against their source.
    #[schema(value_type = String)]
    pub as_of: Arc<str>,
    /// The workspace price rule that priced it (`pr_…`): its rates replaced the table's, or its
    /// discount applied to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub rule: Option<Arc<str>>,
}

/// One event as submitted, before validation: read from the JSON contract by [`validate`], or
/// mapped from another form (an OpenTelemetry span) and checked by [`check`] the same way.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Submitted<'a> {
    #[serde(borrow)]
    pub id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, deserialize_with = "timestamp")]
    pub timestamp: Option<i64>,
    #[serde(borrow)]
    pub provider: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub model: std::borrow::Cow<'a, str>,
    pub feature: Option<String>,
    pub user_id: Option<String>,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
    #[serde(default)]
    pub cache_write_1h_tokens: u64,
    #[serde(default)]
    pub audio_input_tokens: u64,
    #[serde(default)]
    pub audio_output_tokens: u64,
    #[serde(default)]
    pub image_input_tokens: u64,
    #[serde(default)]
    pub image_output_tokens: u64,
    #[serde(borrow)]
    pub service_tier: Option<std::borrow::Cow<'a, str>>,
    pub cost_usd: Option<f64>,
    pub provider_cost_usd: Option<f64>,
    pub latency_ms: Option<f64>,
    pub status: Option<Status>,
    pub error_type: Option<String>,
    // A BTreeMap, not a HashMap: no hashing of each key, and stored in a stable (sorted) order.
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `timestamp`: RFC 3339 string or epoch milliseconds.
fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 string or epoch milliseconds")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Some(t.timestamp_millis()))
                .map_err(|e| E::custom(format!("`{s}` is not an RFC 3339 time ({e})")))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom("epoch milliseconds out of range"))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom("epoch milliseconds must be a whole number"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// Parses, validates and prices one raw event. Redactions are reported, never fatal.
pub fn validate(raw: &RawValue, ctx: &Context) -> Result<(Event, Vec<Redaction>), Rejection> {
    // The fast path parses plainly; only a failure is parsed again to find the field's path.
    match serde_json::from_str(raw.get()) {
        Ok(input) => check(input, ctx),
        Err(_) => Err(explain_parse_error(raw)),
    }
}

/// Validates and prices one submitted event, however it arrived. Redactions are reported,
/// never fatal.
pub fn check(input: Submitted, ctx: &Context) -> Result<(Event, Vec<Redaction>), Rejection> {
    let id = match input.id {
        Some(id) => {
            text(&id, "id", MAX_ID_CHARS)?;
            no_secret(&id, "id")?;
            Some(id.into_owned())
        }
        None => None,
    };
    text(&input.provider, "provider", MAX_NAME_CHARS)?;
    no_secret(&input.provider, "provider")?;
    text(&input.model, "model", MAX_NAME_CHARS)?;
    no_secret(&input.model, "model")?;
    let mut redactions = Vec::new();
    // Optional labels that look like secrets are dropped, not stored: the call is still counted.
    let mut guarded = |value: Option<String>, field: &'static str, max: usize| {
        let value = optional_text(value, field, max)?;
        Ok::<_, Rejection>(match value {
            Some(v) => match privacy::scan(&v) {
                Some(finding) => {
                    redactions.push(Redaction {
                        field: field.to_owned(),
                        reason: finding.describe().to_owned(),
                    });
                    None
                }
                None => Some(v),
            },
            None => None,
        })
    };
    let feature = guarded(input.feature, "feature", MAX_NAME_CHARS)?;
    let user_id = guarded(input.user_id, "user_id", MAX_USER_ID_CHARS)?;
    let error_type = guarded(input.error_type, "error_type", MAX_NAME_CHARS)?;

    for (field, n) in [
        ("input_tokens", input.input_tokens),
        ("output_tokens", input.output_tokens),
        ("cached_input_tokens", input.cached_input_tokens),
        ("cache_write_tokens", input.cache_write_tokens),
        ("reasoning_tokens", input.reasoning_tokens),
        ("cache_write_1h_tokens", input.cache_write_1h_tokens),
        ("audio_input_tokens", input.audio_input_tokens),
        ("audio_output_tokens", input.audio_output_tokens),
        ("image_input_tokens", input.image_input_tokens),
        ("image_output_tokens", input.image_output_tokens),
    ] {
        if n > MAX_TOKENS {
            return Err(Rejection::new(
                field,
                ErrorCode::OutOfRange,
                format!("{field} is {n}; at most {MAX_TOKENS} tokens are accepted per event"),
            ));
        }
    }
    let tokens = Tokens {
        input: input.input_tokens,
        output: input.output_tokens,
        cached_input: input.cached_input_tokens,
        cache_write: input.cache_write_tokens,
        reasoning: input.reasoning_tokens,
        cache_write_1h: input.cache_write_1h_tokens,
        audio_input: input.audio_input_tokens,
        audio_output: input.audio_output_tokens,
        image_input: input.image_input_tokens,
        image_output: input.image_output_tokens,
    };
    subsets_fit(&tokens)?;
    let service_tier = match input.service_tier.as_deref() {
        None => ServiceTier::Standard,
        Some(t) => ServiceTier::parse(t).ok_or_else(|| {
            Rejection::new(
                "service_tier",
                ErrorCode::InvalidEvent,
                format!(
                    "service_tier `{}` is not one of {}",
                    t.chars().take(32).collect::<String>(),
                    ServiceTier::ACCEPTED
                ),
            )
        })?,
    };

    let ts_ms = input.timestamp.unwrap_or(ctx.now_ms);
    if ts_ms > ctx.now_ms + MAX_FUTURE_MS {
        return Err(Rejection::new(
            "timestamp",
            ErrorCode::TimestampInFuture,
            "timestamp is more than 5 minutes in the future",
        ));
    }
    let history_ms = ctx.plan.history_ms();
    if ts_ms < ctx.now_ms - history_ms {
        return Err(Rejection::new(
            "timestamp",
            ErrorCode::TimestampTooOld,
            format!(
                "timestamp is older than the {} plan's history window of {} days",
                ctx.plan.as_str(),
                ctx.plan.limits().history_days
            ),
        ));
    }

    // Precedence (brief, section 7): the client's cost, then the provider's, then the table's.
    let sent = |value: Option<f64>, field: &'static str| match value {
        Some(c) if !(0.0..=MAX_COST_USD).contains(&c) || !c.is_finite() => Err(Rejection::new(
            field,
            ErrorCode::OutOfRange,
            format!("{field} must be between 0 and {MAX_COST_USD}"),
        )),
        Some(c) => Ok(Some((c * 1e12).round() as i64)),
        None => Ok(None),
    };
    let client_cost = sent(input.cost_usd, "cost_usd")?;
    let provider_cost = sent(input.provider_cost_usd, "provider_cost_usd")?;
    let Costed {
        cost_pico,
        cost_source,
        price,
        computed_cost_pico,
        model_canonical,
    } = costed(
        Call {
            provider: &input.provider,
            model: &input.model,
            service_tier,
            tokens: &tokens,
            ts_ms,
        },
        client_cost,
        provider_cost,
        ctx.prices,
        ctx.custom,
    )?;
    let latency_ms = match input.latency_ms {
        Some(l) if !(0.0..=MAX_LATENCY_MS).contains(&l) || !l.is_finite() => {
            return Err(Rejection::new(
                "latency_ms",
                ErrorCode::OutOfRange,
                format!("latency_ms must be between 0 and {MAX_LATENCY_MS}"),
            ));
        }
        other => other,
    };

    let (metadata, more) = metadata(input.metadata)?;
    redactions.extend(more);
    let dedup = match (&id, input.timestamp) {
        (None, _) => Dedup::None,
        (Some(_), None) => Dedup::Id,
        (Some(_), Some(_)) => Dedup::IdAndTimestamp,
    };
    Ok((
        Event {
            id: id.unwrap_or_else(|| ids::event_id(ctx.now_ms)),
            dedup,
            ts_ms,
            provider: input.provider.into_owned(),
            model: input.model.into_owned(),
            model_canonical,
            service_tier,
            feature,
            user_id,
            source: ctx.source.to_owned(),
            tokens,
            cost_pico,
            cost_source,
            price,
            computed_cost_pico,
            latency_ms,
            status: input.status.unwrap_or_default(),
            error_type,
            metadata,
            redactions: redactions.clone(),
            tags: Vec::new(),
            expires_ms: ts_ms + history_ms,
        },
        redactions,
    ))
}

/// What an event's cost depends on, besides the prices.
struct Call<'a> {
    provider: &'a str,
    model: &'a str,
    service_tier: ServiceTier,
    tokens: &'a Tokens,
    ts_ms: i64,
}

/// How an event is priced: its cost and where it came from, the price used, and the canonical
/// model it was priced as.
#[derive(Debug, PartialEq)]
struct Costed {
    cost_pico: Option<i64>,
    cost_source: Option<CostSource>,
    price: Option<PriceRef>,
    computed_cost_pico: Option<i64>,
    model_canonical: Option<Arc<str>>,
}

/// Prices a call (brief, section 7): the client's cost, then the provider's, then a workspace
/// rule, then the table. Shared by ingest and repricing, so a repriced event is priced exactly
/// as it would be if it arrived now.
fn costed(
    call: Call,
    client_cost: Option<i64>,
    provider_cost: Option<i64>,
    prices: &PriceTable,
    custom: &Rules,
) -> Result<Costed, Rejection> {
    let Call {
        provider,
        model,
        service_tier,
        tokens,
        ts_ms,
    } = call;
    let priced = prices.price(provider, model, ts_ms);
    let table = priced.map(|p| p.version.pricing(service_tier));
    let rule = custom.rule_for(
        provider,
        model,
        priced.map(|p| &*p.model.canonical),
        table.is_some(),
        ts_ms,
    );
    let computed = computed_cost(
        |t| match rule {
            Some(r) => r.cost_pico(service_tier, t, table),
            None => table.map(|p| p.cost_pico(t)),
        },
        tokens,
        client_cost.or(provider_cost).is_none(),
    )?;
    let computed_source = if rule.is_some() {
        CostSource::WorkspacePrice
    } else {
        CostSource::Table
    };
    let (cost_pico, cost_source, computed_cost_pico) = match (client_cost, provider_cost, computed)
    {
        (Some(c), _, computed) => (Some(c), Some(CostSource::Client), computed),
        (None, Some(c), computed) => (Some(c), Some(CostSource::Provider), computed),
        (None, None, Some(c)) => (Some(c), Some(computed_source), None),
        (None, None, None) => (None, None, None),
    };
    let price = match (priced, rule) {
        (Some(p), rule) => Some(PriceRef {
            provider: Some(p.model.provider.clone()),
            model: p.model.model.clone(),
            version: Some(p.version.id_shared()),
            as_of: p.version.checked.clone(),
            rule: rule.map(|r| r.id.clone()),
        }),
        // A model only the workspace prices: the rule is the whole reference.
        (None, Some(r)) => Some(PriceRef {
            provider: None,
            model: model.trim().to_ascii_lowercase().into(),
            version: r.rule.effective_from.as_deref().map(Arc::from),
            as_of: Arc::from(r.rule.updated_at.get(..10).unwrap_or(&r.rule.updated_at)),
            rule: Some(r.id.clone()),
        }),
        (None, None) => None,
    };
    let model_canonical = match priced {
        Some(p) if *p.model.canonical != *model => Some(p.model.canonical.clone()),
        Some(_) => None,
        // Unpriced: still one row whatever the case or spacing it is sent with.
        None => {
            let sent = model.trim();
            let folded = sent.bytes().any(|b| b.is_ascii_uppercase()) || sent.len() != model.len();
            folded.then(|| sent.to_ascii_lowercase().into())
        }
    };
    Ok(Costed {
        cost_pico,
        cost_source,
        price,
        computed_cost_pico,
        model_canonical,
    })
}

/// Each part of a token count is within its whole.
fn subsets_fit(t: &Tokens) -> Result<(), Rejection> {
    // Bounded above, so these sums cannot overflow.
    if t.cached_input + t.cache_write + t.audio_input + t.image_input > t.input {
        let field = if t.audio_input + t.image_input == 0 {
            "cached_input_tokens"
        } else if t.image_input == 0 {
            "audio_input_tokens"
        } else {
            "image_input_tokens"
        };
        return Err(Rejection::new(
            field,
            ErrorCode::SubsetExceedsTotal,
            format!(
                "cached_input_tokens ({}) + cache_write_tokens ({}) + audio_input_tokens ({}) + image_input_tokens ({}) exceed input_tokens ({}); input_tokens must include each of them",
                t.cached_input, t.cache_write, t.audio_input, t.image_input, t.input
            ),
        ));
    }
    if t.cache_write_1h > t.cache_write {
        return Err(Rejection::new(
            "cache_write_1h_tokens",
            ErrorCode::SubsetExceedsTotal,
            format!(
                "cache_write_1h_tokens ({}) exceed cache_write_tokens ({}); cache_write_tokens must include the one-hour writes",
                t.cache_write_1h, t.cache_write
            ),
        ));
    }
    if t.reasoning + t.audio_output + t.image_output > t.output {
        let field = if t.audio_output + t.image_output == 0 {
            "reasoning_tokens"
        } else if t.image_output == 0 {
            "audio_output_tokens"
        } else {
            "image_output_tokens"
        };
        return Err(Rejection::new(
            field,
            ErrorCode::SubsetExceedsTotal,
            format!(
                "reasoning_tokens ({}) + audio_output_tokens ({}) + image_output_tokens ({}) exceed output_tokens ({}); output_tokens must include each of them",
                t.reasoning, t.audio_output, t.image_output, t.output
            ),
        ));
    }
    Ok(())
}

/// The cost of the call at its price, bounded. `kept` says the computed cost is the one the event
/// keeps: an out-of-range cost is then refused, naming the side of the call that made it; beside
/// a sent cost it is only dropped.
fn computed_cost(
    cost_of: impl Fn(&Tokens) -> Option<i128>,
    tokens: &Tokens,
    kept: bool,
) -> Result<Option<i64>, Rejection> {
    let Some(cost) = cost_of(tokens) else {
        return Ok(None);
    };
    if (0..=MAX_COST_PICO).contains(&cost) {
        // At most MAX_COST_PICO, so within i64.
        return Ok(Some(cost as i64));
    }
    if !kept {
        return Ok(None);
    }
    let output_side = cost_of(&Tokens {
        output: tokens.output,
        reasoning: tokens.reasoning,
        audio_output: tokens.audio_output,
        image_output: tokens.image_output,
        ..Tokens::default()
    })
    .unwrap_or(0);
    let field = if output_side * 2 > cost {
        "output_tokens"
    } else {
        "input_tokens"
    };
    Err(Rejection::new(
        field,
        ErrorCode::CostOutOfRange,
        format!(
            "the cost computed from the token counts (${:.2}) is above the per-event maximum of ${MAX_COST_USD}; check the token counts",
            cost as f64 / 1e12
        ),
    ))
}

fn explain_parse_error(raw: &RawValue) -> Rejection {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let Err(e) = serde_path_to_error::deserialize::<_, Submitted>(&mut de) else {
        return Rejection::new("", ErrorCode::InvalidEvent, "the event could not be parsed");
    };
    let field = e.path().to_string();
    let message = e.into_inner().to_string();
    // serde reports a missing field at the parent path; name the field itself.
    let field = match message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        Some(missing) => missing.to_owned(),
        None if field == "." => String::new(),
        None => field,
    };
    Rejection::new(field, ErrorCode::InvalidField, strip_position(&message))
}

/// serde_json appends " at line 1 column 42": positions inside one event only confuse.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn text(value: &str, field: &str, max: usize) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        return Err(Rejection::new(
            field,
            ErrorCode::Empty,
            format!("{field} must not be empty"),
        ));
    }
    // Most values are ASCII: their length is their character count, and the control check is a
    // byte scan.
    let (chars, control) = if value.is_ascii() {
        (value.len(), value.bytes().any(|b| b.is_ascii_control()))
    } else {
        (value.chars().count(), value.chars().any(char::is_control))
    };
    if chars > max {
        return Err(Rejection::new(
            field,
            ErrorCode::TooLong,
            format!("{field} is longer than {max} characters"),
        ));
    }
    if control {
        return Err(Rejection::new(
            field,
            ErrorCode::InvalidCharacters,
            format!("{field} contains control characters"),
        ));
    }
    Ok(())
}

/// Identifying fields that look like a secret refuse the event: they cannot be dropped.
fn no_secret(value: &str, field: &str) -> Result<(), Rejection> {
    match privacy::scan(value) {
        Some(finding) => Err(Rejection::new(
            field,
            ErrorCode::LooksLikeSecret,
            format!(
                "{field} looks like {}; it was not stored. Rotate that secret if it was real",
                finding.describe()
            ),
        )),
        None => Ok(()),
    }
}

fn optional_text(
    value: Option<String>,
    field: &str,
    max: usize,
) -> Result<Option<String>, Rejection> {
    match value {
        Some(v) => text(&v, field, max).map(|()| Some(v)),
        None => Ok(None),
    }
}

type Metadata = (Vec<(String, MetaValue)>, Vec<Redaction>);

fn metadata(
    input: Option<serde_json::Map<String, serde_json::Value>>,
) -> Result<Metadata, Rejection> {
    let Some(map) = input else {
        return Ok((Vec::new(), Vec::new()));
    };
    if map.len() > MAX_METADATA_KEYS {
        return Err(Rejection::new(
            "metadata",
            ErrorCode::TooManyKeys,
            format!(
                "metadata has {} keys; at most {MAX_METADATA_KEYS} are allowed",
                map.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(map.len());
    let mut redactions = Vec::new();
    let mut bytes = 0;
    for (key, value) in map {
        // Built only for a rejection or redaction: most keys need neither.
        let field = || format!("metadata.{key}");
        if key.is_empty()
            || key.chars().count() > MAX_METADATA_KEY_CHARS
            || key.chars().any(char::is_control)
        {
            return Err(Rejection::new(
                field(),
                ErrorCode::InvalidKey,
                format!("metadata keys must be 1 to {MAX_METADATA_KEY_CHARS} printable characters"),
            ));
        }
        if let Some(finding) = privacy::scan(&key) {
            // The key itself is the secret: the report names neither it nor its value.
            redactions.push(Redaction {
                field: "metadata".to_owned(),
                reason: finding.describe().to_owned(),
            });
            continue;
        }
        bytes += key.len();
        let value = match value {
            serde_json::Value::Bool(b) => MetaValue::Bool(b),
            serde_json::Value::Number(n) if privacy::scan_number(&n).is_some() => {
                redactions.push(Redaction {
                    field: field(),
                    reason: privacy::Finding::PaymentCard.describe().to_owned(),
                });
                continue;
            }
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(f) if f.is_finite() => MetaValue::Number(f),
                _ => {
                    return Err(Rejection::new(
                        field(),
                        ErrorCode::InvalidValue,
                        "metadata numbers must be finite",
                    ));
                }
            },
            serde_json::Value::String(s) => {
                if s.chars().count() > MAX_METADATA_VALUE_CHARS {
                    return Err(Rejection::new(
                        field(),
                        ErrorCode::TooLong,
                        format!(
                            "metadata values are at most {MAX_METADATA_VALUE_CHARS} characters"
                        ),
                    ));
                }
                if let Some(finding) = privacy::scan(&s) {
                    redactions.push(Redaction {
                        field: field(),
                        reason: finding.describe().to_owned(),
                    });
                    continue;
                }
                bytes += s.len();
                MetaValue::String(s)
            }
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                return Err(Rejection::new(
                    field(),
                    ErrorCode::NestedMetadata,
                    "metadata must be flat: values are strings, numbers or booleans",
                ));
            }
            serde_json::Value::Null => {
                return Err(Rejection::new(
                    field(),
                    ErrorCode::InvalidValue,
                    "metadata values must not be null; leave the key out instead",
                ));
            }
        };
        out.push((key, value));
    }
    if bytes > MAX_METADATA_BYTES {
        return Err(Rejection::new(
            "metadata",
            ErrorCode::TooLarge,
            format!(
                "metadata keys and values add up to {bytes} bytes; at most {MAX_METADATA_BYTES} are allowed"
            ),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, redactions))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::pricing::custom::{PriceRule, RulePrice, WorkspacePrices};

    /// An `openai` `gpt-4o` call of 1,000 input and 100 output tokens, priced by the table.
    pub(crate) fn sample_event() -> Event {
        check(serde_json::json!({"provider": "openai", "model": "gpt-4o",
            "timestamp": 1_799_000_000_000i64, "input_tokens": 1000, "output_tokens": 100}))
        .unwrap()
    }

    fn check(v: serde_json::Value) -> Result<Event, Rejection> {
        let ctx = Context {
            now_ms: 1_800_000_000_000,
            source: "production",
            plan: Plan::Pro,
            prices: PriceTable::bundled(),
            custom: crate::domain::pricing::custom::Rules::none(),
        };
        let raw = serde_json::value::to_raw_value(&v).unwrap();
        validate(&raw, &ctx).map(|(e, _)| e)
    }

    fn workspace(rules: &[(&str, &str, RulePrice)]) -> WorkspacePrices {
        WorkspacePrices {
            version: 1,
            rules: rules
                .iter()
                .map(|(id, model, price)| PriceRule {
                    id: (*id).into(),
                    provider: "*".into(),
                    model: (*model).into(),
                    effective_from: None,
                    effective_to: None,
                    price: price.clone(),
                    note: None,
                    updated_at: "2026-11-01T00:00:00Z".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn repricing_prices_an_event_as_ingest_would_now() {
        let table = PriceTable::bundled();
        let e = sample_event();
        assert_eq!(e.cost_source, Some(CostSource::Table));
        // The same prices: nothing to change.
        assert_eq!(e.repriced(table, Rules::none()), None);

        let prices = workspace(&[("pr_1", "gpt-4o", RulePrice::Discount { percent: 10.0 })]);
        let now = e.repriced(table, &prices.ready()).unwrap();
        assert_eq!(now.cost_source, Some(CostSource::WorkspacePrice));
        assert_eq!(now.cost_pico, Some(e.cost_pico.unwrap() / 10 * 9));
        assert_eq!(now.price.as_ref().unwrap().rule.as_deref(), Some("pr_1"));
        assert_eq!((now.id.as_str(), now.ts_ms), (e.id.as_str(), e.ts_ms));
        // Undone by repricing without the rule.
        assert_eq!(now.repriced(table, Rules::none()), Some(e.clone()));

        // A model the table does not know, priced by a rule added since.
        let own = check(serde_json::json!({"provider": "acme", "model": "Own-Model",
            "timestamp": 1_799_000_000_000i64, "input_tokens": 2_000_000}))
        .unwrap();
        assert_eq!(own.cost_pico, None);
        let rates: RulePrice = serde_json::from_value(
            serde_json::json!({"kind": "rates", "rates": {"input": 1.5, "output": 3}}),
        )
        .unwrap();
        let priced = own
            .repriced(table, &workspace(&[("pr_2", "own-model", rates)]).ready())
            .unwrap();
        assert_eq!(priced.cost_pico, Some(3_000_000_000_000));
        assert_eq!(priced.canonical_model(), "own-model");
    }

    #[test]
    fn repricing_leaves_sent_costs_alone() {
        let table = PriceTable::bundled();
        let discount = workspace(&[("pr_1", "*", RulePrice::Discount { percent: 50.0 })]);
        for sent in ["cost_usd", "provider_cost_usd"] {
            let mut body = serde_json::json!({"provider": "openai", "model": "gpt-4o",
                "timestamp": 1_799_000_000_000i64, "input_tokens": 1000});
            body[sent] = serde_json::json!(0.5);
            let e = check(body).unwrap();
            assert_eq!(e.repriced(table, &discount.ready()), None, "{sent}");
        }
        // Stored before costs carried their source: the cost may have been sent.
        let old = Event {
            cost_source: None,
            ..sample_event()
        };
        assert_eq!(old.repriced(table, &discount.ready()), None);
    }

    /// Found by the `event` fuzz target: serde_json's default float parser can land one ULP off,
    /// so a number was stored as another and drifted again when read back.
    #[test]
    fn floats_are_stored_and_read_back_exactly() {
        let text = r#"{"provider":"acme","model":"own-model","latency_ms":16325270.135517213494,
            "metadata":{"x":1.0715660391465826e-75}}"#;
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        let ctx = Context {
            now_ms: 1_800_000_000_000,
            source: "production",
            plan: Plan::Pro,
            prices: PriceTable::bundled(),
            custom: crate::domain::pricing::custom::Rules::none(),
        };
        let (e, _) = validate(&raw, &ctx).unwrap();
        // The digits as sent, more than an f64 holds: parsing must round them as Rust does.
        #[allow(clippy::excessive_precision)]
        let sent = 16325270.135517213494_f64;
        assert_eq!(e.latency_ms, Some(sent));
        assert_eq!(
            e.metadata,
            vec![(
                "x".to_owned(),
                MetaValue::Number(1.0715660391465826e-75_f64)
            )]
        );
        let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn token_counts_are_bounded_and_named() {
        for field in [
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        ] {
            for n in [MAX_TOKENS + 1, u64::MAX] {
                let mut v = serde_json::json!({"provider": "openai", "model": "gpt-4o"});
                v[field] = n.into();
                let r = check(v).unwrap_err();
                assert_eq!(
                    (r.field.as_str(), r.code),
                    (field, ErrorCode::OutOfRange),
                    "{n}"
                );
            }
        }
        let at_max = check(serde_json::json!({"provider": "acme", "model": "own-model",
            "input_tokens": MAX_TOKENS, "cached_input_tokens": MAX_TOKENS}))
        .unwrap();
        assert_eq!(at_max.tokens.input, MAX_TOKENS);
    }

    #[test]
    fn cached_and_cache_write_together_stay_within_input() {
        let r = check(serde_json::json!({"provider": "openai", "model": "gpt-4o",
            "input_tokens": MAX_TOKENS, "cached_input_tokens": MAX_TOKENS, "cache_write_tokens": 1}))
        .unwrap_err();
        assert_eq!(r.code, ErrorCode::SubsetExceedsTotal);
        assert_eq!(r.field, "cached_input_tokens");
    }

    #[test]
    fn a_computed_cost_above_the_event_maximum_is_refused() {
        // gpt-4o output at $10 per million: a billion tokens is $10,000, within the maximum.
        let e = check(serde_json::json!({"provider": "openai", "model": "gpt-4o",
            "output_tokens": MAX_TOKENS}))
        .unwrap();
        assert!(e.cost_pico.unwrap() > 0);
        // o1-pro output at $600 per million: a billion tokens is $600,000, past the maximum.
        let r = check(serde_json::json!({"provider": "openai", "model": "o1-pro",
            "output_tokens": MAX_TOKENS}))
        .unwrap_err();
        assert_eq!(
            (r.code, r.field.as_str()),
            (ErrorCode::CostOutOfRange, "output_tokens")
        );
        assert!(r.message.contains("$600000.00"), "{}", r.message);
    }

    #[test]
    fn an_id_and_a_timestamp_never_share_a_key_with_another_id() {
        let a =
            check(serde_json::json!({"id": "req@1799999990000", "provider": "p", "model": "m"}))
                .unwrap();
        let b = check(serde_json::json!({"id": "req", "timestamp": 1_799_999_990_000_i64, "provider": "p", "model": "m"}))
            .unwrap();
        let c = check(serde_json::json!({"provider": "p", "model": "m"})).unwrap();
        assert_ne!(a.idempotency_key(), b.idempotency_key());
        assert_eq!(a.idempotency_key().as_deref(), Some("i:req@1799999990000"));
        assert_eq!(b.idempotency_key().as_deref(), Some("t:1799999990000:req"));
        assert_eq!(c.idempotency_key(), None);
    }

    #[test]
    fn events_stored_by_an_earlier_release_read_back_with_their_identity() {
        let e = check(serde_json::json!({"id": "x", "provider": "p", "model": "m"})).unwrap();
        let mut legacy = serde_json::to_value(&e).unwrap();
        let body = legacy.as_object_mut().unwrap();
        body.remove("dedup");
        for (key, dedup) in [
            (serde_json::json!("x"), Dedup::Id),
            (
                serde_json::json!(format!("x@{}", e.ts_ms)),
                Dedup::IdAndTimestamp,
            ),
            (serde_json::Value::Null, Dedup::None),
        ] {
            body.insert("idempotency_key".into(), key);
            let back: Event =
                serde_json::from_value(serde_json::Value::Object(body.clone())).unwrap();
            assert_eq!(back.dedup, dedup);
        }
        let round: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(round, e);
    }
}

/// Generated inputs: the parser and validator never panic, name a field for what they refuse,
/// and keep every invariant of what they accept.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn ctx() -> Context<'static> {
        Context {
            now_ms: 1_800_000_000_000,
            source: "production",
            plan: Plan::Pro,
            prices: PriceTable::bundled(),
            custom: crate::domain::pricing::custom::Rules::none(),
        }
    }

    /// A JSON value of any shape, a few levels deep.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)),
            ".{0,40}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::hash_map("[a-z_]{1,20}", inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// An event object with each field present or not, of the right type or not.
    fn event_like() -> impl Strategy<Value = serde_json::Value> {
        let count = prop_oneof![
            (0u64..2_000_000).prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            json(),
        ];
        (
            prop::option::of(".{0,140}"),
            prop::option::of(prop_oneof![
                (1_700_000_000_000i64..1_800_000_400_000).prop_map(serde_json::Value::from),
                "[0-9T:.Z+-]{0,30}".prop_map(serde_json::Value::from),
                json(),
            ]),
            prop_oneof![Just("openai".to_owned()), ".{0,140}"],
            prop_oneof![
                Just("gpt-4o".to_owned()),
                Just("o1-pro".to_owned()),
                ".{0,140}"
            ],
            prop::collection::vec(prop::option::of(count), 5),
            prop::option::of(json()),
            prop::option::of(prop::collection::hash_map(".{1,70}", json(), 0..20)),
        )
            .prop_map(|(id, ts, provider, model, counts, cost, metadata)| {
                let mut e = serde_json::json!({"provider": provider, "model": model});
                if let Some(id) = id {
                    e["id"] = id.into();
                }
                if let Some(ts) = ts {
                    e["timestamp"] = ts;
                }
                for (name, c) in [
                    "input_tokens",
                    "output_tokens",
                    "cached_input_tokens",
                    "cache_write_tokens",
                    "reasoning_tokens",
                ]
                .iter()
                .zip(counts)
                {
                    if let Some(c) = c {
                        e[*name] = c;
                    }
                }
                if let Some(c) = cost {
                    e["cost_usd"] = c;
                }
                if let Some(m) = metadata {
                    e["metadata"] = serde_json::Value::Object(m.into_iter().collect());
                }
                e
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn whatever_the_event_the_validator_answers_and_keeps_its_invariants(v in event_like()) {
            let raw = serde_json::value::to_raw_value(&v).unwrap();
            match validate(&raw, &ctx()) {
                Ok((e, _)) => {
                    let t = e.tokens;
                    for n in [t.input, t.output, t.cached_input, t.cache_write, t.reasoning] {
                        prop_assert!(n <= MAX_TOKENS);
                    }
                    prop_assert!(t.cached_input + t.cache_write <= t.input);
                    prop_assert!(t.reasoning <= t.output);
                    if let Some(c) = e.cost_pico {
                        prop_assert!((0..=MAX_COST_PICO).contains(&i128::from(c)));
                    }
                    prop_assert!(e.ts_ms <= ctx().now_ms + MAX_FUTURE_MS);
                    prop_assert!(e.metadata.len() <= MAX_METADATA_KEYS);
                    // What is stored reads back as itself.
                    let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
                    prop_assert_eq!(back, e);
                }
                Err(r) => prop_assert!(r.code.scope().in_event() && !r.message.is_empty()),
            }
        }

        #[test]
        fn any_body_is_split_or_refused_without_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), v in json()) {
            let _ = split_body(&bytes);
            let _ = split_body(serde_json::to_string(&v).unwrap().as_bytes());
            let batch = serde_json::json!({"events": [v.clone(), v]});
            if let Ok(events) = split_body(serde_json::to_string(&batch).unwrap().as_bytes()) {
                prop_assert_eq!(events.len(), 2);
                for e in events {
                    let _ = validate(e, &ctx());
                }
            }
        }

        #[test]
        fn token_counts_past_the_bound_are_refused_by_name(field in 0usize..5, n in (MAX_TOKENS + 1)..=u64::MAX) {
            let name = ["input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens"][field];
            let mut v = serde_json::json!({"provider": "openai", "model": "gpt-4o"});
            v[name] = n.into();
            let raw = serde_json::value::to_raw_value(&v).unwrap();
            let r = validate(&raw, &ctx()).unwrap_err();
            prop_assert_eq!(r.field.as_str(), name);
        }

        #[test]
        fn distinct_identities_have_distinct_keys(a in ".{1,20}", b in ".{1,20}", ta in any::<i64>(), tb in any::<i64>(), da in 0u8..3, db in 0u8..3) {
            let event = |id: &str, ts: i64, d: u8| Event {
                id: id.to_owned(),
                dedup: [Dedup::None, Dedup::Id, Dedup::IdAndTimestamp][usize::from(d)],
                ts_ms: ts,
                provider: "p".into(), model: "m".into(), feature: None, user_id: None, source: "s".into(),
                model_canonical: None, service_tier: ServiceTier::Standard,
                tokens: Tokens::default(), cost_pico: None, cost_source: None, price: None, computed_cost_pico: None, latency_ms: None,
                status: Status::Success, error_type: None, metadata: vec![], redactions: vec![], tags: vec![], expires_ms: 0,
            };
            let (x, y) = (event(&a, ta, da), event(&b, tb, db));
            if let (Some(kx), Some(ky)) = (x.idempotency_key(), y.idempotency_key()) {
                let same = x.dedup == y.dedup && a == b && (x.dedup == Dedup::Id || ta == tb);
                prop_assert_eq!(kx == ky, same);
            }
        }
    }
}
