"""Cold start of each Lambda binary, measured against a local Lambda runtime API.

Each function is started as Lambda starts it (`AWS_LAMBDA_RUNTIME_API` names the runtime API,
the environment is the one template.yaml gives it), by a small emulator of the runtime API's three
calls (`invocation/next`, `invocation/{id}/response`, `init/error`). For each start it records:

- ready: from just before the process is spawned to its first `GET invocation/next`, i.e. the
  function's init (its `main` up to the runtime loop) plus exec and the dynamic loader;
- first answer (HTTP functions): from ready to the response of a first request, an API Gateway
  (payload 2.0) `GET` of a path no route serves, which every HTTP function answers 404 without
  calling AWS (a first DynamoDB call adds the TLS handshake with DynamoDB, which no local
  emulator can measure);
- memory at ready: the resident set (VmRSS) when it first asks for work.

It does not measure Lambda's own part (downloading and unpacking the zip, starting the microVM):
AWS reports that as the gap between Init Duration and the invocation in the function's logs.

Run with `make coldstart` (after `make sizes`), or
`python infra/aws/coldstart.py --bin-dir target/release --runs 20`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn  # noqa: E402

# A value for each variable the template sets, shaped as the deployed value is (the template's
# are references resolved at deploy time). A variable missing here fails the run, so a new one
# is not started with nothing.
SAMPLE_ENV = {
    "TABLE_NAME": "llmtrack-coldstart",
    "RUST_LOG": "info",
    "ARCHIVE_BUCKET": "llmtrack-coldstart-archive",
    "PUBLIC_URL": "https://llmtrack.example.com",
    "MAIL_FROM": "reports@example.com",
    "SUPPORT_EMAIL": "support@example.com",
    "BILLING_CONFIGURED": "false",
    "STRIPE_SECRET_KEY": "",
    "STRIPE_WEBHOOK_SECRET": "",
    "SECRETS_REVISION": "1",
    "STRIPE_PRICE_PRO": "",
    "STRIPE_PRICE_TEAM": "",
    "ALERT_SIGNING_KEY": "00" * 32,
    "EDGE_SECRET": "coldstart-edge-secret",
    # Read at start, not called: startup makes no KMS request.
    "SECRETS_KMS_KEY_ID": "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
    # Empty: the real providers' APIs (none is called at start).
    "OPENAI_API_BASE": "",
    "ANTHROPIC_API_BASE": "",
}

# What Lambda itself puts in every function's environment.
LAMBDA_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "ASIACOLDSTARTEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "coldstart",
    "AWS_SESSION_TOKEN": "coldstart",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/coldstart",
    "AWS_LAMBDA_LOG_STREAM_NAME": "coldstart",
    "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    "LAMBDA_TASK_ROOT": "/var/task",
    "TZ": ":UTC",
}

API = "/2018-06-01/runtime"


def http_event(path: str) -> bytes:
    """An API Gateway HTTP API (payload format 2.0) request, as Lambda delivers it."""
    now = int(time.time() * 1000)
    return json.dumps(
        {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"host": "api.example.com", "user-agent": "coldstart"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "coldstart",
                "domainName": "api.example.com",
                "domainPrefix": "api",
                "http": {
                    "method": "GET",
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "192.0.2.1",
                    "userAgent": "coldstart",
                },
                "requestId": "coldstart",
                "routeKey": "$default",
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
                "timeEpoch": now,
            },
            "isBase64Encoded": False,
        }
    ).encode()


class Start:
    """One start of one function, and what the runtime API saw of it."""

    def __init__(self, event: bytes | None):
        self.event = event
        self.t_ready: int | None = None
        self.t_answer: int | None = None
        self.answer: bytes = b""
        self.error: str | None = None
        self.pid: int | None = None
        self.rss_kib: int | None = None
        self.finished = threading.Event()
        self.stop = threading.Event()
        self.calls = 0


def handler_for(start: Start):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # the emulator is quiet
            pass

        def do_GET(self):
            if self.path != f"{API}/invocation/next":
                self.send_error(404)
                return
            start.calls += 1
            if start.calls == 1:
                start.t_ready = time.perf_counter_ns()
                start.rss_kib = rss_kib(start.pid)
                if start.event is None:
                    start.finished.set()
            if start.calls > 1 or start.event is None:
                # No more work: hold the poll until the process is stopped, as Lambda does
                # with an idle (frozen) instance.
                start.stop.wait(30)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(start.event)))
            self.send_header("Lambda-Runtime-Aws-Request-Id", "coldstart-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 15_000))
            self.send_header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:123456789012:function:coldstart",
            )
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.end_headers()
            self.wfile.write(start.event)

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.endswith("/response"):
                start.t_answer = time.perf_counter_ns()
                start.answer = body
            else:  # init/error or invocation/{id}/error
                start.error = f"{self.path}: {body.decode(errors='replace')[:500]}"
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            start.finished.set()

    return Handler


def rss_kib(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The poll held open when the process is stopped ends with a reset: expected.
        pass


def start_once(binary: Path, env: dict[str, str], event: bytes | None, memory_mb: int) -> Start:
    start = Start(event)
    server = QuietServer(("127.0.0.1", 0), handler_for(start))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **LAMBDA_ENV,
        **env,
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": binary.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
    }
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen(
        [str(binary)], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    start.pid = proc.pid
    try:
        deadline = time.monotonic() + 30
        while not start.finished.wait(0.05):
            if proc.poll() is not None:
                start.error = f"exited with {proc.returncode}: {proc.stderr.read().decode()[-800:]}"
                break
            if time.monotonic() > deadline:
                start.error = "no call to the runtime API within 30 s"
                break
    finally:
        start.stop.set()
        proc.kill()
        proc.wait()
        proc.stderr.close()
        server.shutdown()
        server.server_close()
    # Times relative to the spawn.
    if start.t_ready is not None:
        start.t_ready -= t0
    if start.t_answer is not None:
        start.t_answer -= t0
    return start


def functions(template: dict) -> list[tuple[str, dict[str, str], bool, int]]:
    """(binary, environment, serves HTTP, memory MB) for each function of the template."""
    memory_default = template["Globals"]["Function"].get("MemorySize", 128)
    out = []
    for logical_id, f in cfn.functions(template).items():
        binary = f["Metadata"]["BuildProperties"]["Binary"]
        env = {}
        for name in cfn.environment(template, logical_id):
            if name not in SAMPLE_ENV:
                raise SystemExit(f"coldstart: no sample value for {name} (set by {logical_id}); add one to SAMPLE_ENV")
            env[name] = SAMPLE_ENV[name]
        events = f.get("Properties", {}).get("Events", {}) or {}
        http = any(e.get("Type") == "HttpApi" for e in events.values())
        memory = f.get("Properties", {}).get("MemorySize", memory_default)
        out.append((binary, env, http, memory))
    return sorted(out)


def quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def measure(bin_dir: Path, runs: int, only: set[str] | None) -> list[dict]:
    results = []
    for binary, env, http, memory in functions(cfn.load()):
        if only and binary not in only:
            continue
        path = bin_dir / binary
        if not path.exists():
            raise SystemExit(f"coldstart: {path} is missing (build it first: make sizes)")
        event = http_event("/v1/coldstart-probe") if http else None
        ready, answer, rss = [], [], []
        for _ in range(runs):
            s = start_once(path, env, event, memory)
            if s.error or s.t_ready is None:
                raise SystemExit(f"coldstart: {binary} failed to start: {s.error}")
            ready.append(s.t_ready / 1e6)
            if s.rss_kib is not None:
                rss.append(s.rss_kib / 1024)
            if http:
                status = json.loads(s.answer).get("statusCode") if s.answer else None
                if status != 404:
                    raise SystemExit(f"coldstart: {binary} answered the probe with {status}, not 404")
                answer.append((s.t_answer - s.t_ready) / 1e6)
        results.append(
            {
                "binary": binary,
                "size_mib": path.stat().st_size / 1048576,
                "memory_mb": memory,
                "ready_ms": (statistics.median(ready), quantile(ready, 0.9)),
                "answer_ms": (statistics.median(answer), quantile(answer, 0.9)) if answer else None,
                "rss_mib": statistics.median(rss) if rss else None,
            }
        )
    return results


def table(results: list[dict], runs: int) -> str:
    lines = [
        f"| binary | size | ready, median / p90 of {runs} | first answer after ready, median / p90 | memory at ready |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        answer = "{:.2f} / {:.2f} ms".format(*r["answer_ms"]) if r["answer_ms"] else "(not HTTP)"
        rss = f"{r['rss_mib']:.1f} MiB" if r["rss_mib"] is not None else "?"
        lines.append(
            f"| {r['binary']} | {r['size_mib']:.1f} MiB | {r['ready_ms'][0]:.1f} / {r['ready_ms'][1]:.1f} ms | {answer} | {rss} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin-dir", type=Path, default=cfn.ROOT / "target" / "release")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", help="comma-separated binaries (default: every function)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    results = measure(args.bin_dir, args.runs, only)
    print(json.dumps(results, indent=2) if args.json else table(results, args.runs))


if __name__ == "__main__":
    main()
