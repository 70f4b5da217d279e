"""The helpers and the client wrappers around the real `openai` and `anthropic` packages,
talking to the local fakes: a wrapped call and the helper applied to the same response give the
same event, streamed or not, and the events `serve` stores say exactly what the usage said."""

from __future__ import annotations

import asyncio

import anthropic
import openai
import pytest

import llmtrack
from fakes import ANTHROPIC_USAGE, CHAT_USAGE, REASONING_USAGE, RESPONSES_USAGE

MESSAGES = [{"role": "user", "content": "Hi"}]


def tracker_for(workspace) -> llmtrack.Tracker:
    return llmtrack.Tracker(workspace.key, workspace.base, flush_interval=0.05)


def comparable(event):
    """An event without what differs between two calls (id, latency)."""
    return {k: v for k, v in event.items() if k not in ("id", "latency_ms", "timestamp")}


def stored(event):
    """What `serve` stores of an event, in the sent contract's names."""
    return {k: event[k] for k in (
        "provider", "model", "input_tokens", "output_tokens", "cached_input_tokens",
        "cache_write_tokens", "reasoning_tokens", "cache_write_1h_tokens",
    )}


def test_openai_calls_are_recorded_as_the_helper_reads_them(workspace, providers):
    tracker = tracker_for(workspace)
    plain = openai.OpenAI(base_url=f"{providers.base}/v1", api_key="sk-test", max_retries=0)
    client = llmtrack.instrument_openai(
        openai.OpenAI(base_url=f"{providers.base}/v1", api_key="sk-test", max_retries=0), tracker
    )
    with llmtrack.labels(feature="summarize", user_id="u-42"):
        chat = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        reasoning = client.chat.completions.create(model="o3", messages=MESSAGES)
        response = client.responses.create(model="o4-mini", input="Hi")
        chunks = list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
        streamed = list(client.responses.create(model="o4-mini", input="Hi", stream=True))
    assert tracker.flush(10)

    # The stream asked for its usage chunk, and the caller still saw every text chunk.
    assert providers.requests[-2]["body"]["stream_options"] == {"include_usage": True}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there."
    assert streamed[-1].type == "response.completed"

    by_hand = [
        llmtrack.from_openai(plain.chat.completions.create(model="gpt-4o", messages=MESSAGES)),
        llmtrack.from_openai(plain.chat.completions.create(model="o3", messages=MESSAGES)),
        llmtrack.from_openai(plain.responses.create(model="o4-mini", input="Hi")),
    ]
    assert by_hand[0] == {**llmtrack.from_openai(chat), "id": by_hand[0]["id"]}
    assert by_hand[0]["input_tokens"] == CHAT_USAGE["prompt_tokens"]
    assert by_hand[0]["cached_input_tokens"] == 1920
    assert by_hand[1]["reasoning_tokens"] == REASONING_USAGE["completion_tokens_details"]["reasoning_tokens"]
    assert (by_hand[2]["input_tokens"], by_hand[2]["cached_input_tokens"], by_hand[2]["reasoning_tokens"]) == (
        RESPONSES_USAGE["input_tokens"], 1024, 384)
    assert response.usage.output_tokens == by_hand[2]["output_tokens"]

    events = workspace.events()
    assert len(events) == 5
    expected = [by_hand[0], by_hand[1], by_hand[2], by_hand[0], by_hand[2]]
    for got, want in zip(events, expected):
        assert stored(got) == {**{k: 0 for k in stored(got)}, **{k: v for k, v in want.items() if k in stored(got)}}, got
        assert (got["feature"], got["user_id"], got["source"]) == ("summarize", "u-42", "python")
        assert got["latency_ms"] is not None and got["cost_source"] == "table"
    # The call's own id is the event's: a resent event is the same event.
    assert events[0]["id"] == chat.id
    tracker.close()


def test_anthropic_calls_count_cache_reads_and_writes_inside_the_input(workspace, providers):
    tracker = tracker_for(workspace)
    client = llmtrack.instrument_anthropic(
        anthropic.Anthropic(base_url=providers.base, api_key="sk-ant-test", max_retries=0), tracker
    )
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES)
    events_seen = list(client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES, stream=True))
    assert events_seen[-1].type == "message_stop"
    assert tracker.flush(10)

    event = llmtrack.from_anthropic(message)
    u = ANTHROPIC_USAGE
    assert event["input_tokens"] == u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
    assert (event["cached_input_tokens"], event["cache_write_tokens"], event["cache_write_1h_tokens"]) == (3000, 1000, 600)
    assert event["service_tier"] == "standard"
    stored_events = workspace.events()
    assert len(stored_events) == 2
    for got in stored_events:
        assert stored(got) == {**{k: 0 for k in stored(got)}, **{k: v for k, v in event.items() if k in stored(got)}}
        assert got["model_canonical"] == "claude-sonnet-4-6"
    tracker.close()


def test_failed_calls_are_recorded_as_errors_and_raised_as_they_were(workspace, providers):
    tracker = tracker_for(workspace)
    client = llmtrack.instrument_openai(
        openai.OpenAI(base_url=f"{providers.base}/v1", api_key="sk-test", max_retries=0), tracker
    )
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="overloaded", messages=MESSAGES)
    assert tracker.flush(10)
    [event] = workspace.events()
    assert (event["status"], event["error_type"], event["model"], event["input_tokens"]) == (
        "error", "RateLimitError", "overloaded", 0)
    tracker.close()


def test_async_clients_are_recorded_too(workspace, providers):
    tracker = tracker_for(workspace)
    client = llmtrack.instrument_openai(
        openai.AsyncOpenAI(base_url=f"{providers.base}/v1", api_key="sk-test", max_retries=0), tracker
    )

    async def calls():
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        async for _ in stream:
            pass
        return await tracker.aflush(10)

    assert asyncio.run(calls())
    events = workspace.events()
    assert [e["cached_input_tokens"] for e in events] == [1920, 1920]
    tracker.close()


def test_gemini_thinking_tokens_are_output_and_openrouter_cost_is_the_providers():
    gemini = {
        "response_id": "g-1",
        "model_version": "gemini-2.5-flash",
        "usage_metadata": {
            "prompt_token_count": 1000,
            "cached_content_token_count": 600,
            "candidates_token_count": 200,
            "thoughts_token_count": 300,
            "tool_use_prompt_token_count": 50,
            "total_token_count": 1550,
        },
    }
    e = llmtrack.from_gemini(gemini)
    assert (e["provider"], e["model"], e["id"]) == ("google", "gemini-2.5-flash", "g-1")
    assert (e["input_tokens"], e["cached_input_tokens"], e["output_tokens"], e["reasoning_tokens"]) == (1050, 600, 500, 300)

    openrouter = {
        "id": "gen-1",
        "model": "anthropic/claude-sonnet-4.5",
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "cost": 0.00063,
                  "prompt_tokens_details": {"cached_tokens": 40}},
    }
    e = llmtrack.from_openai(openrouter, provider="openrouter")
    assert (e["provider"], e["provider_cost_usd"], e["cached_input_tokens"]) == ("openrouter", 0.00063, 40)
