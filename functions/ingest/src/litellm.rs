//! `POST /v1/integrations/litellm`: what LiteLLM's generic API logger sends (its
//! `StandardLoggingPayload`, one per call), so a LiteLLM proxy reports every call it routes with
//! configuration alone (`callbacks: ["generic_api"]`, docs/INGEST.md "LiteLLM").
//!
//! The logger sends a JSON array (its default), newline-delimited JSON, or one object a request.
//! Only usage is read: the payload's `messages` and `response` are never looked at or kept.

use std::borrow::Cow;

use llmtrack_shared::ErrorCode;
use llmtrack_shared::domain::event::{MAX_BATCH_EVENTS, Rejection, Status, Submitted};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The parts of LiteLLM's `StandardLoggingPayload` (litellm/types/utils.py) an event needs.
#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    custom_llm_provider: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    /// Epoch seconds, fractional.
    #[serde(rename = "startTime")]
    start_time: Option<f64>,
    #[serde(rename = "endTime")]
    end_time: Option<f64>,
    end_user: Option<String>,
    error_information: Option<ErrorInformation>,
    metadata: Option<Metadata>,
    request_tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct ErrorInformation {
    error_class: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    usage_object: Option<Usage>,
    /// What the caller put in the request's `metadata` (proxy requests).
    requester_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    spend_logs_metadata: Option<serde_json::Map<String, serde_json::Value>>,
    user_api_key_end_user_id: Option<String>,
}

/// The provider's usage as LiteLLM normalised it (OpenAI's shape, with Anthropic's cache fields).
#[derive(Deserialize)]
struct Usage {
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

/// The body's payloads, each still raw so one bad payload is rejected alone.
pub fn split(body: &[u8]) -> Result<Vec<&RawValue>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8 text".to_owned())?;
    let trimmed = text.trim_start();
    let raw: Vec<&RawValue> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| format!("the body is not a JSON array: {e}"))?
    } else {
        // One object, or one per line (the logger's `ndjson` format).
        trimmed
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", i + 1))
            })
            .collect::<Result<_, _>>()?
    };
    match raw.len() {
        0 => Err("the body holds no payload".into()),
        n if n > MAX_BATCH_EVENTS => Err(format!(
            "the body holds {n} payloads; at most {MAX_BATCH_EVENTS} are accepted per request (lower the logger's batch size)"
        )),
        _ => Ok(raw),
    }
}

/// One payload as an event to check.
pub fn event(raw: &RawValue) -> Result<Submitted<'_>, Rejection> {
    let p: Payload = serde_json::from_str(raw.get()).map_err(|e| {
        Rejection::new(
            "",
            ErrorCode::InvalidField,
            format!("not a LiteLLM StandardLoggingPayload: {e}"),
        )
    })?;
    let provider = p
        .custom_llm_provider
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Rejection::new(
                "custom_llm_provider",
                ErrorCode::InvalidField,
                "the payload has no custom_llm_provider",
            )
        })?;
    let model = p.model.filter(|s| !s.is_empty()).ok_or_else(|| {
        Rejection::new("model", ErrorCode::InvalidField, "the payload has no model")
    })?;
    let metadata = p.metadata;
    let usage = metadata.as_ref().and_then(|m| m.usage_object.as_ref());
    let cached = usage
        .and_then(|u| u.prompt_tokens_details.as_ref()?.cached_tokens)
        .or_else(|| usage?.cache_read_input_tokens)
        .unwrap_or(0);
    let cache_write = usage
        .and_then(|u| u.cache_creation_input_tokens)
        .unwrap_or(0);
    let reasoning = usage
        .and_then(|u| u.completion_tokens_details.as_ref()?.reasoning_tokens)
        .unwrap_or(0);
    let mut input = p.prompt_tokens.unwrap_or(0);
    // As for OpenTelemetry spans: cache counts that cannot be part of the input are beside it.
    if cached.saturating_add(cache_write) > input {
        input = input.saturating_add(cached).saturating_add(cache_write);
    }
    let failed = p.status.as_deref() == Some("failure");
    let label = |key: &str| {
        let m = metadata.as_ref()?;
        [&m.requester_metadata, &m.spend_logs_metadata]
            .into_iter()
            .flatten()
            .find_map(|map| map.get(key)?.as_str().map(str::to_owned))
    };
    let feature = label("feature").or_else(|| {
        p.request_tags
            .iter()
            .flatten()
            .find_map(|t| t.strip_prefix("feature:").map(str::to_owned))
    });
    let user_id = p
        .end_user
        .filter(|u| !u.is_empty())
        .or_else(|| metadata.as_ref()?.user_api_key_end_user_id.clone())
        .filter(|u| !u.is_empty())
        .or_else(|| label("user_id"));
    let seconds_to_ms = |s: f64| (s.is_finite() && s > 0.0).then(|| (s * 1000.0).round() as i64);
    let start = p.start_time.and_then(seconds_to_ms);
    let latency_ms = match (p.start_time, p.end_time) {
        (Some(a), Some(b)) if b >= a && a > 0.0 => Some(((b - a) * 1e6).round() / 1e3),
        _ => None,
    };
    Ok(Submitted {
        id: p.id.filter(|id| !id.is_empty()),
        timestamp: start,
        provider,
        model,
        feature,
        user_id,
        input_tokens: input,
        output_tokens: p.completion_tokens.unwrap_or(0),
        cached_input_tokens: cached,
        cache_write_tokens: cache_write,
        reasoning_tokens: reasoning,
        latency_ms,
        status: Some(if failed {
            Status::Error
        } else {
            Status::Success
        }),
        error_type: failed
            .then(|| {
                p.error_information
                    .and_then(|e| e.error_class)
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| "error".into())
            })
            .map(|c| c.chars().take(128).collect()),
        ..Submitted::default()
    })
}
