"""A scripted OpenAI-compatible HTTP server for tests: real sockets on 127.0.0.1, no patching.

    server = FakeOpenAIServer().start()
    server.script(Scripted(body=completion_body(["hello"])), Scripted(status=429, ...))
    client = LLMClient(LLMConfig(base_url=server.base_url), ...)
    ...
    server.received   # every request: path, headers (lower-case names), parsed JSON body, and
                      # received_s (time.monotonic() on arrival: waits between requests)
    server.stop()

Only ``POST /v1/chat/completions`` is served; anything else gets 404. Each request takes the
next scripted response; when the script is empty the server answers 500 "script exhausted" so
a test that sends more than it planned fails loudly.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHAT_PATH = "/v1/chat/completions"


@dataclass
class Scripted:
    """One response: ``raw`` bytes are sent as they are; else ``body`` as JSON."""

    status: int = 200
    headers: dict = field(default_factory=dict)
    body: object = None
    raw: bytes | None = None
    delay_s: float = 0.0


def completion_body(contents: list[str], prompt_tokens: int = 10, completion_tokens: int = 20,
                    finish_reason: str = "stop", model: str = "gpt-4o-mini") -> dict:
    """A chat-completions response with one choice per content."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": i, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": content}}
                    for i, content in enumerate(contents)],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def error_body(message: str, kind: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class FakeOpenAIServer:
    def __init__(self):
        self._lock = threading.Lock()
        self._script: deque[Scripted] = deque()
        self.received: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True  # a reply still sleeping past a client timeout must not block stop()
        # A short poll interval makes stop() quick (shutdown waits for the next poll).
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self):
        if self._thread.is_alive():  # shutdown() waits forever on a server never started
            self._httpd.shutdown()
        self._httpd.server_close()

    def script(self, *responses: Scripted):
        with self._lock:
            self._script.extend(responses)

    def chat_requests(self) -> list[dict]:
        with self._lock:
            return [r for r in self.received if r["path"] == CHAT_PATH]

    def _next(self, record: dict) -> Scripted:
        with self._lock:
            self.received.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self._script:
                return self._script.popleft()
        return Scripted(status=500, body=error_body("fake server: script exhausted", "server_error"))

    def _done(self):
        with self._lock:
            self.in_flight -= 1

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw_body = self.rfile.read(length)
                try:
                    body = json.loads(raw_body)
                except ValueError:
                    body = raw_body.decode(errors="replace")
                record = self._record(body)
                if self.path != CHAT_PATH:
                    with server._lock:
                        server.received.append(record)
                    self._send(Scripted(status=404, body=error_body(f"no route {self.path}")))
                    return
                scripted = server._next(record)
                try:
                    time.sleep(scripted.delay_s)
                    self._send(scripted)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): expected in timeout tests
                finally:
                    server._done()

            def do_GET(self):
                with server._lock:
                    server.received.append(self._record(None))
                self._send(Scripted(status=404, body=error_body(f"no route {self.path}")))

            def _record(self, body) -> dict:
                headers = {name.lower(): value for name, value in self.headers.items()}
                return {"path": self.path, "headers": headers, "body": body, "received_s": time.monotonic()}

            def _send(self, scripted: Scripted):
                payload = scripted.raw if scripted.raw is not None else json.dumps(scripted.body).encode()
                self.send_response(scripted.status)
                headers = {"Content-Type": "application/json", **scripted.headers}
                for name, value in headers.items():
                    self.send_header(name, str(value))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()

            def log_message(self, format, *args):
                pass  # keep test output clean

        return Handler
