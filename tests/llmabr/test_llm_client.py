"""LLMClient end to end: the real openai package over real sockets to a scripted local server.

Nothing is patched: the server (``fake_openai_server``) answers from a script; the client gets a
recording ``sleep`` so backoff waits cost no time, and a seeded rng so they are reproducible.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import traceback

import pytest

from llmabr.proposer.client import BudgetExceeded, ChatResult, LLMClient, LLMError
from llmabr.proposer.llm_config import LLMConfig, llm_config_from
from tests.llmabr.fake_openai_server import FakeOpenAIServer, Scripted, completion_body, error_body

FAKE_KEY = "sk-test-FAKEKEY-0123456789-do-not-log"
ENV = {"OPENAI_API_KEY": FAKE_KEY}
SEED = 7
MESSAGES = [{"role": "system", "content": "You design ABR state functions."},
            {"role": "user", "content": "Write a state function."}]
CODE_REPLY = "Here it is:\n```python\ndef state(m):\n    return {'buffer': m['buffer_s'] / 60}\n```"


@pytest.fixture
def make_client(server, tmp_path):
    """``make_client(**config_fields)`` -> (client, sleeps_s): a client of the fake server."""

    def make(env=ENV, **fields):
        sleeps_s: list[float] = []
        config = LLMConfig(**{"base_url": server.base_url, **fields})
        client = LLMClient(config, log_dir=tmp_path, env=env, sleep=sleeps_s.append, rng=random.Random(SEED))
        return client, sleeps_s

    return make


def log_records(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "llm_requests.jsonl").read_text().splitlines()]


def ok(*contents: str, prompt_tokens: int = 10, completion_tokens: int = 20, **kwargs) -> Scripted:
    return Scripted(body=completion_body(list(contents), prompt_tokens, completion_tokens), **kwargs)


def jittered_waits_s(count: int, base_s: float = 1.0, cap_s: float = 60.0) -> list[float]:
    rng = random.Random(SEED)
    return [min(cap_s, base_s * 2 ** retry) * rng.random() for retry in range(count)]


# -- good replies ------------------------------------------------------------------------------

def test_good_reply_returns_content_counts_usage_and_prices_it(server, make_client, tmp_path):
    client, sleeps_s = make_client(model="gpt-4o-mini", temperature=0.3, max_tokens=500)
    server.script(ok(CODE_REPLY, prompt_tokens=1000, completion_tokens=2000))

    result = client.chat(MESSAGES, purpose="propose state")

    assert isinstance(result, ChatResult)
    assert result.replies == [CODE_REPLY] and result.finish_reasons == ["stop"]
    assert (result.prompt_tokens, result.completion_tokens, result.attempts) == (1000, 2000, 1)
    assert result.cost_usd == pytest.approx((1000 * 0.15 + 2000 * 0.60) / 1e6)
    assert result.request_id == 0 and result.wall_s > 0 and sleeps_s == []
    sent = server.chat_requests()[0]["body"]
    assert sent["model"] == "gpt-4o-mini" and sent["messages"] == MESSAGES
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 500 and "n" not in sent
    [record] = log_records(tmp_path)
    assert record["outcome"] == "ok" and record["purpose"] == "propose state"
    assert record["messages"] == MESSAGES and record["replies"] == [CODE_REPLY]
    assert record["usage"] == {"prompt_tokens": 1000, "completion_tokens": 2000}
    assert record["cost_usd"] == pytest.approx(result.cost_usd) and record["attempts"] == 1


def test_n_choices_are_requested_and_all_returned(server, make_client):
    client, _ = make_client()
    server.script(ok("first", "second"))

    result = client.chat(MESSAGES, n=2)

    assert server.chat_requests()[0]["body"]["n"] == 2
    assert result.replies == ["first", "second"] and result.finish_reasons == ["stop", "stop"]


def test_reply_without_code_is_returned_as_is(server, make_client):
    client, _ = make_client()
    server.script(ok("I would rather not write code today."))
    assert client.chat(MESSAGES).replies == ["I would rather not write code today."]


def test_empty_content_becomes_empty_string(server, make_client):
    client, _ = make_client()
    body = completion_body(["x"])
    body["choices"][0]["message"]["content"] = None
    body["choices"][0]["finish_reason"] = "length"
    server.script(Scripted(body=body))
    result = client.chat(MESSAGES)
    assert result.replies == [""] and result.finish_reasons == ["length"]


# -- retries -----------------------------------------------------------------------------------

def test_429_honours_retry_after(server, make_client, tmp_path):
    client, sleeps_s = make_client()
    server.script(Scripted(status=429, headers={"Retry-After": "7"}, body=error_body("slow down", "rate_limit")),
                  ok("done"))

    result = client.chat(MESSAGES)

    assert result.replies == ["done"] and result.attempts == 2
    assert len(sleeps_s) == 1 and sleeps_s[0] >= 7
    assert len(server.chat_requests()) == 2
    assert "HTTP 429: slow down" in log_records(tmp_path)[0]["errors"][0]["error"]


def test_retry_after_is_capped_by_backoff_max(server, make_client):
    client, sleeps_s = make_client(backoff_max_s=3.0)
    server.script(Scripted(status=429, headers={"Retry-After": "120"}, body=error_body("later")), ok("done"))
    client.chat(MESSAGES)
    assert sleeps_s == [3.0]


def test_server_errors_back_off_with_full_jitter(server, make_client):
    client, sleeps_s = make_client(backoff_base_s=1.0, backoff_max_s=60.0)
    server.script(Scripted(status=500, body=error_body("boom", "server_error")),
                  Scripted(status=502, raw=b"<html>bad gateway</html>", headers={"Content-Type": "text/html"}),
                  ok("finally"))

    result = client.chat(MESSAGES)

    assert result.replies == ["finally"] and result.attempts == 3
    assert sleeps_s == pytest.approx(jittered_waits_s(2))
    assert len(server.chat_requests()) == 3


def test_slow_reply_times_out_and_is_retried(server, make_client, tmp_path):
    client, sleeps_s = make_client(timeout_s=0.5)
    server.script(ok("too late", delay_s=2.0), ok("on time"))

    result = client.chat(MESSAGES)

    assert result.replies == ["on time"] and result.attempts == 2 and len(sleeps_s) == 1
    assert "timed out after 0.5 s" in log_records(tmp_path)[0]["errors"][0]["error"]


@pytest.mark.parametrize("malformed", [
    Scripted(raw=b'{"id": "chatcmpl-1", "choices": [{"mess'),               # truncated JSON
    Scripted(body={"id": "chatcmpl-1", "object": "chat.completion"}),      # no choices
    Scripted(body={"id": "chatcmpl-1", "choices": []}),                    # empty choices
    Scripted(raw=b"hello", headers={"Content-Type": "text/plain"}),        # not JSON at all
], ids=["bad-json", "no-choices", "empty-choices", "text-plain"])
def test_malformed_200_is_retried(server, make_client, tmp_path, malformed):
    client, sleeps_s = make_client()
    server.script(malformed, ok("good"))

    result = client.chat(MESSAGES)

    assert result.replies == ["good"] and result.attempts == 2 and len(sleeps_s) == 1
    assert "malformed response" in log_records(tmp_path)[0]["errors"][0]["error"]


def test_400_is_not_retried_and_reports_the_server_message(server, make_client, tmp_path):
    client, sleeps_s = make_client()
    server.script(Scripted(status=400, body=error_body("max_tokens is too large: 999999")), ok("unused"))

    with pytest.raises(LLMError, match="max_tokens is too large: 999999") as caught:
        client.chat(MESSAGES, purpose="repair")

    assert not isinstance(caught.value, BudgetExceeded)
    message = str(caught.value)
    assert "HTTP 400" in message and "1 attempt" in message and "not retryable" in message and "repair" in message
    assert len(server.chat_requests()) == 1 and sleeps_s == []
    assert client.usage()["failures"] == 1
    assert log_records(tmp_path)[0]["outcome"] == "failed"


def test_wrong_path_404_is_not_retried(server, tmp_path):
    base_url_without_v1 = server.base_url.removesuffix("/v1")
    client = LLMClient(LLMConfig(base_url=base_url_without_v1), tmp_path, env=ENV, sleep=lambda s: None)
    with pytest.raises(LLMError, match="HTTP 404"):
        client.chat(MESSAGES)
    assert [r["path"] for r in server.received] == ["/chat/completions"]


def test_retries_exhausted_raise_llm_error(server, make_client):
    client, sleeps_s = make_client(max_retries=2)
    server.script(*[Scripted(status=503, body=error_body("overloaded", "server_error"))] * 3, ok("never sent"))

    with pytest.raises(LLMError) as caught:
        client.chat(MESSAGES)

    message = str(caught.value)
    assert "3 attempts" in message and "HTTP 503: overloaded" in message and "out of retries" in message
    assert len(server.chat_requests()) == 3 and len(sleeps_s) == 2
    assert client.usage()["failures"] == 1 and client.usage()["requests"] == 1


def test_connection_refused_is_retried_then_reported(tmp_path):
    closed = FakeOpenAIServer()
    base_url = closed.base_url
    closed.stop()  # the port is now closed: connections are refused
    sleeps_s: list[float] = []
    client = LLMClient(LLMConfig(base_url=base_url, max_retries=1), tmp_path, env=ENV, sleep=sleeps_s.append)
    with pytest.raises(LLMError, match="connection error"):
        client.chat(MESSAGES)
    assert len(sleeps_s) == 1


# -- budget and accounting ---------------------------------------------------------------------

def test_budget_tokens_stops_before_sending(server, make_client, tmp_path):
    # First request's worst case: ~15 prompt tokens + 100 completion <= 150. It then uses
    # 10 + 50 = 60, so the second's worst case (60 + 115) crosses 150.
    client, _ = make_client(max_tokens=100, budget_tokens=150)
    server.script(ok("one", prompt_tokens=10, completion_tokens=50), ok("two"))

    client.chat(MESSAGES)
    with pytest.raises(BudgetExceeded, match="budget_tokens=150"):
        client.chat(MESSAGES)

    assert len(server.chat_requests()) == 1
    assert client.usage()["requests"] == 1
    assert [r["outcome"] for r in log_records(tmp_path)] == ["ok", "budget_exceeded"]


def test_budget_usd_refuses_a_request_whose_worst_case_costs_too_much(server, make_client):
    # gpt-4o at 10 USD per million output tokens: 2048 tokens x 4 choices ~ 0.08 USD > 0.05.
    client, _ = make_client(model="gpt-4o", budget_usd=0.05)
    with pytest.raises(BudgetExceeded, match="budget_usd=0.05"):
        client.chat(MESSAGES, n=4)
    assert server.chat_requests() == []


def test_usage_accumulates_over_requests(server, make_client, tmp_path):
    client, _ = make_client(model="gpt-4.1")
    server.script(ok("a", prompt_tokens=100, completion_tokens=10),
                  Scripted(status=500, body=error_body("blip")), ok("b", prompt_tokens=200, completion_tokens=20),
                  ok("c", "d", prompt_tokens=300, completion_tokens=30))

    ids = [client.chat(MESSAGES).request_id, client.chat(MESSAGES).request_id, client.chat(MESSAGES, n=2).request_id]

    usage = client.usage()
    assert ids == [0, 1, 2]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (600, 60)
    assert usage["cost_usd"] == pytest.approx((600 * 2.00 + 60 * 8.00) / 1e6)
    assert (usage["requests"], usage["failures"], usage["attempts"]) == (3, 0, 4)
    assert [r["request_id"] for r in log_records(tmp_path)] == [0, 1, 2]


def test_unpriced_model_costs_zero_and_says_so_once(server, make_client, caplog):
    with caplog.at_level(logging.WARNING, logger="llmabr.proposer.client"):
        client, _ = make_client(model="qwen2.5-coder:7b")
        server.script(ok("x"), ok("y"))
        assert client.chat(MESSAGES).cost_usd == 0.0
        client.chat(MESSAGES)
    assert sum("qwen2.5-coder:7b" in r.getMessage() for r in caplog.records) == 1


# -- the key -----------------------------------------------------------------------------------

def test_key_goes_in_the_authorization_header_and_nowhere_else(server, make_client, tmp_path):
    client, _ = make_client()
    server.script(ok("fine"),
                  Scripted(status=401, body=error_body(f"Incorrect API key provided: {FAKE_KEY}.")))

    client.chat([{"role": "user", "content": "hello"}], purpose="key check")
    with pytest.raises(LLMError) as caught:
        client.chat(MESSAGES)

    assert all(r["headers"]["authorization"] == f"Bearer {FAKE_KEY}" for r in server.chat_requests())
    shown = str(caught.value) + "".join(traceback.format_exception(caught.value))
    assert FAKE_KEY not in shown and "Incorrect API key provided" in shown
    log_text = (tmp_path / "llm_requests.jsonl").read_text()
    assert FAKE_KEY not in log_text and "authorization" not in log_text.lower()
    assert "[api key]" in log_text  # scrubbed, not dropped


def test_local_server_needs_no_key(server, make_client):
    client, _ = make_client(env={})
    server.script(ok("hi"))
    client.chat(MESSAGES)
    assert server.chat_requests()[0]["headers"]["authorization"] == "Bearer not-needed"


def test_no_key_and_no_base_url_is_an_actionable_error(tmp_path):
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        LLMClient(LLMConfig(), tmp_path, env={})


# -- concurrency -------------------------------------------------------------------------------

def test_concurrency_limit_holds_across_threads(server, make_client):
    client, _ = make_client(concurrency=2)
    server.script(*[ok(f"reply {i}", delay_s=0.3) for i in range(6)])
    replies: list[str] = []

    def ask():
        replies.extend(client.chat(MESSAGES).replies)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert sorted(replies) == sorted(f"reply {i}" for i in range(6))
    assert server.max_in_flight == 2  # never more, and the limit is actually used
    assert client.usage()["requests"] == 6


# -- configuration -----------------------------------------------------------------------------

def test_config_precedence_defaults_toml_env_overrides():
    toml = {"model": "gpt-4o", "temperature": 0.5, "base_url": "http://toml:1/v1", "budget_usd": 2}
    env = {"LLMABR_LLM_MODEL": "gpt-4.1", "LLMABR_LLM_BASE_URL": "http://env:2/v1"}

    config = llm_config_from(toml, env=env, overrides={"model": "o3-mini", "max_tokens": "256"})

    assert (config.model, config.base_url, config.temperature) == ("o3-mini", "http://env:2/v1", 0.5)
    assert config.max_tokens == 256 and config.budget_usd == 2 and config.n == 1
    assert llm_config_from(toml, env={}).model == "gpt-4o"
    assert llm_config_from({}, env={}) == LLMConfig()


def test_openai_base_url_only_when_nothing_else_sets_one():
    env = {"OPENAI_BASE_URL": "http://openai-env:3/v1"}
    assert llm_config_from({}, env=env).base_url == "http://openai-env:3/v1"
    assert llm_config_from({"base_url": "http://toml:1/v1"}, env=env).base_url == "http://toml:1/v1"


def test_config_prices_merge_and_unknown_keys_are_named():
    config = llm_config_from({"prices_usd_per_mtok": {"local": [0.1, 0.2]}}, env={})
    assert config.price_usd_per_mtok("local") == (0.1, 0.2) and config.price_usd_per_mtok("gpt-4o") is not None
    with pytest.raises(ValueError, match="llm.modle"):
        llm_config_from({"modle": "gpt-4o"}, env={})
    with pytest.raises(ValueError, match="llm.concurrency"):
        llm_config_from(overrides={"concurrency": "0"}, env={})


@pytest.mark.parametrize("base_url, env, expected", [
    (None, {}, False),
    (None, {"OPENAI_API_KEY": "k"}, True),
    ("http://localhost:8000/v1", {}, True),
])
def test_configured(base_url, env, expected):
    assert LLMConfig(base_url=base_url).is_configured(env) is expected
    config = llm_config_from({"api_key_env": "MY_KEY"}, env={})
    assert config.is_configured({"MY_KEY": "k"}) and not config.is_configured({"OPENAI_API_KEY": "k"})
