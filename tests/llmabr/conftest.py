from pathlib import Path

import pytest

from tests.llmabr.fake_openai_server import FakeOpenAIServer


def train_tiny(out: Path, overrides: list[str]) -> Path:
    """The seed design trained in the cage with tiny settings (``--set`` style overrides) into ``out``."""
    from llmabr.train.caged import train_caged
    from llmabr.train.config import load_config
    from simulator.paths import REPO_ROOT

    result = train_caged(REPO_ROOT / "designs" / "pensieve", load_config(None, overrides), out, wall_s=300)
    assert result["status"] == "ok", result.get("reason")
    return out


@pytest.fixture
def server():
    """A scripted OpenAI-compatible server on 127.0.0.1 (real sockets), stopped after the test.

    Only for what a real model server cannot be made to do (429 with Retry-After, 5xx bursts,
    malformed replies, echoing headers); everything else talks to ``llama_server``."""
    fake = FakeOpenAIServer().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    """llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct (n_ctx 4096, one thread), for the session.

    Skips only where llama-cpp-python is not installed (``./run test`` installs it; under CI=true that fails). Stopped,
    with its whole process group, however the session ends."""
    from tests.llmabr.llama_server import start_server

    server = start_server(tmp_path_factory.mktemp("llama-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def small_context_server(tmp_path_factory):
    """The same model served with a 1,024-token context: the proposer's prompts (~2,300 tokens) do not fit."""
    from tests.llmabr.llama_server import start_server

    server = start_server(tmp_path_factory.mktemp("llama-server-1k"), n_ctx=1024, extra_args=())
    try:
        yield server
    finally:
        server.stop()
