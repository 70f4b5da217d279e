//! The usage event (brief, section 3): parsed at the edge into a validated, priced [`Event`].
//!
//! A batch is parsed one event at a time so one bad event is rejected with its index and field
//! while the rest are kept.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::ids;
use super::plan::Plan;
use super::pricing::PriceTable;
use super::privacy;

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
/// Upper bound on `cost_usd` for one call: catches cents-vs-dollars and overflow mistakes.
pub const MAX_COST_USD: f64 = 100_000.0;
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MetaValue {
    Bool(bool),
    Number(f64),
    String(String),
}

/// A validated, priced event, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The client's id, or one we made (`ev_…`) when it sent none.
    pub id: String,
    /// Present when the client sent an `id`: what makes a retry a duplicate.
    pub idempotency_key: Option<String>,
    pub ts_ms: i64,
    pub provider: String,
    pub model: String,
    pub feature: Option<String>,
    pub user_id: Option<String>,
    /// The source label of the API key that sent it.
    pub source: String,
    pub tokens: Tokens,
    /// Picodollars; None when the cost is unknown (unpriced).
    pub cost_pico: Option<i64>,
    pub latency_ms: Option<f64>,
    pub status: Status,
    pub error_type: Option<String>,
    pub metadata: Vec<(String, MetaValue)>,
    /// When the store may delete it: its time plus the plan's history window.
    pub expires_ms: i64,
}

impl Event {
    /// Idempotency: a client `id` sent with a `timestamp` is identified by both (a retry resends
    /// the same event); an `id` without a timestamp by the id alone.
    fn idempotency_key_for(id: &str, timestamp: Option<i64>) -> String {
        match timestamp {
            Some(ts) => format!("{id}@{ts}"),
            None => id.to_owned(),
        }
    }

    /// Whether the client left the timestamp out (the key is then the id alone).
    pub fn idempotent_without_timestamp(&self) -> bool {
        self.idempotency_key.as_deref() == Some(self.id.as_str())
    }
}

/// Why one event was refused: which field, a stable code, and a message for people.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Rejection {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl Rejection {
    fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Rejection {
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
}

/// A metadata field that was dropped by the privacy guard.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Redaction {
    pub field: String,
    pub reason: &'static str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventIn<'a> {
    #[serde(borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, deserialize_with = "timestamp")]
    timestamp: Option<i64>,
    #[serde(borrow)]
    provider: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    model: std::borrow::Cow<'a, str>,
    feature: Option<String>,
    user_id: Option<String>,
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cached_input_tokens: u64,
    #[serde(default)]
    cache_write_tokens: u64,
    #[serde(default)]
    reasoning_tokens: u64,
    cost_usd: Option<f64>,
    latency_ms: Option<f64>,
    status: Option<Status>,
    error_type: Option<String>,
    metadata: Option<HashMap<String, serde_json::Value>>,
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
    let input: EventIn = match serde_json::from_str(raw.get()) {
        Ok(input) => input,
        Err(_) => return Err(explain_parse_error(raw)),
    };

    let id = match input.id {
        Some(id) => {
            text(&id, "id", MAX_ID_CHARS)?;
            Some(id.into_owned())
        }
        None => None,
    };
    text(&input.provider, "provider", MAX_NAME_CHARS)?;
    text(&input.model, "model", MAX_NAME_CHARS)?;
    let feature = optional_text(input.feature, "feature", MAX_NAME_CHARS)?;
    let user_id = optional_text(input.user_id, "user_id", MAX_USER_ID_CHARS)?;
    let error_type = optional_text(input.error_type, "error_type", MAX_NAME_CHARS)?;

    let tokens = Tokens {
        input: input.input_tokens,
        output: input.output_tokens,
        cached_input: input.cached_input_tokens,
        cache_write: input.cache_write_tokens,
        reasoning: input.reasoning_tokens,
    };
    if tokens.cached_input.saturating_add(tokens.cache_write) > tokens.input {
        return Err(Rejection::new(
            "cached_input_tokens",
            "subset_exceeds_total",
            format!(
                "cached_input_tokens ({}) + cache_write_tokens ({}) exceed input_tokens ({}); input_tokens must include cached and cache-write tokens",
                tokens.cached_input, tokens.cache_write, tokens.input
            ),
        ));
    }
    if tokens.reasoning > tokens.output {
        return Err(Rejection::new(
            "reasoning_tokens",
            "subset_exceeds_total",
            format!(
                "reasoning_tokens ({}) exceed output_tokens ({}); output_tokens must include reasoning tokens",
                tokens.reasoning, tokens.output
            ),
        ));
    }

    let ts_ms = input.timestamp.unwrap_or(ctx.now_ms);
    if ts_ms > ctx.now_ms + MAX_FUTURE_MS {
        return Err(Rejection::new(
            "timestamp",
            "timestamp_in_future",
            "timestamp is more than 5 minutes in the future",
        ));
    }
    let history_ms = ctx.plan.history_ms();
    if ts_ms < ctx.now_ms - history_ms {
        return Err(Rejection::new(
            "timestamp",
            "timestamp_too_old",
            format!(
                "timestamp is older than the {} plan's history window of {} days",
                ctx.plan.as_str(),
                ctx.plan.limits().history_days
            ),
        ));
    }

    let cost_pico = match input.cost_usd {
        Some(c) if !(0.0..=MAX_COST_USD).contains(&c) || !c.is_finite() => {
            return Err(Rejection::new(
                "cost_usd",
                "out_of_range",
                format!("cost_usd must be between 0 and {MAX_COST_USD}"),
            ));
        }
        Some(c) => Some((c * 1e12).round() as i64),
        None => ctx
            .prices
            .lookup(&input.model)
            .map(|p| p.cost_pico(&tokens)),
    };
    let latency_ms = match input.latency_ms {
        Some(l) if !(0.0..=MAX_LATENCY_MS).contains(&l) || !l.is_finite() => {
            return Err(Rejection::new(
                "latency_ms",
                "out_of_range",
                format!("latency_ms must be between 0 and {MAX_LATENCY_MS}"),
            ));
        }
        other => other,
    };

    let (metadata, redactions) = metadata(input.metadata)?;
    let idempotency_key = id
        .as_deref()
        .map(|id| Event::idempotency_key_for(id, input.timestamp));
    Ok((
        Event {
            id: id.unwrap_or_else(ids::event_id),
            idempotency_key,
            ts_ms,
            provider: input.provider.into_owned(),
            model: input.model.into_owned(),
            feature,
            user_id,
            source: ctx.source.to_owned(),
            tokens,
            cost_pico,
            latency_ms,
            status: input.status.unwrap_or_default(),
            error_type,
            metadata,
            expires_ms: ts_ms + history_ms,
        },
        redactions,
    ))
}

