"""A LiteLLM callback: every call LiteLLM makes (SDK or proxy) becomes an LLMtrack event.

    import litellm
    from llmtrack import Tracker
    from llmtrack.litellm import LLMtrackLogger

    litellm.callbacks = [LLMtrackLogger(Tracker())]

The usage LiteLLM returns is OpenAI-shaped whatever the provider, so it is read with
`from_openai`; the provider is LiteLLM's `custom_llm_provider`. LiteLLM's own `response_cost`
is not sent: LLMtrack prices the call from its table and the workspace's prices, so every
source of events is priced alike (OpenRouter's `usage.cost` is kept as the provider's).
`feature` and `user_id` come from the call's `metadata` (`metadata={"feature": ...}`), the
OpenAI `user` parameter, or `llmtrack.labels(...)` around the call.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from litellm.integrations.custom_logger import CustomLogger

from .events import from_openai
from .sender import Tracker, log


class LLMtrackLogger(CustomLogger):
    def __init__(self, tracker: Optional[Tracker] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tracker = tracker or Tracker()

    def log_success_event(self, kwargs: Dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, None)

    async def async_log_success_event(self, kwargs: Dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, None)

    def log_failure_event(self, kwargs: Dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, None, start_time, end_time, kwargs.get("exception"))

    async def async_log_failure_event(self, kwargs: Dict[str, Any], response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, None, start_time, end_time, kwargs.get("exception"))

    def _record(self, kwargs: Dict[str, Any], response: Any, start: Any, end: Any, error: Any) -> None:
        try:
            params = kwargs.get("litellm_params") or {}
            metadata = params.get("metadata") or {}
            provider = params.get("custom_llm_provider") or (kwargs.get("standard_logging_object") or {}).get("custom_llm_provider") or "unknown"
            latency = (end - start).total_seconds() * 1000 if start is not None and end is not None else None
            labels = {
                "feature": metadata.get("feature"),
                "user_id": metadata.get("user_id") or kwargs.get("user"),
            }
            if error is None and response is not None:
                event = from_openai(response, provider=provider, latency_ms=latency)
            else:
                event = {
                    "provider": provider,
                    "model": str(kwargs.get("model") or "unknown"),
                    "status": "error",
                    "error_type": type(error).__name__[:128] if error is not None else "error",
                    "latency_ms": latency,
                }
            event.update({k: v for k, v in labels.items() if v})
            self.tracker.record(event)
        except Exception:
            log.exception("llmtrack: could not record a LiteLLM call")
