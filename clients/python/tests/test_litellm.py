"""LiteLLM's calls through the callback, with the real `litellm` package and its
`mock_response` (no network): each call becomes an event with LiteLLM's usage and provider."""

from __future__ import annotations

import litellm
import pytest

import llmtrack
from llmtrack.litellm import LLMtrackLogger


@pytest.fixture
def logger(workspace):
    tracker = llmtrack.Tracker(workspace.key, workspace.base, flush_interval=0.05)
    callback = LLMtrackLogger(tracker)
    litellm.callbacks = [callback]
    yield callback
    litellm.callbacks = []
    tracker.close()


def test_litellm_calls_become_events(workspace, logger):
    messages = [{"role": "user", "content": "Summarize this please"}]
    response = litellm.completion(
        model="gpt-4o", messages=messages, mock_response="A summary.", metadata={"feature": "summarize"}, user="u-7"
    )
    claude = litellm.completion(model="anthropic/claude-sonnet-4-6", messages=messages, mock_response="Hi.")
    with pytest.raises(Exception):
        litellm.completion(model="gpt-4o", messages=messages, mock_response=Exception("boom"))
    # LiteLLM runs success callbacks on a worker thread: wait for all three to be queued.
    import time

    deadline = time.monotonic() + 10
    while logger.tracker.pending + logger.tracker.delivered < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert logger.tracker.flush(10)

    events = workspace.events()
    assert len(events) == 3, events
    by_model = {(e["provider"], e["status"]): e for e in events}
    gpt = by_model[("openai", "success")]
    assert (gpt["model_canonical"], gpt["feature"], gpt["user_id"]) == ("gpt-4o", "summarize", "u-7")
    assert (gpt["input_tokens"], gpt["output_tokens"]) == (response.usage.prompt_tokens, response.usage.completion_tokens)
    assert gpt["cost_source"] == "table" and gpt["cost_usd"] > 0
    sonnet = by_model[("anthropic", "success")]
    assert sonnet["model_canonical"] == "claude-sonnet-4-6"
    assert sonnet["input_tokens"] == claude.usage.prompt_tokens
    failed = by_model[("openai", "error")]
    assert failed["model"] == "gpt-4o"


def test_litellm_generic_api_logger_needs_no_code(workspace, monkeypatch):
    """LiteLLM's own generic API logger, configured by its environment variables alone, posts
    to `/v1/integrations/litellm`: each call is one event, and no prompt text is kept."""
    import asyncio

    from litellm.integrations.generic_api.generic_api_callback import GenericAPILogger

    monkeypatch.setenv("GENERIC_LOGGER_ENDPOINT", f"{workspace.base}/v1/integrations/litellm")
    monkeypatch.setenv("GENERIC_LOGGER_HEADERS", f"Authorization=Bearer {workspace.key}")
    monkeypatch.setattr(litellm, "turn_off_message_logging", True)
    messages = [{"role": "user", "content": "a secret prompt"}]

    async def calls():
        # The logger starts its flush task on creation, so it is made inside the event loop.
        logger = GenericAPILogger()
        litellm.callbacks = [logger]
        try:
            gpt = await litellm.acompletion(model="gpt-4o", messages=messages, mock_response="A summary.")
            await litellm.acompletion(model="anthropic/claude-sonnet-4-6", messages=messages, mock_response="Hi.")
            for _ in range(100):
                if len(logger.log_queue) >= 2:
                    break
                await asyncio.sleep(0.05)
            await logger.flush_queue()
            return gpt
        finally:
            litellm.callbacks = []

    gpt = asyncio.run(calls())
    events = workspace.events()
    assert len(events) == 2, events
    by_provider = {e["provider"]: e for e in events}
    openai_event = by_provider["openai"]
    assert (openai_event["id"], openai_event["model_canonical"], openai_event["source"]) == (gpt.id, "gpt-4o", "python")
    assert (openai_event["input_tokens"], openai_event["output_tokens"]) == (gpt.usage.prompt_tokens, gpt.usage.completion_tokens)
    assert by_provider["anthropic"]["model_canonical"] == "claude-sonnet-4-6"
    assert "secret prompt" not in str(events)
