"""A real `llmtrack serve` (the binary `LLMTRACK_BIN` names) over its own SQLite store for the
whole run, a fresh workspace with its keys for each test, and the local provider fakes."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

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
    #: The member the tests sign in as, to do what only a session may (budgets).
    ADMIN = "client-tests@example.com"

    def __init__(self, data_dir: str, base: str) -> None:
        self.data_dir = data_dir
        self.base = base
        self._session: Optional[httpx.Client] = None

    def admin(self, *args: str) -> Dict[str, Any]:
        out = subprocess.run(
            [BIN, "admin", "--data-dir", self.data_dir, "--json", *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return json.loads(out.stdout)

    def session(self) -> httpx.Client:
        """An HTTP client signed in as `ADMIN` (by the code the server writes to its outbox),
        once for the run: sign-ins are rate limited per address."""
        if self._session is None:
            outbox = Path(self.data_dir) / "outbox"
            before = set(outbox.glob("*.eml")) if outbox.exists() else set()
            http = httpx.Client(base_url=self.base, headers={"origin": self.base})
            r = http.post("/v1/auth/email", json={"email": self.ADMIN})
            assert r.status_code == 202, r.text
            deadline = time.monotonic() + 15
            code = None
            while code is None:
                for f in sorted(set(outbox.glob("*.eml")) - before):
                    mail = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
                    m = re.search(r"sign-in code: (\d{6})", str(mail["subject"]))
                    if self.ADMIN in str(mail["to"]) and m:
                        code = m.group(1)
                assert code or time.monotonic() < deadline, "no sign-in code in the outbox"
                time.sleep(0.05)
            r = http.post("/v1/auth/verify", json={"email": self.ADMIN, "code": code})
            assert r.status_code == 200, r.text
            self._session = http
        return self._session


class Workspace:
    """A workspace of the running server, with an ingest key and a read key."""

    def __init__(self, server: Server) -> None:
        self.server = server
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

    def add_budget(self, name: str, amount_usd: float, **fields: Any) -> Dict[str, Any]:
        """Adds a budget (monthly and for the whole workspace unless `fields` say otherwise)
        through the API, as a workspace admin signed in."""
        self.server.admin("add-member", "--workspace", self.id, "--email", Server.ADMIN, "--role", "admin")
        body = {"name": name, "amount_usd": amount_usd, "period": {"kind": "month"}, **fields}
        r = self.server.session().post(f"/v1/workspaces/{self.id}/budgets", json=body)
        assert r.status_code == 201, r.text
        return r.json()

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
        srv: Optional[Server] = None
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
            srv = Server(data_dir, base)
            yield srv
        finally:
            if srv is not None and srv._session is not None:
                srv._session.close()
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
