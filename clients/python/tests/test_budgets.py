"""Budget checks against a real `serve`: a feature's monthly budget allows, then warns past its
warning share, then denies once spent (and `guard` raises); budgets of other features do not
apply; answers are cached for the TTL; a LLMtrack that cannot answer lets calls through (or
raises when told to fail closed); a wrong key raises."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import llmtrack
from llmtrack import BudgetCheck, BudgetCheckError, BudgetExceeded, BudgetScope
from conftest import free_port


def spend(tracker: llmtrack.Tracker, usd: float, feature: str, n: int = 2) -> None:
    """Records `n` calls costing `usd` in all, and waits until LLMtrack has them."""
    for _ in range(n):
        tracker.record(
            {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100, "feature": feature, "cost_usd": usd / n}
        )
    assert tracker.flush(10)
    assert tracker.rejected == 0


def test_a_feature_budget_allows_then_warns_then_denies(workspace):
    search = workspace.add_budget("Search", 10, scope={"dimension": "feature", "value": "search"}, warn_pct=80)
    workspace.add_budget("Chat", 1, scope={"dimension": "feature", "value": "chat"})
    workspace.add_budget("Python services", 100, scope={"dimension": "source", "value": "python"}, deny=False)
    tracker = llmtrack.Tracker(workspace.key, workspace.base, flush_interval=0.05, budget_ttl=0)

    check = tracker.check_budget(feature="search", model="gpt-4o", user_id="u-1")
    assert isinstance(check, BudgetCheck)
    assert (check.decision, check.allowed, check.warning, check.error) == ("allow", True, False, None)
    assert sorted(b.name for b in check.budgets) == ["Python services", "Search"]
    s = next(b for b in check.budgets if b.name == "Search")
    assert s.id == search["id"] and s.id.startswith("bdg_")
    assert s.scope == BudgetScope("feature", "search")
    assert (s.amount_usd, s.spent_usd, s.remaining_usd, s.used_pct, s.decision) == (10, 0, 10, 0, "allow")
    assert s.period_end and s.period_end.endswith("Z")
    assert check.remaining_usd == pytest.approx(10), "the least left among the budgets that apply"

    spend(tracker, 5, "search")
    check = tracker.guard(feature="search", model="gpt-4o")
    assert check.decision == "allow" and check.remaining_usd == pytest.approx(5)

    spend(tracker, 3.5, "search")
    check = tracker.guard(feature="search")
    assert (check.decision, check.allowed, check.warning) == ("warn", True, True)
    s = next(b for b in check.budgets if b.name == "Search")
    assert s.spent_usd == pytest.approx(8.5) and s.used_pct == pytest.approx(85) and s.decision == "warn"
    assert check.remaining_usd == pytest.approx(1.5)

    spend(tracker, 2, "search")
    check = tracker.check_budget(feature="search")
    assert (check.decision, check.allowed) == ("deny", False)
    assert [b.name for b in check.exceeded] == ["Search"]
    assert check.remaining_usd is not None and check.remaining_usd <= 0
    with pytest.raises(BudgetExceeded) as raised:
        tracker.guard(feature="search", model="gpt-4o", user_id="u-1")
    assert raised.value.check.decision == "deny"
    assert "'Search' is used up: $10.50 of $10.00" in str(raised.value)

    # Another feature's budget does not apply; the source's (which only warns) applies to all.
    chat = tracker.guard(feature="chat")
    assert chat.decision == "allow"
    assert sorted(b.name for b in chat.budgets) == ["Chat", "Python services"]
    assert chat.remaining_usd == pytest.approx(1)
    whole = tracker.check_budget()
    assert [b.name for b in whole.budgets] == ["Python services"]
    assert whole.remaining_usd == pytest.approx(100 - 10.5)

    # The feature (and user) of an enclosing labels block are those checked.
    with llmtrack.labels(feature="search"):
        assert tracker.check_budget().decision == "deny"
        assert tracker.check_budget(feature="chat").decision == "allow"

    async def async_side() -> None:
        with pytest.raises(BudgetExceeded):
            await tracker.aguard(feature="search")
        assert (await tracker.acheck_budget(feature="chat")).allowed

    asyncio.run(async_side())
    tracker.close()


def test_a_workspace_without_budgets_allows_everything(workspace):
    tracker = llmtrack.Tracker(workspace.key, workspace.base, budget_ttl=0)
    check = tracker.guard(feature="search", model="gpt-4o", user_id="u-1")
    assert check == BudgetCheck(decision="allow", remaining_usd=None, budgets=())
    tracker.close()


def test_answers_are_cached_for_the_ttl_per_model_feature_and_user(workspace):
    workspace.add_budget("Loop", 1, scope={"dimension": "feature", "value": "loop"})
    cached = llmtrack.Tracker(workspace.key, workspace.base, flush_interval=0.05, budget_ttl=60)
    now = [1000.0]
    cached._budgets._clock = lambda: now[0]
    fresh = llmtrack.Tracker(workspace.key, workspace.base, budget_ttl=0)

    first = cached.guard(feature="loop", user_id="u-1")
    assert first.decision == "allow"
    spend(cached, 2, "loop")
    assert fresh.check_budget(feature="loop", user_id="u-1").decision == "deny"

    now[0] += 59
    assert cached.guard(feature="loop", user_id="u-1") is first, "within the TTL: not asked again"
    assert cached.check_budget(feature="loop", user_id="u-2").decision == "deny", "another user: asked"
    assert cached.check_budget(feature="loop", user_id="u-1", model="gpt-4o").decision == "deny", "another model: asked"
    now[0] += 1
    with pytest.raises(BudgetExceeded):
        cached.guard(feature="loop", user_id="u-1")

    second = cached.check_budget(feature="loop")
    assert cached.check_budget(feature="loop") is second
    cached.clear_budget_cache()
    assert cached.check_budget(feature="loop") is not second
    cached.close()
    fresh.close()


class Answering:
    """An HTTP server answering every request with `status`, as a broken proxy in front of
    LLMtrack would; counts the requests."""

    def __init__(self, status: int) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.requests += 1
                body = b'{"error": {"code": "unavailable", "message": "try later"}}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_checks_fail_open_when_llmtrack_cannot_answer(workspace, caplog):
    closed = f"http://127.0.0.1:{free_port()}"
    tracker = llmtrack.Tracker(workspace.key, closed, budget_ttl=0)
    with caplog.at_level(logging.DEBUG, logger="llmtrack"):
        checks = [tracker.guard(feature="search") for _ in range(3)]
    assert all(c.decision == "allow" and c.allowed and c.budgets == () and c.error for c in checks)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "budget check failed" in r.getMessage()]
    assert len(warnings) == 1, "one warning per outage"
    tracker.close()

    closed_tracker = llmtrack.Tracker(workspace.key, closed, budget_ttl=0, fail_open=False)
    with pytest.raises(BudgetCheckError) as raised:
        closed_tracker.guard(feature="search")
    assert raised.value.status is None
    closed_tracker.close()

    # A 5xx (or 429) is LLMtrack not answering too; the fallback is cached like an answer, so a
    # down LLMtrack is asked once per TTL, not once per call.
    broken = Answering(503)
    try:
        tracker = llmtrack.Tracker(workspace.key, broken.base, budget_ttl=60)
        first = tracker.check_budget(feature="search")
        assert first.allowed and "503" in first.error and "try later" in first.error
        assert tracker.check_budget(feature="search") is first and broken.requests == 1
        tracker.close()
        strict = llmtrack.Tracker(workspace.key, broken.base, fail_open=False)
        with pytest.raises(BudgetCheckError) as raised:
            strict.check_budget()
        assert (raised.value.status, raised.value.code) == (503, "unavailable")
        strict.close()
    finally:
        broken.close()

    # A server that takes the connection and never answers: the check waits `budget_timeout`.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        tracker = llmtrack.Tracker(workspace.key, f"http://127.0.0.1:{port}", budget_timeout=0.3)
        started = time.monotonic()
        check = tracker.guard(feature="search")
        assert time.monotonic() - started < 2
        assert check.allowed and "no answer within 0.3 s" in check.error
        tracker.close()


def test_a_wrong_key_raises_even_when_failing_open(workspace):
    bad = llmtrack.Tracker("llmt_not_a_key", workspace.base, budget_ttl=60)
    for call in (bad.check_budget, bad.guard):
        with pytest.raises(BudgetCheckError) as raised:
            call(feature="search")
        assert raised.value.status == 401 and raised.value.code
        assert "401" in str(raised.value)
    bad.close()

    read_only = llmtrack.Tracker(workspace.read_key, workspace.base)
    with pytest.raises(BudgetCheckError) as raised:
        read_only.check_budget(feature="search")
    assert raised.value.status == 403
    read_only.close()
