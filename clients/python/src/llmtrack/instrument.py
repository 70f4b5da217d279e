"""Wrappers that record each call an `openai` or `anthropic` client makes, streaming included.

`instrument_openai(client, tracker)` patches that one client object (sync or async):
`chat.completions.create` and `responses.create`; `instrument_anthropic` patches
`messages.create`. Each call's response goes through the same helper a caller would use
(`from_openai`, `from_anthropic`), so wrapped and hand-recorded calls give the same events. A
call that raises is recorded as an error event, and the error is raised as it was. Nothing
the recording does can raise into the call.

Streams: the wrapper passes each chunk through unchanged and records when the stream ends.
For Chat Completions it asks for the usage chunk (`stream_options={"include_usage": True}`)
unless the caller set `stream_options`; that chunk has no choices.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from typing import Any, Callable, Dict, Optional

from .events import from_anthropic, from_openai
from .sender import Tracker

log = logging.getLogger("llmtrack")

_MARK = "__llmtrack_wrapped__"


def instrument_openai(client: Any, tracker: Tracker, *, provider: str = "openai") -> Any:
    """Records every Chat Completions and Responses call of `client` (an `openai.OpenAI` or
    `openai.AsyncOpenAI`, or one pointed at a compatible API: set `provider`). Returns it."""
    _patch(client.chat.completions, "create", tracker, provider, _OpenAIChat)
    responses = getattr(client, "responses", None)
    if responses is not None:
        _patch(responses, "create", tracker, provider, _OpenAIResponses)
    return client


def instrument_anthropic(client: Any, tracker: Tracker, *, provider: str = "anthropic") -> Any:
    """Records every Messages call of `client` (an `anthropic.Anthropic` or
    `anthropic.AsyncAnthropic`). Returns it."""
    _patch(client.messages, "create", tracker, provider, _AnthropicMessages)
    return client


class _Usage:
    """What one call's stream has said so far, and the event it makes."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.final: Any = None

    def observe(self, item: Any) -> None:
        raise NotImplementedError

    def event(self, latency_ms: float) -> Optional[Dict[str, Any]]:
        raise NotImplementedError

    @staticmethod
    def prepare(kwargs: Dict[str, Any]) -> None:
        """Adjusts a streaming request so its stream reports usage."""


class _OpenAIChat(_Usage):
    def observe(self, chunk: Any) -> None:
        if getattr(chunk, "usage", None) is not None:
            self.final = chunk

    def event(self, latency_ms: float) -> Optional[Dict[str, Any]]:
        return from_openai(self.final, provider=self.provider, latency_ms=latency_ms) if self.final else None

    @staticmethod
    def prepare(kwargs: Dict[str, Any]) -> None:
        kwargs.setdefault("stream_options", {"include_usage": True})


class _OpenAIResponses(_Usage):
    def observe(self, event: Any) -> None:
        if getattr(event, "type", None) in ("response.completed", "response.incomplete", "response.failed"):
            self.final = getattr(event, "response", None)

    def event(self, latency_ms: float) -> Optional[Dict[str, Any]]:
        return from_openai(self.final, provider=self.provider, latency_ms=latency_ms) if self.final else None


