//! Which OpenTelemetry spans are LLM calls, and the usage event each one becomes.
//!
//! Three attribute vocabularies are read (docs/INGEST.md, "OpenTelemetry", has the tables with
//! their sources): the GenAI semantic conventions (`gen_ai.*`, current and older names),
//! OpenInference (`llm.*`) and the Vercel AI SDK (`ai.*`). Where a span carries several, the
//! GenAI name wins. Every attribute is read in one pass over the span's list.

use std::borrow::Cow;

use super::wire::{AnyValue, KeyValue, STATUS_ERROR, Span, Value};
use llmtrack_shared::ErrorCode;
use llmtrack_shared::domain::event::{Rejection, Submitted};
use llmtrack_shared::domain::pricing::ServiceTier;
use llmtrack_shared::domain::spans::SpanLabels;

/// GenAI operations that are one call to a model; agent and tool spans (`invoke_agent`,
/// `execute_tool`, ...) wrap such calls and would count them twice.
const MODEL_OPERATIONS: &[&str] = &["chat", "text_completion", "generate_content", "embeddings"];

/// A value found under several names: the lowest rank (the name listed first) wins.
struct Pick<T> {
    rank: u8,
    value: Option<T>,
}

impl<T> Default for Pick<T> {
    fn default() -> Self {
        Pick {
            rank: u8::MAX,
            value: None,
        }
    }
}

impl<T> Pick<T> {
    fn offer(&mut self, rank: u8, value: T) {
        if rank < self.rank {
            self.rank = rank;
            self.value = Some(value);
        }
    }
}

/// What one span's attributes say, gathered in one pass.
#[derive(Default)]
struct Seen<'a> {
    provider: Pick<&'a str>,
    model: Pick<&'a str>,
    input: Pick<&'a AnyValue>,
    output: Pick<&'a AnyValue>,
    cached: Pick<&'a AnyValue>,
    cache_write: Pick<&'a AnyValue>,
    reasoning: Pick<&'a AnyValue>,
    operation: Option<&'a str>,
    openinference_kind: Option<&'a str>,
    vercel_operation: Option<&'a str>,
    error_type: Option<&'a str>,
    response_id: Option<&'a str>,
    service_tier: Option<&'a str>,
}

