"""A real `llmtrack serve` (the binary `LLMTRACK_BIN` names) over its own SQLite store for the
whole run, a fresh workspace with its keys for each test, and the local provider fakes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import httpx
import pytest

from fakes import FakeProviders

# LiteLLM would fetch its price map from GitHub on import; the tests have no network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parents[3]
BIN = os.environ.get("LLMTRACK_BIN") or str(ROOT / "target" / "debug" / "llmtrack")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, data_dir: str, base: str) -> None:
        self.data_dir = data_dir
        self.base = base

    def admin(self, *args: str) -> Dict[str, Any]:
        out = subprocess.run(
            [BIN, "admin", "--data-dir", self.data_dir, "--json", *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout)


class Workspace:
    """A workspace of the running server, with an ingest key and a read key."""

    def __init__(self, server: Server) -> None:
        self.base = server.base
        self.id = server.admin("create-workspace", "--name", "python client", "--plan", "pro")["id"]
        self.key = server.admin("create-key", "--workspace", self.id, "--name", "ingest", "--source", "python")["key"]
        self.read_key = server.admin(
            "create-key", "--workspace", self.id, "--name", "read", "--source", "tests", "--scope", "read"
        )["key"]

    def get(self, path: str, **params: Any) -> Dict[str, Any]:
        r = httpx.get(f"{self.base}{path}", params=params, headers={"Authorization": f"Bearer {self.read_key}"})
        assert r.status_code == 200, r.text
        return r.json()

    def events(self) -> List[Dict[str, Any]]:
        """Every event stored in the last day, oldest first."""
        out: List[Dict[str, Any]] = []
        cursor = None
        while True:
            params: Dict[str, Any] = {"from": "last_24h", "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = self.get("/v1/events", **params)
            out.extend(page["events"])
            cursor = page.get("next_cursor")
            if not cursor:
                return sorted(out, key=lambda e: (e["timestamp"], e["id"]))

    def summary(self) -> Dict[str, Any]:
        return self.get("/v1/stats/summary", **{"from": "last_24h"})["metrics"]


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = open(os.path.join(data_dir, "serve.log"), "w")
        proc = subprocess.Popen(
            [BIN, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, open(os.path.join(data_dir, "serve.log")).read()
                assert time.monotonic() < deadline, "llmtrack serve did not start"
                time.sleep(0.1)
            yield Server(data_dir, base)
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()


@pytest.fixture
def workspace(server: Server) -> Workspace:
    return Workspace(server)


@pytest.fixture(scope="session")
def providers() -> Iterator[FakeProviders]:
    fake = FakeProviders()
    try:
        yield fake
    finally:
        fake.close()
