"""Budget checks before an LLM call: `GET /v1/budgets/check` answers allow, warn or deny for
the budgets that apply to a call (its model, feature, end-user, and the key's source).

LLMtrack is not a proxy: the application asks, then decides. `Tracker.check_budget()` returns
a `BudgetCheck`; `Tracker.guard()` raises `BudgetExceeded` when the answer is deny. Answers are
cached for a few seconds per (model, feature, user), so a hot loop does not ask per call. When
LLMtrack cannot answer (network error, timeout, 5xx, 429) the check fails open by default: it
answers allow with `error` set, and logs one warning until LLMtrack answers again. A refusal
that asking again cannot fix (a wrong key, a bad parameter) raises `BudgetCheckError`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import httpx

log = logging.getLogger("llmtrack")

#: Distinct (model, feature, user) answers kept in the cache; the oldest go first.
MAX_CACHED = 1024

Key = Tuple[Optional[str], Optional[str], Optional[str]]


@dataclass(frozen=True)
class BudgetScope:
    """What a scoped budget counts: one `model`, `feature`, `source` or `user`."""

    dimension: str
    value: str


@dataclass(frozen=True)
class BudgetStatus:
    """One budget that applies to the call, as spent in its current period."""

    id: str
    name: str
    #: None for a budget over the whole workspace.
    scope: Optional[BudgetScope]
    amount_usd: float
    spent_usd: float
    remaining_usd: float
    used_pct: float
    #: "allow", "warn" or "deny": this budget's own answer.
    decision: str
    #: RFC 3339: when the current period ends (the budget is fresh again).
    period_end: Optional[str]


@dataclass(frozen=True)
class BudgetCheck:
    """The answer to a budget check.

    `decision` is the strictest answer among the budgets that apply ("allow" when none does);
    `remaining_usd` the least left among them (None when none applies). `error` is set when
    LLMtrack could not answer and the check failed open: the decision is then "allow" and
    `budgets` is empty.
    """

    decision: str
    remaining_usd: Optional[float] = None
    budgets: Tuple[BudgetStatus, ...] = ()
    error: Optional[str] = None

    @property
    def allowed(self) -> bool:
        """False only when the answer is deny."""
        return self.decision != "deny"

    @property
    def warning(self) -> bool:
        """True when a budget that applies is past its warning share."""
        return self.decision == "warn"

    @property
    def exceeded(self) -> Tuple[BudgetStatus, ...]:
        """The budgets that deny."""
        return tuple(b for b in self.budgets if b.decision == "deny")


class BudgetExceeded(Exception):
    """Raised by `Tracker.guard()` when a budget that applies is used up (decision "deny");
    `check` is the whole answer."""

    def __init__(self, check: BudgetCheck) -> None:
        self.check = check
        used = check.exceeded or check.budgets
        if used:
            b = used[0]
            message = f"budget {b.name!r} is used up: ${b.spent_usd:.2f} of ${b.amount_usd:.2f} spent"
            if b.period_end:
                message += f" (until {b.period_end})"
        else:
            message = "a budget is used up"
        super().__init__(message)


class BudgetCheckError(Exception):
    """The check could not be made. Raised for refusals that asking again cannot fix (a wrong
    or missing key, a key of another scope, a bad parameter: `status` 4xx, with the server's
    `code` and message) and, with `fail_open=False`, when LLMtrack cannot answer (`status` the
    5xx or 429, or None for a network error or timeout)."""

    def __init__(self, message: str, status: Optional[int] = None, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class _Unavailable(Exception):
    """LLMtrack did not answer: what failing open covers."""

    def __init__(self, message: str, status: Optional[int] = None, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BudgetChecker:
    """The check and its cache; a `Tracker` holds one (`Tracker.check_budget`)."""

    def __init__(
        self,
        http: httpx.Client,
        base_url: Callable[[], str],
        api_key: Callable[[], str],
        *,
        ttl: float,
        timeout: float,
        fail_open: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._base_url = base_url
        self._api_key = api_key
        self.ttl = ttl
        self.timeout = timeout
        self.fail_open = fail_open
        self._clock = clock
        self._cache: "collections.OrderedDict[Key, Tuple[float, BudgetCheck]]" = collections.OrderedDict()
        self._lock = threading.Lock()
        # Whether the last attempt failed: one warning per outage, not one per call.
        self._down = False

    def cached(self, key: Key) -> Optional[BudgetCheck]:
        if self.ttl <= 0:
            return None
        with self._lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            at, check = hit
            if self._clock() - at >= self.ttl:
                del self._cache[key]
                return None
            return check

    def check(self, key: Key) -> BudgetCheck:
        hit = self.cached(key)
        if hit is not None:
            return hit
        try:
            check = self._ask(key)
            if self._down:
                self._down = False
                log.info("llmtrack: budget checks answered again")
        except _Unavailable as e:
            if not self.fail_open:
                raise BudgetCheckError(str(e), e.status, e.code) from None
            if not self._down:
                self._down = True
                log.warning("llmtrack: budget check failed (%s); allowing calls until LLMtrack answers", e)
            else:
                log.debug("llmtrack: budget check failed (%s)", e)
            # Kept for the TTL as well: a down LLMtrack costs one timeout per TTL, not per call.
            check = BudgetCheck(decision="allow", error=str(e))
        if self.ttl > 0:
            with self._lock:
                self._cache[key] = (self._clock(), check)
                self._cache.move_to_end(key)
                while len(self._cache) > MAX_CACHED:
                    self._cache.popitem(last=False)
        return check

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def _ask(self, key: Key) -> BudgetCheck:
        api_key = self._api_key()
        if not api_key:
            raise _Unavailable("no API key (set LLMTRACK_API_KEY)")
        model, feature, user = key
        params = {k: v for k, v in (("model", model), ("feature", feature), ("user", user)) if v is not None}
        try:
            r = self._http.get(
                f"{self._base_url()}/v1/budgets/check",
                params=params,
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=self.timeout,
            )
        except httpx.TimeoutException:
            raise _Unavailable(f"no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as e:
            raise _Unavailable(f"{type(e).__name__}: {e}") from None
        body = _json(r)
        err = body.get("error") if isinstance(body.get("error"), dict) else {}
        code = err.get("code")
        message = err.get("message") or r.text[:200]
        if r.status_code == 429 or r.status_code >= 500:
            raise _Unavailable(f"{r.status_code} {code or ''} {message}".replace("  ", " ").strip(), r.status_code, code)
        if r.status_code != 200:
            raise BudgetCheckError(f"budget check refused ({r.status_code} {code or ''}): {message}", r.status_code, code)
        try:
            return _parse(body)
        except (KeyError, TypeError, ValueError) as e:
            # Not LLMtrack's answer (a proxy's page?): as if it had not answered.
            raise _Unavailable(f"unexpected answer ({type(e).__name__}: {e})", r.status_code) from None


def _json(r: httpx.Response) -> Dict[str, Any]:
    try:
        body = r.json()
        return body if isinstance(body, dict) else {}
    except ValueError:
        return {}


def _number(v: Any) -> Optional[float]:
    return None if v is None else float(v)


def _parse(body: Dict[str, Any]) -> BudgetCheck:
    decision = body["decision"]
    if decision not in ("allow", "warn", "deny"):
        raise ValueError(f"decision {decision!r}")
    budgets = []
    for b in body.get("budgets") or []:
        scope = b.get("scope")
        budgets.append(
            BudgetStatus(
                id=str(b["id"]),
                name=str(b.get("name", "")),
                scope=BudgetScope(str(scope["dimension"]), str(scope["value"])) if scope else None,
                amount_usd=float(b["amount_usd"]),
                spent_usd=float(b["spent_usd"]),
                remaining_usd=float(b["remaining_usd"]),
                used_pct=float(b["used_pct"]),
                decision=str(b["decision"]),
                period_end=b.get("period_end"),
            )
        )
    return BudgetCheck(decision=decision, remaining_usd=_number(body.get("remaining_usd")), budgets=tuple(budgets))