impl<'a> Seen<'a> {
    fn read(attributes: &'a [KeyValue]) -> Seen<'a> {
        let mut s = Seen::default();
        for kv in attributes {
            let Some(value) = kv.value.as_ref() else {
                continue;
            };
            let text = || value.text();
            match kv.key.as_ref() {
                b"gen_ai.provider.name" => text().into_iter().for_each(|v| s.provider.offer(0, v)),
                b"gen_ai.system" => text().into_iter().for_each(|v| s.provider.offer(1, v)),
                b"llm.provider" => text().into_iter().for_each(|v| s.provider.offer(2, v)),
                b"llm.system" => text().into_iter().for_each(|v| s.provider.offer(3, v)),
                // The AI SDK names a provider with its API: `openai.chat`, `anthropic.messages`.
                b"ai.model.provider" => text()
                    .and_then(|v| v.split('.').next())
                    .into_iter()
                    .for_each(|v| s.provider.offer(4, v)),
                b"gen_ai.response.model" => text().into_iter().for_each(|v| s.model.offer(0, v)),
                b"gen_ai.request.model" => text().into_iter().for_each(|v| s.model.offer(1, v)),
                b"llm.model_name" => text().into_iter().for_each(|v| s.model.offer(2, v)),
                b"ai.response.model" => text().into_iter().for_each(|v| s.model.offer(3, v)),
                b"ai.model.id" => text().into_iter().for_each(|v| s.model.offer(4, v)),
                b"gen_ai.usage.input_tokens" => s.input.offer(0, value),
                b"gen_ai.usage.prompt_tokens" => s.input.offer(1, value),
                b"llm.token_count.prompt" => s.input.offer(2, value),
                b"ai.usage.inputTokens" => s.input.offer(3, value),
                b"ai.usage.promptTokens" => s.input.offer(4, value),
                b"gen_ai.usage.output_tokens" => s.output.offer(0, value),
                b"gen_ai.usage.completion_tokens" => s.output.offer(1, value),
                b"llm.token_count.completion" => s.output.offer(2, value),
                b"ai.usage.outputTokens" => s.output.offer(3, value),
                b"ai.usage.completionTokens" => s.output.offer(4, value),
                b"gen_ai.usage.cache_read.input_tokens" => s.cached.offer(0, value),
                b"gen_ai.usage.cache_read_input_tokens" => s.cached.offer(1, value),
                b"llm.token_count.prompt_details.cache_read" => s.cached.offer(2, value),
                b"ai.usage.cachedInputTokens" => s.cached.offer(3, value),
                b"gen_ai.usage.cache_creation.input_tokens" => s.cache_write.offer(0, value),
                b"gen_ai.usage.cache_creation_input_tokens" => s.cache_write.offer(1, value),
                b"llm.token_count.prompt_details.cache_write" => s.cache_write.offer(2, value),
                b"gen_ai.usage.reasoning.output_tokens" => s.reasoning.offer(0, value),
                b"llm.token_count.completion_details.reasoning" => s.reasoning.offer(1, value),
                b"ai.usage.reasoningTokens" => s.reasoning.offer(2, value),
                b"gen_ai.operation.name" => s.operation = text(),
                b"openinference.span.kind" => s.openinference_kind = text(),
                b"ai.operationId" => s.vercel_operation = text(),
                b"error.type" => s.error_type = text(),
                b"gen_ai.response.id" => s.response_id = text(),
                b"openai.response.service_tier" | b"gen_ai.openai.response.service_tier" => {
                    s.service_tier = text()
                }
                _ => {}
            }
        }
        s
    }

    /// Whether the span is one call to a model. Wrapping spans (an agent run, a chain, the AI
    /// SDK's `ai.generateText` around its `doGenerate` steps) carry the same usage summed and
    /// are left out, so a call is counted once.
    fn is_model_call(&self) -> bool {
        let wrapper = self.vercel_operation.is_some_and(|op| {
            !(op.ends_with(".doGenerate") || op.ends_with(".doStream") || op.ends_with(".doEmbed"))
        }) || self.openinference_kind.is_some_and(|kind| {
            !(kind.eq_ignore_ascii_case("LLM") || kind.eq_ignore_ascii_case("EMBEDDING"))
        }) || self
            .operation
            .is_some_and(|op| !MODEL_OPERATIONS.contains(&op));
        if wrapper {
            return false;
        }
        self.model.value.is_some() || self.input.value.is_some() || self.output.value.is_some()
    }

    fn has_usage(&self) -> bool {
        self.input.value.is_some()
            || self.output.value.is_some()
            || self.cached.value.is_some()
            || self.cache_write.value.is_some()
    }
}

/// The span's usage event, `None` for a span that is not an LLM call (ignored, not rejected),
/// or why an LLM call's span cannot be counted.
pub fn event<'a>(
    span: &'a Span,
    resource: &'a [KeyValue],
    labels: &SpanLabels,
) -> Option<Result<Submitted<'a>, Rejection>> {
    let seen = Seen::read(&span.attributes);
    if !seen.is_model_call() {
        return None;
    }
    Some(submitted(span, resource, labels, &seen))
}