class _AnthropicMessages(_Usage):
    """A Messages stream: `message_start` has the id, model and input counts; each
    `message_delta` the output tokens so far (and, in newer versions, updated input counts)."""

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self.message: Dict[str, Any] = {}
        self.usage: Dict[str, Any] = {}

    def observe(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            m = event.message
            self.message = {"id": getattr(m, "id", None), "model": getattr(m, "model", None)}
            self._merge(getattr(m, "usage", None))
        elif kind == "message_delta":
            self._merge(getattr(event, "usage", None))

    def _merge(self, usage: Any) -> None:
        if usage is None:
            return
        fields = usage.model_dump() if hasattr(usage, "model_dump") else dict(usage)
        self.usage.update({k: v for k, v in fields.items() if v is not None})

    def event(self, latency_ms: float) -> Optional[Dict[str, Any]]:
        if not self.message:
            return None
        return from_anthropic({**self.message, "usage": self.usage}, provider=self.provider, latency_ms=latency_ms)


def _patch(resource: Any, name: str, tracker: Tracker, provider: str, usage: type) -> None:
    original = getattr(resource, name)
    if getattr(original, _MARK, False):
        return
    helper = from_anthropic if usage is _AnthropicMessages else from_openai

    def finished(result: Any, stream: bool, start: float, wrap: type) -> Any:
        if stream:
            return wrap(result, usage(provider), tracker, start)
        _record(tracker, lambda: helper(result, provider=provider, latency_ms=_ms(start)))
        return result

    async def awaited(pending: Any, kwargs: Dict[str, Any], stream: bool, start: float) -> Any:
        try:
            result = await pending
        except Exception as exc:
            _failed(tracker, provider, kwargs, exc, start)
            raise
        return finished(result, stream, start, _AsyncStream)

    # One wrapper for sync and async clients: an async client's `create` returns an awaitable
    # (it is not itself a coroutine function: the SDKs wrap it in a plain decorator).
    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        stream = kwargs.get("stream") is True
        if stream:
            usage.prepare(kwargs)
        start = time.perf_counter()
        try:
            result = original(*args, **kwargs)
        except Exception as exc:
            _failed(tracker, provider, kwargs, exc, start)
            raise
        if inspect.isawaitable(result):
            return awaited(result, kwargs, stream, start)
        return finished(result, stream, start, _Stream)

    setattr(call, _MARK, True)
    setattr(resource, name, call)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def _record(tracker: Tracker, make: Callable[[], Optional[Dict[str, Any]]]) -> None:
    try:
        event = make()
        if event is not None:
            tracker.record(event)
    except Exception:
        log.exception("llmtrack: could not record a call")


def _failed(tracker: Tracker, provider: str, kwargs: Dict[str, Any], exc: Exception, start: float) -> None:
    _record(
        tracker,
        lambda: {
            "provider": provider,
            "model": str(kwargs.get("model") or "unknown"),
            "status": "error",
            "error_type": type(exc).__name__[:128],
            "latency_ms": _ms(start),
        },
    )


class _Passthrough:
    """What the sync and async streams share: each item is observed on its way to the caller,
    and the call is recorded once, when the stream ends or is closed."""

    def __init__(self, inner: Any, usage: _Usage, tracker: Tracker, start: float) -> None:
        self._inner = inner
        self._usage = usage
        self._tracker = tracker
        self._start = start
        self._done = False

    def _observe(self, item: Any) -> Any:
        try:
            self._usage.observe(item)
        except Exception:
            log.exception("llmtrack: could not read a stream chunk")
        return item

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            _record(self._tracker, lambda: self._usage.event(_ms(self._start)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _Stream(_Passthrough):
    """A provider's stream, passed through chunk by chunk."""

    def __init__(self, inner: Any, usage: _Usage, tracker: Tracker, start: float) -> None:
        super().__init__(inner, usage, tracker, start)
        self._it = iter(inner)

    def __iter__(self) -> "_Stream":
        return self

    def __next__(self) -> Any:
        try:
            item = next(self._it)
        except StopIteration:
            self._finish()
            raise
        return self._observe(item)

    def close(self) -> None:
        self._finish()
        close = getattr(self._inner, "close", None)
        if close:
            close()

    def __enter__(self) -> "_Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _AsyncStream(_Passthrough):
    """The async form of `_Stream`."""

    def __init__(self, inner: Any, usage: _Usage, tracker: Tracker, start: float) -> None:
        super().__init__(inner, usage, tracker, start)
        self._it = inner.__aiter__()

    def __aiter__(self) -> "_AsyncStream":
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._it.__anext__()
        except StopAsyncIteration:
            self._finish()
            raise
        return self._observe(item)

    async def close(self) -> None:
        self._finish()
        close = getattr(self._inner, "close", None)
        if close:
            await close()

    async def __aenter__(self) -> "_AsyncStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
