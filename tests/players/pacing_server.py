"""A loopback HTTP server for browser tests: static routes, some of them paced by a throughput trace.

The paced routes emulate one bottleneck link per trace: bytes leave the server no faster than
the trace allows, and every response waits ``latency_s`` before its first byte (Pensieve adds an
80 ms RTT to every chunk). A trace is a list of ``(duration_s, mbps)`` steps that loops; its clock
starts at the first paced request on that link, so browser start-up does not eat into it.

Routes map a URL prefix to a folder; a paced route's first path component after the prefix
names the trace: ``/stream/<trace>/manifest.mpd`` is served from the stream folder at the rate
of trace ``<trace>``. Every paced response is recorded (path, bytes, first and last byte times)
so a test can compare what the player measured with what the server sent.
"""

from __future__ import annotations

import mimetypes
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CONTENT_TYPES = {
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".wasm": "application/wasm",
    ".mjs": "text/javascript",
    ".js": "text/javascript",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
    ".html": "text/html; charset=utf-8",
}
# Pieces of at most this many seconds of link time: fine enough that the player's progress events
# see a smooth rate, coarse enough that sleeping stays cheap.
PIECE_S = 0.01
MIN_PIECE_BYTES = 1024


@dataclass(frozen=True)
class TraceStep:
    duration_s: float
    mbps: float


class PacedLink:
    """One serial link whose rate follows a looping step trace (all connections share it)."""

    def __init__(self, steps: list[tuple[float, float]], latency_s: float = 0.08):
        self.steps = [TraceStep(float(d), float(r)) for d, r in steps]
        if not self.steps or any(s.duration_s <= 0 or s.mbps <= 0 for s in self.steps):
            raise ValueError(f"a trace needs steps of positive duration and rate, got {steps}")
        self.period_s = sum(s.duration_s for s in self.steps)
        self.latency_s = float(latency_s)
        self._lock = threading.Lock()
        self._origin: float | None = None  # monotonic time of trace second 0
        self._free_at = 0.0                # monotonic time the link finishes its queued bytes

    def rate_bytes_per_s(self, trace_s: float) -> tuple[float, float]:
        """Rate at trace time ``trace_s`` and the trace time at which that step ends."""
        cycle, offset_s = divmod(trace_s, self.period_s)
        start_s = cycle * self.period_s
        for step in self.steps:
            if offset_s < step.duration_s:
                return step.mbps * 1e6 / 8, start_s + step.duration_s
            offset_s -= step.duration_s
            start_s += step.duration_s
        last = self.steps[-1]  # float round-off at the very end of a cycle
        return last.mbps * 1e6 / 8, start_s

    def reserve(self, n_bytes: int) -> float:
        """Queue ``n_bytes`` on the link; returns the monotonic time they have been delivered."""
        with self._lock:
            now = time.monotonic()
            if self._origin is None:
                self._origin = now
            t = max(now, self._free_at) - self._origin
            remaining = float(n_bytes)
            while remaining > 0:
                rate, step_end_s = self.rate_bytes_per_s(t)
                step_end_s = max(step_end_s, t + 1e-9)
                can_send = rate * (step_end_s - t)
                if can_send >= remaining:
                    t += remaining / rate
                    remaining = 0.0
                else:
                    remaining -= can_send
                    t = step_end_s
            self._free_at = self._origin + t
            return self._free_at

    def piece_bytes(self) -> int:
        with self._lock:
            now = time.monotonic()
            trace_s = 0.0 if self._origin is None else now - self._origin
        rate, _ = self.rate_bytes_per_s(trace_s)
        return max(MIN_PIECE_BYTES, int(rate * PIECE_S))


@dataclass
class PacedResponse:
    trace: str
    path: str
    bytes: int
    request_s: float     # monotonic times
    first_byte_s: float
    last_byte_s: float


@dataclass
class Routes:
    static: dict[str, Path] = field(default_factory=dict)  # URL prefix -> folder
    paced: dict[str, Path] = field(default_factory=dict)   # URL prefix -> folder (trace name follows)


class PacingServer:
    """Serve ``routes`` on 127.0.0.1 from a background thread; ``links`` maps trace name -> PacedLink."""

    def __init__(self, routes: Routes, links: dict[str, PacedLink], extra_headers: dict[str, str] | None = None):
        self.routes = routes
        self.links = links
        self.log: list[PacedResponse] = []
        self._log_lock = threading.Lock()
        self.extra_headers = dict(extra_headers or {})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="pacing-server", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "PacingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def responses(self, trace: str) -> list[PacedResponse]:
        with self._log_lock:
            return [r for r in self.log if r.trace == trace]

    def _resolve(self, url_path: str) -> tuple[Path | None, str | None]:
        """File for a URL path and, for paced routes, the trace name; (None, None) when unknown."""
        path = unquote(urlsplit(url_path).path)
        for prefix, folder, paced in [(p, f, True) for p, f in self.routes.paced.items()] + \
                                     [(p, f, False) for p, f in self.routes.static.items()]:
            prefix = "/" + prefix.strip("/") + "/"
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):]
            trace = None
            if paced:
                trace, _, rest = rest.partition("/")
                if trace not in self.links:
                    return None, None
            candidate = (folder / rest).resolve()
            root = folder.resolve()
            if candidate != root and root not in candidate.parents:
                return None, None  # ../ escapes
            return (candidate if candidate.is_file() else None), trace
        return None, None

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):  # noqa: A002 - the base class's name
                pass  # the test reads server.log instead of stderr noise

            def do_GET(self):  # noqa: N802 - http.server's naming
                request_s = time.monotonic()
                file_path, trace = server._resolve(self.path)
                if file_path is None:
                    self.send_error(404, "not found")
                    return
                body = file_path.read_bytes()
                content_type = CONTENT_TYPES.get(file_path.suffix) or \
                    mimetypes.guess_type(file_path.name)[0] or "application/octet-stream"
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                for name, value in server.extra_headers.items():
                    self.send_header(name, value)
                try:
                    if trace is None:
                        self.end_headers()
                        self.wfile.write(body)
                        return
                    link = server.links[trace]
                    time.sleep(link.latency_s)
                    self.end_headers()
                    first_byte_s = None
                    offset = 0
                    while offset < len(body):
                        piece = body[offset:offset + link.piece_bytes()]
                        deliver_at = link.reserve(len(piece))
                        delay_s = deliver_at - time.monotonic()
                        if delay_s > 0:
                            time.sleep(delay_s)
                        self.wfile.write(piece)
                        first_byte_s = first_byte_s or time.monotonic()
                        offset += len(piece)
                    self.wfile.flush()
                    with server._log_lock:
                        server.log.append(PacedResponse(trace, urlsplit(self.path).path, len(body), request_s,
                                                        first_byte_s or time.monotonic(), time.monotonic()))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the browser gave up on the response (page closed); nothing to deliver

        return Handler
