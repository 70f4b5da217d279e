"""The batching sender: `record()` queues an event and returns at once; a background thread
sends batches to `POST /v1/events`, retrying with the same ids, so a retry is never counted
twice. Nothing here raises into the caller's code."""

from __future__ import annotations

import atexit
import collections
import contextlib
import contextvars
import logging
import os
import random
import threading
import time
import secrets
import string
import weakref
from typing import Any, Deque, Dict, Iterator, List, Mapping, Optional

import httpx

from .budget import BudgetCheck, BudgetChecker, BudgetExceeded

log = logging.getLogger("llmtrack")

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
#: The API's own limit on one request.
MAX_BATCH = 1000

_labels: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "llmtrack_labels", default={}
)


@contextlib.contextmanager
def labels(**values: Any) -> Iterator[None]:
    """Labels (`feature`, `user_id`, `metadata`) for every event recorded inside the block,
    by this thread or task: `with llmtrack.labels(feature="summarize", user_id="u-42"):`."""
    merged = {**_labels.get(), **{k: v for k, v in values.items() if v is not None}}
    token = _labels.set(merged)
    try:
        yield
    finally:
        _labels.reset(token)


class Tracker:
    """Sends usage events to LLMtrack in the background.

    `api_key` is an ingest key (default: the `LLMTRACK_API_KEY` variable); `base_url` the
    LLMtrack API (default: `LLMTRACK_BASE_URL`, else a local `llmtrack serve`). At most
    `max_queue` events wait in memory; beyond that new events are dropped and counted in
    `dropped` (the application is never slowed or stopped). Events are sent every
    `flush_interval` seconds or as soon as `batch_size` are waiting, and whatever is left is
    sent when the process exits (for up to `shutdown_timeout` seconds).

    Budget checks (`check_budget`, `guard`) are cached for `budget_ttl` seconds per model,
    feature and user (0: ask every time), wait at most `budget_timeout` seconds for LLMtrack, and
    answer allow when it cannot answer unless `fail_open` is False.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        timeout: float = 10.0,
        max_backoff: float = 30.0,
        shutdown_timeout: float = 5.0,
        budget_ttl: float = 5.0,
        budget_timeout: float = 1.0,
        fail_open: bool = True,
        http: Optional[httpx.Client] = None,
    ) -> None:
        self.api_key = api_key or os.environ.get("LLMTRACK_API_KEY", "")
        self.base_url = (base_url or os.environ.get("LLMTRACK_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_backoff = max_backoff
        self.shutdown_timeout = shutdown_timeout
        self.dropped = 0
        #: Events the API refused (a bad field, an exhausted quota): not retried.
        self.rejected = 0
        self.delivered = 0
        self._http = http or httpx.Client(timeout=timeout)
        self._budgets = BudgetChecker(
            self._http,
            lambda: self.base_url,
            lambda: self.api_key,
            ttl=budget_ttl,
            timeout=budget_timeout,
            fail_open=fail_open,
        )
        self._queue: Deque[Dict[str, Any]] = collections.deque()
        # The batch being sent: kept apart so a flush knows it is not delivered yet.
        self._in_flight: List[Dict[str, Any]] = []
        self._lock = threading.Condition()
        self._closed = False
        self._wake = False
        if not self.api_key:
            log.warning("llmtrack: no API key (set LLMTRACK_API_KEY); events will not be sent")
        self._thread = threading.Thread(target=self._run, name="llmtrack-sender", daemon=True)
        self._thread.start()
        # A weak reference, so registering at exit does not keep the tracker alive.
        ref = weakref.ref(self)
        atexit.register(lambda: (t := ref()) is not None and t.close())

    # -- the caller's side -------------------------------------------------------------

    def record(self, event: Mapping[str, Any]) -> Optional[str]:
        """Queues one event (the `POST /v1/events` contract) and returns its id, or None when it
        could not be queued. An id and a timestamp are added when missing, so the event keeps
        its identity across retries."""
        try:
            e = dict(event)
            context = _labels.get()
            for key in ("feature", "user_id"):
                if e.get(key) is None and context.get(key) is not None:
                    e[key] = context[key]
            if context.get("metadata"):
                e["metadata"] = {**context["metadata"], **(e.get("metadata") or {})}
            e = {k: v for k, v in e.items() if v is not None}
            e.setdefault("id", new_id())
            e.setdefault("timestamp", int(time.time() * 1000))
            with self._lock:
                if self._closed:
                    return None
                if len(self._queue) >= self.max_queue:
                    self.dropped += 1
                    if self.dropped == 1 or self.dropped % 1000 == 0:
                        log.warning("llmtrack: queue full (%d events); %d dropped", self.max_queue, self.dropped)
                    return None
                self._queue.append(e)
                if len(self._queue) >= self.batch_size:
                    self._wake = True
                    self._lock.notify_all()
            return e["id"]
        except Exception:  # never into the caller's request path
            log.exception("llmtrack: could not record an event")
            return None

    def check_budget(
        self,
        *,
        model: Optional[str] = None,
        feature: Optional[str] = None,
        user_id: Optional[str] = None,
    ) -> BudgetCheck:
        """Asks LLMtrack whether a call may go ahead (`GET /v1/budgets/check`): the budgets
        that apply to this model, feature and end-user (and to this key's source), and the
        strictest answer among them. `feature` and `user_id` default to those of the enclosing
        `llmtrack.labels(...)` block.

        Answers are cached for `budget_ttl` seconds per (model, feature, user). When LLMtrack
        cannot answer (network error, timeout, 5xx, 429), the answer is "allow" with `error`
        set, unless the tracker was made with `fail_open=False`: then `BudgetCheckError` is
        raised. A refusal asking again cannot fix (401 wrong key, 403 key of another scope, 400)
        always raises `BudgetCheckError`."""
        return self._budgets.check(self._budget_key(model, feature, user_id))

    def guard(
        self,
        *,
        model: Optional[str] = None,
        feature: Optional[str] = None,
        user_id: Optional[str] = None,
    ) -> BudgetCheck:
        """`check_budget`, raising `BudgetExceeded` (which carries the check) when the answer is
        deny; returns the check otherwise (look at `check.warning` to act on a warn)."""
        check = self.check_budget(model=model, feature=feature, user_id=user_id)
        if not check.allowed:
            raise BudgetExceeded(check)
        return check

    async def acheck_budget(
        self,
        *,
        model: Optional[str] = None,
        feature: Optional[str] = None,
        user_id: Optional[str] = None,
    ) -> BudgetCheck:
        """`check_budget` for async code: a cached answer at once, else asked from a worker
        thread, not on the event loop."""
        import asyncio

        key = self._budget_key(model, feature, user_id)
        hit = self._budgets.cached(key)
        if hit is not None:
            return hit
        return await asyncio.to_thread(self._budgets.check, key)

    async def aguard(
        self,
        *,
        model: Optional[str] = None,
        feature: Optional[str] = None,
        user_id: Optional[str] = None,
    ) -> BudgetCheck:
        """`guard` for async code."""
        check = await self.acheck_budget(model=model, feature=feature, user_id=user_id)
        if not check.allowed:
            raise BudgetExceeded(check)
        return check

    def clear_budget_cache(self) -> None:
        """Forgets cached budget answers: the next check asks LLMtrack."""
        self._budgets.clear()

    @staticmethod
    def _budget_key(model: Optional[str], feature: Optional[str], user_id: Optional[str]):
        context = _labels.get()
        feature = feature if feature is not None else context.get("feature")
        user_id = user_id if user_id is not None else context.get("user_id")
        return (model, feature, user_id)

    @property
    def pending(self) -> int:
        """Events queued or being sent."""
        with self._lock:
            return len(self._queue) + len(self._in_flight)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every event recorded so far is delivered (or refused); False if
        `timeout` seconds passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._wake = True
            self._lock.notify_all()
            while self._queue or self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(0.05 if left is None else min(left, 0.05))
        return True

    async def aflush(self, timeout: Optional[float] = None) -> bool:
        """`flush` for async code: waits in a worker thread, not on the event loop."""
        import asyncio

        return await asyncio.to_thread(self.flush, timeout)

    def close(self) -> None:
        """Sends what is left (for up to `shutdown_timeout` seconds) and stops."""
        if self._closed:
            return
        self.flush(self.shutdown_timeout)
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(self.shutdown_timeout)
        with contextlib.suppress(Exception):
            self._http.close()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the sender thread -------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while True:
            with self._lock:
                if not self._wake and not self._closed:
                    self._lock.wait(self.flush_interval)
                self._wake = False
                if self._closed and not self._queue:
                    return
                if not self._queue:
                    continue
                take = min(self.batch_size, len(self._queue))
                self._in_flight = [self._queue.popleft() for _ in range(take)]
                batch = self._in_flight
            retry_after = self._send(batch)
            with self._lock:
                if retry_after is None:
                    self._in_flight = []
                    failures = 0
                else:
                    # Back to the front, in order: the same ids are sent again.
                    self._queue.extendleft(reversed(batch))
                    self._in_flight = []
                    failures += 1
                self._lock.notify_all()
                if self._closed and retry_after is not None:
                    return
            if retry_after is not None:
                backoff = min(self.max_backoff, 0.5 * 2 ** min(failures, 8)) * (0.5 + random.random() / 2)
                self._sleep(max(backoff, retry_after))

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            if not self._closed:
                self._lock.wait(seconds)

    def _send(self, batch: List[Dict[str, Any]]) -> Optional[float]:
        """Sends one batch. None when it is settled (delivered, or refused for good); otherwise
        how many seconds to wait at least before sending it again."""
        if not self.api_key:
            self.rejected += len(batch)
            return None
        try:
            r = self._http.post(
                f"{self.base_url}/v1/events",
                json={"events": batch},
                headers={"Authorization": f"Bearer {self.api_key}"},
            )
        except httpx.HTTPError as e:
            log.info("llmtrack: sending %d events failed (%s); will retry", len(batch), type(e).__name__)
            return 0.0
        if r.status_code in (200, 207):
            body = _json(r)
            rejected = [x for x in body.get("results", []) if x.get("status") == "rejected"]
            self.delivered += len(batch) - len(rejected)
            self.rejected += len(rejected)
            for x in rejected[:5]:
                err = x.get("error") or {}
                log.warning("llmtrack: event %s rejected: %s %s", x.get("index"), err.get("field", ""), err.get("message", ""))
            return None
        if r.status_code == 413 and len(batch) > 1:
            half = len(batch) // 2
            first = self._send(batch[:half])
            if first is not None:
                return first
            # The first half is settled: only the second is sent again if it fails.
            rest = self._send(batch[half:])
            if rest is not None:
                del batch[:half]
            return rest
        code = (_json(r).get("error") or {}).get("code")
        if r.status_code == 429 and code != "quota_exceeded" or r.status_code >= 500:
            return _retry_after(r)
        # 400 (nothing valid), 401/403 (the key), quota used up: sending again cannot help.
        self.rejected += len(batch)
        log.error("llmtrack: %d events refused (%d %s): %s", len(batch), r.status_code, code, (_json(r).get("error") or {}).get("message", r.text[:200]))
        return None


def new_id() -> str:
    """A random event id of letters only (122 bits): a hex id now and then holds a run of digits
    that passes the card-number check LLMtrack applies to ids, and is refused."""
    return "py_" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(26))


def _json(r: httpx.Response) -> Dict[str, Any]:
    try:
        body = r.json()
        return body if isinstance(body, dict) else {}
    except ValueError:
        return {}


def _retry_after(r: httpx.Response) -> float:
    try:
        return max(0.0, float(r.headers.get("retry-after", "0")))
    except ValueError:
        return 0.0
