"""``llmabr serve``: ABR decisions over HTTP for any player (schema in README, "The HTTP server").

``session.SessionHistory`` (the measurement row builder) needs only numpy; ``app`` and
``backends`` need the ``export`` extra (FastAPI, uvicorn, onnxruntime).
"""
