"""The batching sender against a real `serve`: it outlasts the server being down, resends with
the same ids when an answer is lost (so nothing is counted twice), keeps its queue bounded,
never raises into the caller, and delivers what is left when the process exits."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

import llmtrack
from conftest import free_port


class FlakyProxy:
    """Forwards to `serve`; the first `lose` answers are dropped after `serve` has stored the
    events (the connection is cut), as when a network fails on the way back."""

    def __init__(self, port: int, target: str, lose: int) -> None:
        self.lose = lose
        self.forwarded = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                r = httpx.post(
                    f"{target}{self.path}",
                    content=body,
                    headers={k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")},
                )
                proxy.forwarded += 1
                if proxy.lose > 0:
                    proxy.lose -= 1
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.send_response(r.status_code)
                self.send_header("content-type", r.headers.get("content-type", "application/json"))
                self.send_header("content-length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def event(i: int) -> dict:
    return {"provider": "openai", "model": "gpt-4o", "input_tokens": 100 + i, "output_tokens": 10, "feature": "sender"}


def test_events_wait_out_a_down_server_and_a_lost_answer_is_not_counted_twice(workspace):
    port = free_port()
    tracker = llmtrack.Tracker(workspace.key, f"http://127.0.0.1:{port}", flush_interval=0.05, batch_size=20, max_backoff=0.3)
    ids = [tracker.record(event(i)) for i in range(50)]
    assert all(ids) and len(set(ids)) == 50
    time.sleep(1.0)  # nothing listens: every attempt fails, the events wait
    assert tracker.pending == 50 and tracker.delivered == 0

    proxy = FlakyProxy(port, workspace.base, lose=2)
    try:
        assert tracker.flush(20)
    finally:
        proxy.close()
    assert proxy.forwarded >= 5, "three batches, two of them sent twice"
    events = workspace.events()
    missing = sorted(set(ids) - {e["id"] for e in events})
    assert not missing, (missing, tracker.delivered, tracker.rejected, proxy.forwarded)
    assert sorted(e["id"] for e in events) == sorted(ids)
    assert sum(e["input_tokens"] for e in events) == sum(100 + i for i in range(50))
    assert (tracker.delivered, tracker.rejected, tracker.dropped) == (50, 0, 0)
    tracker.close()


def test_the_queue_is_bounded_and_recording_never_raises(workspace):
    port = free_port()
    tracker = llmtrack.Tracker(workspace.key, f"http://127.0.0.1:{port}", max_queue=10, flush_interval=0.05, max_backoff=0.2)
    kept = [tracker.record(event(i)) for i in range(15)]
    assert sum(1 for k in kept if k) == 10 and tracker.dropped == 5
    assert tracker.record(None) is None, "not an event: refused without raising"
    assert tracker.flush(0.3) is False, "nothing can be delivered while the server is down"
    tracker.shutdown_timeout = 0.2
    tracker.close()


def test_refused_events_are_counted_not_retried(workspace):
    tracker = llmtrack.Tracker(workspace.key, workspace.base, flush_interval=0.05)
    tracker.record(event(1))
    tracker.record({"provider": "openai", "model": "gpt-4o", "input_tokens": -1})
    assert tracker.flush(10)
    assert (tracker.delivered, tracker.rejected) == (1, 1)
    bad = llmtrack.Tracker("llmt_not_a_key", workspace.base, flush_interval=0.05)
    bad.record(event(2))
    assert bad.flush(10) and bad.rejected == 1
    assert len(workspace.events()) == 1
    tracker.close()
    bad.close()


def test_what_is_left_is_sent_when_the_process_exits(workspace):
    script = textwrap.dedent(
        f"""
        import llmtrack
        t = llmtrack.Tracker({workspace.key!r}, {workspace.base!r}, flush_interval=60)
        for i in range(7):
            t.record({{"provider": "anthropic", "model": "claude-sonnet-4-6", "input_tokens": 5, "output_tokens": 1}})
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=30)
    assert len(workspace.events()) == 7


def test_generated_ids_are_letters_only():
    """Ids the client makes carry no digits, so none can look like a card number to the
    privacy guard (a hex id sometimes did, and its event was refused)."""
    from llmtrack.sender import new_id

    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(i.startswith("py_") and i[3:].isalpha() and i[3:].islower() and len(i) == 29 for i in ids)
