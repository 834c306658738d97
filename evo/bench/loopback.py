"""A scripted model server on 127.0.0.1 that speaks the Anthropic Messages API and OpenAI chat
completions, for the real clients to talk to.

The tests script it reply by reply (the only fake in the suite: the remote service); `evo bench
overhead` gives it a function that answers every request, to set a mutation latency. It never
listens beyond loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    """One scripted answer: a text reply, or an HTTP error, optionally after a delay."""

    text: str = ""
    status: int = 200
    delay: float = 0.0
    usage: dict = field(default_factory=lambda: {"input_tokens": 1000, "output_tokens": 200})
    raw: bytes | None = None  # sent as the body as it is (garbage)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict


class ModelServer:
    """Answers with the scripted replies in order, then with `default(request)`; without a
    default, an empty script answers HTTP 500."""

    def __init__(self, default: Callable[[Request], Reply] | None = None) -> None:
        self.script: list[Reply] = []
        self.default = default
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with server._lock:
                    server.requests.append(request)
                    reply = server.script.pop(0) if server.script else None
                if reply is None:
                    reply = server.default(request) if server.default else Reply(status=500)
                time.sleep(reply.delay)
                payload = reply.raw or json.dumps(server._payload(self.path, body, reply)).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("retry-after-ms", "10")  # keeps the clients' back-off short
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)  # a client that timed out has gone

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def reset(self, *replies: Reply) -> None:
        with self._lock:
            self.script = list(replies)
            self.requests = []

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def _payload(path: str, body: dict, reply: Reply) -> dict:
        if reply.status != 200:
            kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(reply.status, "api_error")
            return {"type": "error", "error": {"type": kind, "message": f"scripted {reply.status}"}}
        if path.endswith("/chat/completions"):
            u = reply.usage
            return {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": reply.text},
                    }
                ],
                "usage": {
                    "prompt_tokens": u["input_tokens"] + u.get("cache_read_input_tokens", 0),
                    "completion_tokens": u["output_tokens"],
                    "prompt_tokens_details": {"cached_tokens": u.get("cache_read_input_tokens", 0)},
                },
            }
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [{"type": "text", "text": reply.text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                **reply.usage,
            },
        }


@contextlib.contextmanager
def loopback_model(answer: Callable[[Request], Reply]) -> Iterator[ModelServer]:
    """A model server on 127.0.0.1 that gives every request `answer(request)`, set as the
    anthropic operator's endpoint (with a key of its own) for the block."""
    server = ModelServer(default=answer)
    saved = {k: os.environ.get(k) for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    os.environ.update(ANTHROPIC_API_KEY="loopback", ANTHROPIC_BASE_URL=server.url)
    try:
        yield server
    finally:
        server.close()
        for key, value in saved.items():
            if value is None:
                del os.environ[key]
            else:
                os.environ[key] = value
