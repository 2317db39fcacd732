import pytest

from tests.llmabr.fake_openai_server import FakeOpenAIServer


@pytest.fixture
def server():
    """A scripted OpenAI-compatible server on 127.0.0.1 (real sockets), stopped after the test."""
    fake = FakeOpenAIServer().start()
    yield fake
    fake.stop()
