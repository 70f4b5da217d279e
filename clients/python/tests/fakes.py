"""Local stand-ins for the OpenAI and Anthropic APIs: the real SDKs talk to them over HTTP and
get answers shaped as the real APIs' (field for field as documented at
platform.openai.com/docs/api-reference and docs.anthropic.com/en/api/messages, including the
streaming event sequences), with fixed usage objects the tests compare against."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List

CREATED = 1_764_700_000

CHAT_USAGE = {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
REASONING_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 900,
    "total_tokens": 2100,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 700,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}
RESPONSES_USAGE = {
    "input_tokens": 1200,
    "input_tokens_details": {"cached_tokens": 1024},
    "output_tokens": 500,
    "output_tokens_details": {"reasoning_tokens": 384},
    "total_tokens": 1700,
}
ANTHROPIC_USAGE = {
    "input_tokens": 50,
    "cache_creation_input_tokens": 1000,
    "cache_read_input_tokens": 3000,
    "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 600},
    "output_tokens": 120,
    "service_tier": "standard",
}
#: The dated model each request's model answers as.
ANSWERED_AS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "o3": "o3-2025-04-16",
    "o4-mini": "o4-mini-2025-04-16",
    "claude-sonnet-4-6": "claude-sonnet-4-6",
}


class FakeProviders:
    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.counter = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                fake.requests.append({"path": self.path, "body": body})
                fake.counter += 1
                n = fake.counter
                model = body.get("model", "")
                if model == "overloaded":
                    return self._json(529 if self.path.endswith("/messages") else 429, _error(self.path))
                if self.path.endswith("/chat/completions"):
                    return self._chat(body, n)
                if self.path.endswith("/responses"):
                    return self._responses(body, n)
                if self.path.endswith("/messages"):
                    return self._messages(body, n)
                self._json(404, {"error": {"message": "not found"}})

            def _json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, events: List[Any], named: bool = False) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                for e in events:
                    if e == "[DONE]":
                        self.wfile.write(b"data: [DONE]\n\n")
                        continue
                    if named:
                        self.wfile.write(f"event: {e['type']}\n".encode())
                    self.wfile.write(f"data: {json.dumps(e)}\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

            def _chat(self, body: Dict[str, Any], n: int) -> None:
                model = ANSWERED_AS.get(body["model"], body["model"])
                usage = REASONING_USAGE if body["model"].startswith("o") else CHAT_USAGE
                cid = f"chatcmpl-fake{n:06d}"
                if not body.get("stream"):
                    return self._json(200, {
                        "id": cid,
                        "object": "chat.completion",
                        "created": CREATED,
                        "model": model,
                        "choices": [{
                            "index": 0,
                            "message": {"role": "assistant", "content": "Hello there.", "refusal": None, "annotations": []},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }],
                        "usage": usage,
                        "service_tier": "default",
                        "system_fingerprint": "fp_fake",
                    })
                def chunk(delta: Dict[str, Any], finish: Any = None) -> Dict[str, Any]:
                    return {
                        "id": cid, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                        "service_tier": "default", "system_fingerprint": "fp_fake",
                        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                        "usage": None,
                    }
                events: List[Any] = [
                    chunk({"role": "assistant", "content": "", "refusal": None}),
                    chunk({"content": "Hello"}),
                    chunk({"content": " there."}),
                    chunk({}, "stop"),
                ]
                if (body.get("stream_options") or {}).get("include_usage"):
                    last = chunk({})
                    last["choices"] = []
                    last["usage"] = usage
                    events.append(last)
                events.append("[DONE]")
                self._sse(events)

            def _responses(self, body: Dict[str, Any], n: int) -> None:
                model = ANSWERED_AS.get(body["model"], body["model"])
                rid = f"resp_fake{n:06d}"
                message = {
                    "type": "message", "id": f"msg_fake{n:06d}", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello there.", "annotations": [], "logprobs": []}],
                }
                def response(status: str, usage: Any, output: List[Any]) -> Dict[str, Any]:
                    return {
                        "id": rid, "object": "response", "created_at": CREATED, "status": status,
                        "model": model, "output": output, "usage": usage, "parallel_tool_calls": True,
                        "tool_choice": "auto", "tools": [], "error": None, "incomplete_details": None,
                        "instructions": None, "metadata": {}, "temperature": 1.0, "top_p": 1.0,
                        "service_tier": "default", "store": True, "text": {"format": {"type": "text"}},
                        "truncation": "disabled", "reasoning": {"effort": "medium", "summary": None},
                    }
                if not body.get("stream"):
                    return self._json(200, response("completed", RESPONSES_USAGE, [message]))
                self._sse([
                    {"type": "response.created", "sequence_number": 0, "response": response("in_progress", None, [])},
                    {"type": "response.output_text.delta", "sequence_number": 1, "item_id": message["id"],
                     "output_index": 0, "content_index": 0, "delta": "Hello there.", "logprobs": []},
                    {"type": "response.completed", "sequence_number": 2,
                     "response": response("completed", RESPONSES_USAGE, [message])},
                ], named=True)

            def _messages(self, body: Dict[str, Any], n: int) -> None:
                model = ANSWERED_AS.get(body["model"], body["model"])
                mid = f"msg_fake{n:06d}"
                if not body.get("stream"):
                    return self._json(200, {
                        "id": mid, "type": "message", "role": "assistant", "model": model,
                        "content": [{"type": "text", "text": "Hello there."}],
                        "stop_reason": "end_turn", "stop_sequence": None, "usage": ANTHROPIC_USAGE,
                    })
                start_usage = {k: v for k, v in ANTHROPIC_USAGE.items()}
                start_usage["output_tokens"] = 1
                self._sse([
                    {"type": "message_start", "message": {
                        "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
                        "stop_reason": None, "stop_sequence": None, "usage": start_usage}},
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello there."}},
                    {"type": "content_block_stop", "index": 0},
                    {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                     "usage": {"output_tokens": ANTHROPIC_USAGE["output_tokens"]}},
                    {"type": "message_stop"},
                ], named=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()


def _error(path: str) -> Dict[str, Any]:
    if path.endswith("/messages"):
        return {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    return {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