fn submitted<'a>(
    span: &'a Span,
    resource: &'a [KeyValue],
    labels: &SpanLabels,
    seen: &Seen<'a>,
) -> Result<Submitted<'a>, Rejection> {
    let provider = seen.provider.value.ok_or_else(|| {
        Rejection::new(
            "gen_ai.provider.name",
            ErrorCode::InvalidField,
            "the span has no provider: set `gen_ai.provider.name` (or `gen_ai.system`, `llm.provider`)",
        )
    })?;
    let model = seen.model.value.ok_or_else(|| {
        Rejection::new(
            "gen_ai.request.model",
            ErrorCode::InvalidField,
            "the span has no model: set `gen_ai.response.model` or `gen_ai.request.model`",
        )
    })?;
    let failed =
        span.status.as_ref().is_some_and(|s| s.code == STATUS_ERROR) || seen.error_type.is_some();
    // A failed call may have used nothing; a successful one without usage cannot be counted.
    if !seen.has_usage() && !failed {
        return Err(Rejection::new(
            "gen_ai.usage.input_tokens",
            ErrorCode::InvalidField,
            "the span describes a model call but has no usage: set `gen_ai.usage.input_tokens` and `gen_ai.usage.output_tokens`",
        ));
    }
    let count = |pick: &Pick<&AnyValue>, field: &str| match pick.value {
        None => Ok(0),
        Some(v) => tokens(v).ok_or_else(|| {
            Rejection::new(
                field,
                ErrorCode::InvalidField,
                "a token count must be a whole number, at least 0",
            )
        }),
    };
    let mut input = count(&seen.input, "gen_ai.usage.input_tokens")?;
    let output = count(&seen.output, "gen_ai.usage.output_tokens")?;
    let cached = count(&seen.cached, "gen_ai.usage.cache_read.input_tokens")?;
    let cache_write = count(
        &seen.cache_write,
        "gen_ai.usage.cache_creation.input_tokens",
    )?;
    let reasoning = count(&seen.reasoning, "gen_ai.usage.reasoning.output_tokens")?;
    // The conventions count cache reads and writes inside the input tokens; instrumentations
    // that copy Anthropic's usage as it comes report them beside it. Counts that cannot be a
    // part of the input are taken as beside it.
    if cached.saturating_add(cache_write) > input {
        input = input.saturating_add(cached).saturating_add(cache_write);
    }

    let start_ms = i64::try_from(span.start_time_unix_nano / 1_000_000).ok();
    let latency_ms = (span.end_time_unix_nano >= span.start_time_unix_nano
        && span.start_time_unix_nano > 0)
        .then(|| (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6);

    let label = |keys: &[String]| {
        keys.iter()
            .find_map(|k| text_attribute(&span.attributes, k))
            .or_else(|| keys.iter().find_map(|k| text_attribute(resource, k)))
            .map(str::to_owned)
    };
    // The provider's id of the call (to find it in the provider's own logs) and the service
    // that made it; the operation is implied (only model calls become events).
    let mut metadata = serde_json::Map::new();
    if let Some(id) = seen.response_id {
        metadata.insert("gen_ai.response.id".into(), id.into());
    }
    if let Some(service) = text_attribute(resource, "service.name") {
        metadata.insert("service.name".into(), service.into());
    }

    Ok(Submitted {
        id: Some(Cow::Owned(event_id(&span.trace_id, &span.span_id)?)),
        timestamp: start_ms.filter(|ms| *ms > 0),
        provider: Cow::Borrowed(provider),
        model: Cow::Borrowed(model),
        feature: label(&labels.feature),
        user_id: label(&labels.user),
        input_tokens: input,
        output_tokens: output,
        cached_input_tokens: cached,
        cache_write_tokens: cache_write,
        reasoning_tokens: reasoning,
        // A tier the price table does not know (`default` from some SDKs is known) is left
        // out rather than failing the call: the standard rates apply.
        service_tier: seen
            .service_tier
            .filter(|t| ServiceTier::parse(t).is_some())
            .map(Cow::Borrowed),
        latency_ms,
        status: Some(if failed {
            llmtrack_shared::domain::event::Status::Error
        } else {
            llmtrack_shared::domain::event::Status::Success
        }),
        error_type: seen.error_type.map(str::to_owned),
        metadata: (!metadata.is_empty()).then_some(metadata),
        ..Submitted::default()
    })
}

/// The event id of a span: its trace and span ids, so a span exported twice is one event.
fn event_id(trace_id: &[u8], span_id: &[u8]) -> Result<String, Rejection> {
    if trace_id.len() != 16 || span_id.len() != 8 {
        return Err(Rejection::new(
            "span_id",
            ErrorCode::InvalidField,
            "the span needs a 16-byte trace id and an 8-byte span id",
        ));
    }
    let mut id = String::with_capacity(5 + 32 + 1 + 16);
    id.push_str("otel:");
    push_hex(&mut id, trace_id);
    id.push(':');
    push_hex(&mut id, span_id);
    Ok(id)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
}

/// A token count: an integer attribute, or a whole double or numeric string (some exporters
/// and the JSON encoding send those).
fn tokens(v: &AnyValue) -> Option<u64> {
    match v.value.as_ref()? {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::Double(d) if d.fract() == 0.0 && *d >= 0.0 && *d < 1e18 => Some(*d as u64),
        Value::String(_) => v.text()?.trim().parse().ok(),
        Value::Double(_) | Value::Bool(_) => None,
    }
}

fn text_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|kv| kv.key.as_ref() == key.as_bytes())
        .and_then(|kv| kv.value.as_ref()?.text())
}
