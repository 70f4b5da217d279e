"""The real OpenTelemetry SDK exporting to `llmtrack serve` at `/otlp/v1/traces`: hand-made
GenAI spans over protobuf and JSON, and the official OpenAI instrumentation around the real
`openai` client."""

from __future__ import annotations

import openai
import pytest
from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter as JsonExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as ProtoExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from fakes import CHAT_USAGE

# gpt-4o's published rates (USD per million tokens): input, cached input, output.
GPT_4O = (2.50, 1.25, 10.00)


def provider_for(workspace, exporter_class) -> TracerProvider:
    exporter = exporter_class(
        endpoint=f"{workspace.base}/otlp/v1/traces",
        headers={"Authorization": f"Bearer {workspace.key}"},
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout", "enduser.id": "u-resource"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def emit_calls(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("POST /summarize", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 2006,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 1920,
            "llmtrack.feature": "summarize",
            "user.id": "u-42",
        }):
            pass
        with tracer.start_as_current_span("chat claude-sonnet-4-6", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-6",
            "gen_ai.usage.input_tokens": 4050,
            "gen_ai.usage.output_tokens": 120,
            "gen_ai.usage.cache_read.input_tokens": 3000,
            "gen_ai.usage.cache_creation.input_tokens": 1000,
        }):
            pass
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "error.type": "RateLimitError",
        }) as failed:
            failed.set_status(Status(StatusCode.ERROR, "rate limited"))
    assert provider.force_flush(10_000)
    provider.shutdown()


def shape(events):
    """What an event says, without the id each export gives it."""
    return sorted(
        (e["provider"], e["model"], e["status"], e["input_tokens"], e["cached_input_tokens"],
         e["cache_write_tokens"], e["output_tokens"], e["feature"], e["user_id"], e["cost_usd"])
        for e in events
    )


@pytest.mark.parametrize("exporter_class", [ProtoExporter, JsonExporter], ids=["protobuf", "json"])
def test_genai_spans_become_exactly_the_expected_events(server, exporter_class):
    from conftest import Workspace

    workspace = Workspace(server)
    emit_calls(provider_for(workspace, exporter_class))
    events = workspace.events()
    assert len(events) == 3, events
    chat = next(e for e in events if e["model"] == "gpt-4o-2024-08-06")
    assert (chat["input_tokens"], chat["cached_input_tokens"], chat["output_tokens"]) == (2006, 1920, 300)
    assert (chat["feature"], chat["user_id"], chat["source"]) == ("summarize", "u-42", "python")
    assert chat["id"].startswith("otel:") and chat["metadata"]["service.name"] == "checkout"
    assert chat["latency_ms"] is not None and chat["latency_ms"] >= 0
    expected = ((2006 - 1920) * GPT_4O[0] + 1920 * GPT_4O[1] + 300 * GPT_4O[2]) / 1e6
    assert chat["cost_usd"] == pytest.approx(expected, abs=1e-12)
    claude = next(e for e in events if e["provider"] == "anthropic")
    assert (claude["input_tokens"], claude["cached_input_tokens"], claude["cache_write_tokens"]) == (4050, 3000, 1000)
    assert claude["user_id"] == "u-resource", "the resource's user when the span has none"
    failed = next(e for e in events if e["status"] == "error")
    assert (failed["error_type"], failed["input_tokens"]) == ("RateLimitError", 0)
    summary = workspace.summary()
    assert (summary["requests"], summary["errors"]) == (3, 1)
    assert summary["cost_usd"] == pytest.approx(sum(e["cost_usd"] or 0 for e in events), abs=1e-9)
    assert summary["tokens"]["input"] == 2006 + 4050


def test_protobuf_and_json_exports_store_the_same_events(server):
    from conftest import Workspace

    by_encoding = []
    for exporter_class in (ProtoExporter, JsonExporter):
        workspace = Workspace(server)
        emit_calls(provider_for(workspace, exporter_class))
        by_encoding.append(shape(workspace.events()))
    assert by_encoding[0] == by_encoding[1]


def official():
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    return OpenAIInstrumentor()


def openinference():
    from openinference.instrumentation.openai import OpenAIInstrumentor

    return OpenAIInstrumentor()


def openllmetry():
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    return OpenAIInstrumentor()


# Each instrumentation, and whether its Chat Completions spans carry the cached tokens. The
# official one (2.4b0) records only input and output tokens for Chat Completions: its events
# are priced as if nothing was cached (docs/INGEST.md says so and what to use instead).
INSTRUMENTATIONS = [(official, False), (openinference, True), (openllmetry, True)]


@pytest.mark.parametrize("make, reports_cache", INSTRUMENTATIONS, ids=["openai-v2", "openinference", "openllmetry"])
def test_openai_instrumentations_give_priced_events(workspace, providers, make, reports_cache):
    provider = provider_for(workspace, ProtoExporter)
    instrumentor = make()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = openai.OpenAI(base_url=f"{providers.base}/v1", api_key="sk-test", max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        stream = client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Hello there."
    finally:
        instrumentor.uninstrument()
    assert provider.force_flush(10_000)
    provider.shutdown()

    events = workspace.events()
    assert len(events) == 2, events
    cached = CHAT_USAGE["prompt_tokens_details"]["cached_tokens"] if reports_cache else 0
    for e in events:
        assert (e["provider"], e["model_canonical"]) == ("openai", "gpt-4o"), e
        assert e["model"] in ("gpt-4o", "gpt-4o-2024-08-06")
        assert e["input_tokens"] == CHAT_USAGE["prompt_tokens"]
        assert e["cached_input_tokens"] == cached
        assert e["output_tokens"] == CHAT_USAGE["completion_tokens"]
        assert e["cost_source"] == "table"
        expected = ((2006 - cached) * GPT_4O[0] + cached * GPT_4O[1] + 300 * GPT_4O[2]) / 1e6
        assert e["cost_usd"] == pytest.approx(expected, abs=1e-12)
