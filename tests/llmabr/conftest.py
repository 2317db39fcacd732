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
    """A scripted OpenAI-compatible server on 127.0.0.1 (real sockets), stopped after the test."""
    fake = FakeOpenAIServer().start()
    yield fake
    fake.stop()
