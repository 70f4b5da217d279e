"""Provider responses to LLMtrack usage events (the `POST /v1/events` contract, docs/INGEST.md).

Each helper takes the response object the provider's SDK returned (or its dict form) and gives
the event with the token counts in LLMtrack's meaning: `input_tokens` counts every input token,
cache reads and writes included; `output_tokens` counts every output token, reasoning included;
the parts are named beside them. Providers count differently, which is why these exist:
Anthropic reports cache reads and writes beside `input_tokens`, Gemini reports thinking tokens
beside `candidates_token_count`.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

#: `service_tier` values the API accepts (others are left out: the standard rates apply).
SERVICE_TIERS = {"standard", "default", "auto", "on_demand", "scale", "batch", "flex", "priority"}


def _get(obj: Any, *path: str) -> Any:
    """`obj.a.b` or `obj["a"]["b"]`, None where anything along the way is missing."""
    for name in path:
        if obj is None:
            return None
        if isinstance(obj, Mapping):
            obj = obj.get(name)
        else:
            obj = getattr(obj, name, None)
    return obj


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and value > 0 else 0


def _event(
    provider: str,
    model: Any,
    *,
    id: Any = None,
    feature: Optional[str] = None,
    user_id: Optional[str] = None,
    latency_ms: Optional[float] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    **tokens: Any,
) -> Dict[str, Any]:
    e: Dict[str, Any] = {"provider": provider, "model": str(model or "unknown")}
    if isinstance(id, str) and 0 < len(id) <= 128:
        e["id"] = id
    for key, value in tokens.items():
        if key in ("service_tier",):
            if isinstance(value, str) and value.lower() in SERVICE_TIERS:
                e[key] = value.lower()
        elif key == "provider_cost_usd":
            if isinstance(value, (int, float)) and value >= 0:
                e[key] = float(value)
        elif value:
            e[key] = value
    for key, value in (("feature", feature), ("user_id", user_id), ("latency_ms", latency_ms), ("metadata", metadata)):
        if value is not None:
            e[key] = value
    return e


def from_openai(
    response: Any,
    *,
    provider: str = "openai",
    feature: Optional[str] = None,
    user_id: Optional[str] = None,
    latency_ms: Optional[float] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """An OpenAI Chat Completions or Responses result (or a chunk carrying `usage`, or any
    OpenAI-compatible API's: pass `provider="openrouter"`, `"azure"`, ...). OpenRouter's
    `usage.cost` is kept as the provider-reported cost."""
    usage = _get(response, "usage")
    if _get(usage, "prompt_tokens") is not None or _get(usage, "completion_tokens") is not None:
        # Chat Completions: prompt_tokens counts cached tokens; completion_tokens reasoning.
        input_tokens = _int(_get(usage, "prompt_tokens"))
        cached = _int(_get(usage, "prompt_tokens_details", "cached_tokens"))
        cache_write = _int(_get(usage, "prompt_tokens_details", "cache_write_tokens")) or _int(
            _get(usage, "cache_creation_input_tokens")
        )
        output = _int(_get(usage, "completion_tokens"))
        reasoning = _int(_get(usage, "completion_tokens_details", "reasoning_tokens"))
        audio_in = _int(_get(usage, "prompt_tokens_details", "audio_tokens"))
        audio_out = _int(_get(usage, "completion_tokens_details", "audio_tokens"))
    else:
        # Responses API: input_tokens counts cached tokens; output_tokens reasoning.
        input_tokens = _int(_get(usage, "input_tokens"))
        cached = _int(_get(usage, "input_tokens_details", "cached_tokens"))
        cache_write = 0
        output = _int(_get(usage, "output_tokens"))
        reasoning = _int(_get(usage, "output_tokens_details", "reasoning_tokens"))
        audio_in = audio_out = 0
    # Some compatible APIs report a cache write beside the prompt rather than inside it.
    if cached + cache_write > input_tokens:
        input_tokens += cached + cache_write
    return _event(
        provider,
        _get(response, "model"),
        id=_get(response, "id"),
        feature=feature,
        user_id=user_id,
        latency_ms=latency_ms,
        metadata=metadata,
        input_tokens=input_tokens,
        output_tokens=output,
        cached_input_tokens=cached,
        cache_write_tokens=cache_write,
        reasoning_tokens=min(reasoning, output),
        audio_input_tokens=min(audio_in, max(0, input_tokens - cached - cache_write)),
        audio_output_tokens=min(audio_out, output),
        service_tier=_get(response, "service_tier"),
        provider_cost_usd=_get(usage, "cost"),
    )


def from_anthropic(
    message: Any,
    *,
    provider: str = "anthropic",
    feature: Optional[str] = None,
    user_id: Optional[str] = None,
    latency_ms: Optional[float] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """An Anthropic Messages result. Its `input_tokens` leaves out cache reads and writes, which
    are added here; the one-hour part of the cache writes is named (priced higher)."""
    usage = _get(message, "usage")
    plain = _int(_get(usage, "input_tokens"))
    cached = _int(_get(usage, "cache_read_input_tokens"))
    cache_write = _int(_get(usage, "cache_creation_input_tokens"))
    write_1h = _int(_get(usage, "cache_creation", "ephemeral_1h_input_tokens"))
    return _event(
        provider,
        _get(message, "model"),
        id=_get(message, "id"),
        feature=feature,
        user_id=user_id,
        latency_ms=latency_ms,
        metadata=metadata,
        input_tokens=plain + cached + cache_write,
        output_tokens=_int(_get(usage, "output_tokens")),
        cached_input_tokens=cached,
        cache_write_tokens=cache_write,
        cache_write_1h_tokens=min(write_1h, cache_write),
        service_tier=_get(usage, "service_tier"),
    )


def from_gemini(
    response: Any,
    *,
    model: Optional[str] = None,
    provider: str = "google",
    feature: Optional[str] = None,
    user_id: Optional[str] = None,
    latency_ms: Optional[float] = None,
    metadata: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """A Google Gemini `generate_content` result (google-genai). Its thinking tokens are not
    in `candidates_token_count`, so they are added to the output; tool-use prompt tokens are
    added to the input. `model` names it when the response has no `model_version`."""
    usage = _get(response, "usage_metadata")
    prompt = _int(_get(usage, "prompt_token_count")) + _int(_get(usage, "tool_use_prompt_token_count"))
    thoughts = _int(_get(usage, "thoughts_token_count"))
    return _event(
        provider,
        _get(response, "model_version") or model,
        id=_get(response, "response_id"),
        feature=feature,
        user_id=user_id,
        latency_ms=latency_ms,
        metadata=metadata,
        input_tokens=prompt,
        output_tokens=_int(_get(usage, "candidates_token_count")) + thoughts,
        cached_input_tokens=min(_int(_get(usage, "cached_content_token_count")), prompt),
        reasoning_tokens=thoughts,
    )
