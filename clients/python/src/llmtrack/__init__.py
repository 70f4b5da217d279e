"""LLMtrack's Python client: send one usage event per LLM call.

    from llmtrack import Tracker, from_openai
    tracker = Tracker()                       # LLMTRACK_API_KEY, LLMTRACK_BASE_URL
    tracker.record(from_openai(response, feature="summarize"))

or record every call of a client: `instrument_openai(client, tracker)`. Before a call, ask
whether a budget still allows it: `tracker.guard(feature="summarize")` raises `BudgetExceeded`
once a budget that applies is used up.
"""

from .budget import BudgetCheck, BudgetCheckError, BudgetExceeded, BudgetScope, BudgetStatus
from .events import from_anthropic, from_gemini, from_openai
from .instrument import instrument_anthropic, instrument_openai
from .sender import Tracker, labels

__all__ = [
    "Tracker",
    "labels",
    "from_openai",
    "from_anthropic",
    "from_gemini",
    "instrument_openai",
    "instrument_anthropic",
    "BudgetCheck",
    "BudgetStatus",
    "BudgetScope",
    "BudgetExceeded",
    "BudgetCheckError",
]
__version__ = "0.1.0"
