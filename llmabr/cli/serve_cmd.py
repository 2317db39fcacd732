"""``llmabr serve --policy DIR``: an HTTP ABR server (FastAPI + uvicorn) for any player.

DIR is a policy folder (``policy.onnx`` + ``layout.json``, as ``llmabr export`` writes them or a
shipped ``designs/<type>/<name>/`` holds them: served with onnxruntime in this process) or a
trained run folder whose design could not be exported (served by one caged child process).
The request schema is in README ("The HTTP server").
"""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(commands) -> None:
    serve = commands.add_parser("serve", help="serve ABR decisions over HTTP (/v1/decide, Pensieve's POST /, /healthz)")
    serve.add_argument("--policy", required=True, help="policy folder (policy.onnx + layout.json: an export or a "
                                                        "shipped designs/<type>/<name>/), or a trained run folder / "
                                                        "RUN:NAME (served through the cage)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    serve.add_argument("--port", type=int, default=8333, help="port (default 8333, Pensieve's)")
    serve.add_argument("--video", help="video profile for a run folder's layout (default: the run's)")
    serve.add_argument("--session-ttl-s", type=float, default=600.0, help="forget sessions idle this long")
    serve.add_argument("--max-sessions", type=int, default=10_000, help="keep at most this many sessions")
    serve.set_defaults(handler=run)


def run(args) -> int:
    try:
        import uvicorn

        from llmabr.serve.app import create_app
        from llmabr.serve.backends import BackendError, open_backend
    except ImportError as error:
        print(f"error: {error}; install the export extra: pip install 'llmabr[export]'", file=sys.stderr)
        return 1
    try:
        backend = open_backend(args.policy, video=args.video)
    except BackendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        app = create_app(backend, session_ttl_s=args.session_ttl_s, max_sessions=args.max_sessions)
        how = "onnxruntime in this process" if backend.kind == "onnx" else "a caged child process (not exportable)"
        print(f"serving {backend.design} from {Path(backend.source)} with {how} on http://{args.host}:{args.port} "
              f"(POST /v1/decide, POST / for Pensieve's player, GET /healthz)", file=sys.stderr, flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        backend.close()
    return 0