fn explain_parse_error(raw: &RawValue) -> Rejection {
    let mut de = serde_json::Deserializer::from_str(raw.get());
    let Err(e) = serde_path_to_error::deserialize::<_, EventIn>(&mut de) else {
        return Rejection::new("", "invalid_event", "the event could not be parsed");
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
    Rejection::new(field, "invalid_field", strip_position(&message))
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
            "empty",
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max {
        return Err(Rejection::new(
            field,
            "too_long",
            format!("{field} is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Rejection::new(
            field,
            "invalid_characters",
            format!("{field} contains control characters"),
        ));
    }
    Ok(())
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

fn metadata(input: Option<HashMap<String, serde_json::Value>>) -> Result<Metadata, Rejection> {
    let Some(map) = input else {
        return Ok((Vec::new(), Vec::new()));
    };
    if map.len() > MAX_METADATA_KEYS {
        return Err(Rejection::new(
            "metadata",
            "too_many_keys",
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
        let field = format!("metadata.{key}");
        if key.is_empty()
            || key.chars().count() > MAX_METADATA_KEY_CHARS
            || key.chars().any(char::is_control)
        {
            return Err(Rejection::new(
                field,
                "invalid_key",
                format!("metadata keys must be 1 to {MAX_METADATA_KEY_CHARS} printable characters"),
            ));
        }
        bytes += key.len();
        let value = match value {
            serde_json::Value::Bool(b) => MetaValue::Bool(b),
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(f) if f.is_finite() => MetaValue::Number(f),
                _ => {
                    return Err(Rejection::new(
                        field,
                        "invalid_value",
                        "metadata numbers must be finite",
                    ));
                }
            },
            serde_json::Value::String(s) => {
                if s.chars().count() > MAX_METADATA_VALUE_CHARS {
                    return Err(Rejection::new(
                        field,
                        "too_long",
                        format!(
                            "metadata values are at most {MAX_METADATA_VALUE_CHARS} characters"
                        ),
                    ));
                }
                if let Some(finding) = privacy::scan(&s) {
                    redactions.push(Redaction {
                        field,
                        reason: finding.describe(),
                    });
                    continue;
                }
                bytes += s.len();
                MetaValue::String(s)
            }
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                return Err(Rejection::new(
                    field,
                    "nested_metadata",
                    "metadata must be flat: values are strings, numbers or booleans",
                ));
            }
            serde_json::Value::Null => {
                return Err(Rejection::new(
                    field,
                    "invalid_value",
                    "metadata values must not be null; leave the key out instead",
                ));
            }
        };
        out.push((key, value));
    }
    if bytes > MAX_METADATA_BYTES {
        return Err(Rejection::new(
            "metadata",
            "too_large",
            format!(
                "metadata keys and values add up to {bytes} bytes; at most {MAX_METADATA_BYTES} are allowed"
            ),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, redactions))
}
