"""The HTTP ABR server of ``llmabr serve`` (FastAPI): rows built per session, one decision per request.

Routes (schema and examples in README, "The HTTP server"):

* ``POST /v1/decide``: JSON in, ``{"session_id", "level", "bitrate_kbps", "logits"}`` out;
* ``POST /``: Pensieve's ``rl_server`` protocol (one session, the level as plain text, ``REFRESH``
  at the end of the video);
* ``GET /healthz``: whether the model answers, design name, layout version;
* ``GET /v1/layout``: the layout.json the server builds rows with.

Bad input gets a 4xx naming the field; a policy that cannot answer gets 503 with the reason.
"""

from __future__ import annotations

import json

import numpy as np
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from llmabr.serve.backends import BackendError
from llmabr.serve.session import SessionStore
from llmabr.serve.validate import RequestError, decide_request, json_object, pensieve_request

PENSIEVE_SESSION = "pensieve"  # Pensieve's rl_server holds exactly one player's state


def _json(data: dict, status: int = 200) -> Response:
    return Response(json.dumps(data), status_code=status, media_type="application/json")


def next_sizes_for(layout: dict, video) -> callable:
    """chunk index -> next_chunk_bytes per level, for Pensieve's protocol (its player does not send them):
    the exported video's real sizes where known, else nominal sizes (bitrate x chunk length)."""
    nominal = [kbps * 1000.0 / 8.0 * float(layout.get("chunk_s", 4.0)) for kbps in layout["ladder_kbps"]]

    def sizes(index: int) -> list[float]:
        if video is not None and video.n_levels == layout["n_levels"] and index < video.n_chunks:
            return [float(size) for size in video.chunk_bytes[:, index]]
        return nominal

    return sizes


def create_app(backend, session_ttl_s: float = 600.0, max_sessions: int = 10_000) -> FastAPI:
    """The app over ``backend`` (``OnnxBackend`` or ``CagedBackend``); sessions idle for
    ``session_ttl_s`` expire and at most ``max_sessions`` are kept (memory stays bounded)."""
    layout = backend.layout
    sessions = SessionStore(int(layout["history_len"]), int(layout["n_levels"]), session_ttl_s, max_sessions)
    video = None
    try:
        from simulator.video import load_profile

        video = load_profile(layout["video"]) if layout.get("video") else None
    except (ValueError, OSError):  # a profile not present here: Pensieve mode falls back to nominal sizes
        video = None
    next_sizes = next_sizes_for(layout, video)
    ladder_kbps = [float(kbps) for kbps in layout["ladder_kbps"]]

    app = FastAPI(title="llmabr serve", description=f"ABR decisions of design {backend.design}", docs_url=None,
                  redoc_url=None)
    # Players are pages from another origin (Pensieve's server also allowed any): answer CORS preflights.
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["GET", "POST"], allow_headers=["*"])
    app.state.backend, app.state.sessions = backend, sessions

    async def decide_level(row: np.ndarray) -> np.ndarray:
        if backend.blocking:
            return await run_in_threadpool(backend.logits, row)
        return backend.logits(row)

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, error: RequestError) -> Response:
        return _json(error.to_dict(), error.status)

    @app.exception_handler(BackendError)
    async def unavailable(request: Request, error: BackendError) -> Response:
        return _json({"error": f"the policy cannot answer: {error}", "field": None}, 503)

    @app.get("/healthz")
    async def healthz() -> Response:
        reason = backend.unavailable()
        data = {"status": "ok" if reason is None else "unavailable", "model_loaded": reason is None,
                "design": backend.design, "backend": backend.kind, "layout_version": layout["layout_version"],
                "n_levels": layout["n_levels"], "size": layout["size"], "sessions": len(sessions),
                "restarts": getattr(backend, "restarts", 0)}
        if reason is not None:
            data["reason"] = reason
        return _json(data, 200 if reason is None else 503)

    @app.get("/v1/layout")
    async def get_layout() -> Response:
        return _json(layout)

    @app.post("/v1/decide")
    async def decide(request: Request) -> Response:
        body = decide_request(json_object(await request.body()), layout)
        session = sessions.get(body.session_id)
        if body.chunk is None:  # the first decision of a playback: no history yet
            session.history.reset()
        else:
            session.history.add_chunk(**body.chunk)
        row = session.history.row(next_chunk_bytes=body.next_chunk_bytes, ladder_kbps=body.ladder_kbps,
                                  chunks_left=body.chunks_left, chunks_total=body.chunks_total)
        logits = await decide_level(row)
        level = int(np.argmax(logits))
        return _json({"session_id": body.session_id, "level": level, "bitrate_kbps": body.ladder_kbps[level],
                      "logits": [float(value) for value in logits]})

    @app.post("/")
    async def pensieve(request: Request) -> Response:
        data = json_object(await request.body())
        if "pastThroughput" in data:  # Pensieve's end-of-video summary: nothing to decide
            return PlainTextResponse("")
        report = pensieve_request(data, int(layout["n_levels"]))
        session = sessions.get(PENSIEVE_SESSION)
        if report.last_request <= session.pensieve_last_request:  # a new playback (the page reloaded)
            session.history.reset()
            session.pensieve_rebuffer_ms = 0.0
        rebuffer_s = max(report.total_rebuffer_ms - session.pensieve_rebuffer_ms, 0.0) / 1000.0
        session.history.add_chunk(bitrate_kbps=ladder_kbps[report.level], buffer_s=report.buffer_s,
                                  download_time_s=report.download_time_s, chunk_bytes=report.chunk_bytes,
                                  rebuffer_s=rebuffer_s)
        session.pensieve_rebuffer_ms = report.total_rebuffer_ms
        session.pensieve_last_request = report.last_request
        chunks_total = int(layout["chunks_total"])
        chunks_left = max(chunks_total - (report.last_request + 1), 0)
        if chunks_left == 0:  # Pensieve answers REFRESH after the last chunk and starts over
            session.history.reset()
            session.pensieve_rebuffer_ms, session.pensieve_last_request = 0.0, -1
            return PlainTextResponse("REFRESH")
        row = session.history.row(next_chunk_bytes=next_sizes(report.last_request + 1), ladder_kbps=ladder_kbps,
                                  chunks_left=chunks_left, chunks_total=chunks_total)
        logits = await decide_level(row)
        return PlainTextResponse(str(int(np.argmax(logits))))

    return app
