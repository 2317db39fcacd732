"""LLMClient end to end: the real openai package over real sockets.

Most tests talk to a real model server (llama.cpp's, with SmolLM2-135M; fixture ``llama_server``):
usage and cost from its ``usage`` fields, a server that ignores ``n``, a prompt longer than its
context, slow generation, budgets. The rest talk to a scripted server (``fake_openai_server``)
because they need a reply a real server cannot be made to give; each says which. Nothing is
patched: clients get a recording ``sleep`` so backoff waits cost no time, and a seeded rng.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import traceback
import urllib.request

import pytest

from llmabr.proposer.client import LEARN_MIN_CHARS, BudgetExceeded, ChatResult, LLMClient, LLMError
from llmabr.proposer.llm_config import LLMConfig, llm_config_from
from llmabr.proposer.local_server import free_port
from tests.llmabr.fake_openai_server import Scripted, completion_body, error_body
from tests.llmabr.llama_server import chat_requests_answered

FAKE_KEY = "sk-test-FAKEKEY-0123456789-do-not-log"
ENV = {"OPENAI_API_KEY": FAKE_KEY}
SEED = 7
MESSAGES = [{"role": "system", "content": "You design ABR state functions."},
            {"role": "user", "content": "Write a state function."}]
CODE_REPLY = "Here it is:\n```python\ndef state(m):\n    return {'buffer': m['buffer_s'] / 60}\n```"
STORY = [{"role": "user", "content": "Tell me a long story about a cat who watches videos on a slow network."}]


@pytest.fixture
def make_client(server, tmp_path):
    """``make_client(**config_fields)`` -> (client, sleeps_s): a client of the scripted server."""

    def make(env=ENV, **fields):
        sleeps_s: list[float] = []
        config = LLMConfig(**{"base_url": server.base_url, **fields})
        client = LLMClient(config, log_dir=tmp_path, env=env, sleep=sleeps_s.append, rng=random.Random(SEED))
        return client, sleeps_s

    return make


@pytest.fixture
def real_client(llama_server, tmp_path):
    """``real_client(server=llama_server, **config_fields)`` -> (client, sleeps_s): a client of a real
    llama.cpp server, with no API key (a local server needs none), temperature 0 and a fixed seed."""

    def make(server=llama_server, **fields):
        sleeps_s: list[float] = []
        config = LLMConfig(**{"base_url": server.base_url, "model": server.model, "temperature": 0.0, "seed": 0,
                              "max_tokens": 8, **fields})
        client = LLMClient(config, log_dir=tmp_path, env={}, sleep=sleeps_s.append, rng=random.Random(SEED))
        return client, sleeps_s

    return make


def log_records(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "llm_requests.jsonl").read_text().splitlines()]


def ok(*contents: str, prompt_tokens: int = 10, completion_tokens: int = 20, **kwargs) -> Scripted:
    return Scripted(body=completion_body(list(contents), prompt_tokens, completion_tokens), **kwargs)


def jittered_waits_s(count: int, base_s: float = 1.0, cap_s: float = 60.0) -> list[float]:
    rng = random.Random(SEED)
    return [min(cap_s, base_s * 2 ** retry) * rng.random() for retry in range(count)]


def raw_chat(server, body: dict) -> dict:
    """The server's own JSON answer to ``body``, read with urllib (no openai package, no LLMClient)."""
    request = urllib.request.Request(f"{server.base_url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


# -- a real server: llama.cpp with SmolLM2-135M -----------------------------------------------------

def test_usage_and_cost_are_the_servers_usage_fields_priced(llama_server, real_client, tmp_path):
    price = (1.0, 2.0)  # USD per million tokens, input and output
    client, sleeps_s = real_client(prices_usd_per_mtok={llama_server.model: list(price)})
    body = {"model": llama_server.model, "messages": STORY, "max_tokens": 8, "temperature": 0.0, "seed": 0}
    raw = raw_chat(llama_server, body)

    first = client.chat(STORY, purpose="usage")
    second = client.chat(STORY[:1] + [{"role": "assistant", "content": first.replies[0]},
                                      {"role": "user", "content": "Go on."}])

    assert isinstance(first, ChatResult) and first.attempts == 1 and sleeps_s == []
    assert first.prompt_tokens == raw["usage"]["prompt_tokens"] > 10  # the same request, the same tokenized prompt
    for result, raw_choice in ((first, raw["choices"][0]), (second, None)):
        assert 0 < result.completion_tokens <= 8
        if result.finish_reasons == ["length"]:  # cut at max_tokens: the server counts exactly max_tokens
            assert result.completion_tokens == 8
        if raw_choice is not None and raw_choice["finish_reason"] == "length" == result.finish_reasons[0]:
            assert result.completion_tokens == raw["usage"]["completion_tokens"]
        assert result.cost_usd == pytest.approx((result.prompt_tokens * price[0] + result.completion_tokens * price[1]) / 1e6)
    assert second.prompt_tokens > first.prompt_tokens
    usage = client.usage()
    assert usage["prompt_tokens"] == first.prompt_tokens + second.prompt_tokens
    assert usage["completion_tokens"] == first.completion_tokens + second.completion_tokens
    assert usage["cost_usd"] == pytest.approx(first.cost_usd + second.cost_usd)
    assert (usage["requests"], usage["attempts"], usage["failures"]) == (2, 2, 0)
    records = log_records(tmp_path)
    assert [r["usage"] for r in records] == [{"prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens}
                                             for r in (first, second)]
    assert records[0]["purpose"] == "usage" and records[0]["params"]["seed"] == 0


def test_the_server_returns_one_choice_when_asked_for_n(llama_server, real_client, tmp_path):
    """llama-cpp-python's server drops ``n`` from the request (server/app.py excludes it) and always
    answers with one choice; the client hands back what came (LLMProposer asks again for the rest)."""
    client, _ = real_client()
    answered_before = chat_requests_answered(llama_server)

    result = client.chat(STORY, n=3)

    assert len(result.replies) == len(result.finish_reasons) == 1
    assert chat_requests_answered(llama_server) == answered_before + 1
    [record] = log_records(tmp_path)
    assert record["params"]["n"] == 3 and len(record["replies"]) == 1


def test_a_prompt_longer_than_the_context_fails_once_with_a_clear_error(small_context_server, real_client, tmp_path):
    from llmabr.proposer.context import build_context
    from llmabr.proposer.prompts import build_messages

    client, sleeps_s = real_client(server=small_context_server, max_retries=5)
    messages = build_messages("state", build_context("broadband"))  # the proposer's real prompt, ~2,300 tokens
    answered_before = chat_requests_answered(small_context_server)

    with pytest.raises(LLMError) as caught:
        client.chat(messages, purpose="propose state")

    message = str(caught.value)
    assert not isinstance(caught.value, BudgetExceeded)
    assert "HTTP 400" in message and "does not fit the model's context window" in message
    assert "maximum context length is 1024 tokens" in message  # the server's own words
    assert "llm.local_n_ctx" in message and "1 attempt" in message and "not retryable" in message
    assert sleeps_s == [] and client.usage()["attempts"] == 1 and client.usage()["failures"] == 1
    assert chat_requests_answered(small_context_server) == answered_before + 1  # the server saw one request
    assert log_records(tmp_path)[-1]["outcome"] == "failed"
    assert small_context_server.process.poll() is None  # and it is still serving


def test_wrong_path_404_is_not_retried(llama_server, tmp_path):
    base_url_without_v1 = llama_server.base_url.removesuffix("/v1")
    client = LLMClient(LLMConfig(base_url=base_url_without_v1, model=llama_server.model), tmp_path, env={},
                       sleep=lambda s: None)
    with pytest.raises(LLMError, match="HTTP 404") as caught:
        client.chat(MESSAGES)
    assert "1 attempt" in str(caught.value) and client.usage()["attempts"] == 1


def test_budget_tokens_stops_before_sending_and_the_estimate_learns_the_tokenizer(llama_server, real_client, tmp_path):
    # The first request's worst case (prompt characters / 4 + max_tokens) is just within the cap; once it has
    # spent real tokens, the same request again crosses it. Its prompt is long enough (>= LEARN_MIN_CHARS) for
    # the estimate to learn the server's tokens per character from the reply's usage.
    messages = [{"role": "user", "content": "Summarize: " + "The player fetched a chunk at 1,200 kbps. " * 60}]
    chars = len(messages[0]["content"])
    assert chars >= LEARN_MIN_CHARS
    budget = math.ceil(chars / 4) + 8 + 1
    client, _ = real_client(budget_tokens=budget)
    answered_before = chat_requests_answered(llama_server)

    first = client.chat(messages)
    with pytest.raises(BudgetExceeded, match=f"budget_tokens={budget}") as caught:
        client.chat(messages)

    estimated_prompt_tokens = int(re.search(r"~(\d+) prompt", str(caught.value)).group(1))
    assert estimated_prompt_tokens >= first.prompt_tokens  # learnt: it no longer underestimates this prompt
    assert chat_requests_answered(llama_server) == answered_before + 1
    assert client.usage()["requests"] == 1
    assert [r["outcome"] for r in log_records(tmp_path)] == ["ok", "budget_exceeded"]


def test_budget_usd_refuses_a_request_whose_worst_case_costs_too_much(llama_server, real_client):
    # 1,000 USD per million output tokens: 8 tokens x 4 choices ~ 0.032 USD > 0.01.
    client, _ = real_client(prices_usd_per_mtok={llama_server.model: [1000.0, 1000.0]}, budget_usd=0.01)
    answered_before = chat_requests_answered(llama_server)
    with pytest.raises(BudgetExceeded, match="budget_usd=0.01"):
        client.chat(STORY, n=4)
    assert chat_requests_answered(llama_server) == answered_before


def test_unpriced_model_costs_zero_and_says_so_once(llama_server, real_client, caplog):
    with caplog.at_level(logging.WARNING, logger="llmabr.proposer.client"):
        client, _ = real_client(max_tokens=2)
        assert client.chat(STORY).cost_usd == 0.0
        client.chat(STORY)
    assert sum(llama_server.model in r.getMessage() for r in caplog.records) == 1


def test_slow_generation_times_out_and_is_retried_then_reported(llama_server, real_client, tmp_path):
    """Generating 120 tokens takes the real server longer than 0.25 s; each attempt is cut off by the client."""
    client, sleeps_s = real_client(max_tokens=120, timeout_s=0.25, max_retries=1)
    with pytest.raises(LLMError, match="out of retries") as caught:
        client.chat(STORY + [{"role": "user", "content": "Make it very long."}])
    assert "timed out after 0.25 s" in str(caught.value) and "2 attempts" in str(caught.value)
    assert len(sleeps_s) == 1 and [r["outcome"] for r in log_records(tmp_path)] == ["failed"]


# -- a scripted server: replies a real server cannot be made to give ----------------------------------

def test_n_choices_are_requested_and_all_returned(server, make_client):
    """Servers that honour ``n`` (OpenAI, vLLM) answer with n choices; llama.cpp's cannot, so a script does."""
    client, _ = make_client()
    server.script(ok("first", "second"))

    result = client.chat(MESSAGES, n=2)

    assert server.chat_requests()[0]["body"]["n"] == 2
    assert result.replies == ["first", "second"] and result.finish_reasons == ["stop", "stop"]


def test_empty_content_becomes_empty_string(server, make_client):
    """A choice whose content is null (as tool-calling models send): llama.cpp always sends text, so a script does."""
    client, _ = make_client()
    body = completion_body(["x"])
    body["choices"][0]["message"]["content"] = None
    body["choices"][0]["finish_reason"] = "length"
    server.script(Scripted(body=body))
    result = client.chat(MESSAGES)
    assert result.replies == [""] and result.finish_reasons == ["length"]


def test_429_honours_retry_after(server, make_client, tmp_path):
    """Rate limits with Retry-After come from hosted APIs; a local llama.cpp server never sends 429."""
    client, sleeps_s = make_client()
    server.script(Scripted(status=429, headers={"Retry-After": "7"}, body=error_body("slow down", "rate_limit")),
                  ok("done"))

    result = client.chat(MESSAGES)

    assert result.replies == ["done"] and result.attempts == 2
    assert len(sleeps_s) == 1 and sleeps_s[0] >= 7
    assert len(server.chat_requests()) == 2
    assert "HTTP 429: slow down" in log_records(tmp_path)[0]["errors"][0]["error"]


def test_retry_after_is_capped_by_backoff_max(server, make_client):
    """A 429 with a long Retry-After: only a script sends one on demand."""
    client, sleeps_s = make_client(backoff_max_s=3.0)
    server.script(Scripted(status=429, headers={"Retry-After": "120"}, body=error_body("later")), ok("done"))
    client.chat(MESSAGES)
    assert sleeps_s == [3.0]


def test_server_errors_back_off_with_full_jitter(server, make_client):
    """A burst of 500 and 502 (an HTML page from a proxy), then success: a real server cannot be told to fail twice."""
    client, sleeps_s = make_client(backoff_base_s=1.0, backoff_max_s=60.0)
    server.script(Scripted(status=500, body=error_body("boom", "server_error")),
                  Scripted(status=502, raw=b"<html>bad gateway</html>", headers={"Content-Type": "text/html"}),
                  ok("finally"))

    result = client.chat(MESSAGES)

    assert result.replies == ["finally"] and result.attempts == 3
    assert sleeps_s == pytest.approx(jittered_waits_s(2))
    assert len(server.chat_requests()) == 3


@pytest.mark.parametrize("malformed", [
    Scripted(raw=b'{"id": "chatcmpl-1", "choices": [{"mess'),               # truncated JSON
    Scripted(body={"id": "chatcmpl-1", "object": "chat.completion"}),      # no choices
    Scripted(body={"id": "chatcmpl-1", "choices": []}),                    # empty choices
    Scripted(raw=b"hello", headers={"Content-Type": "text/plain"}),        # not JSON at all
], ids=["bad-json", "no-choices", "empty-choices", "text-plain"])
def test_malformed_200_is_retried(server, make_client, tmp_path, malformed):
    """Broken 200 replies (cut JSON, no choices, plain text) come from broken proxies; a real server sends none."""
    client, sleeps_s = make_client()
    server.script(malformed, ok("good"))

    result = client.chat(MESSAGES)

    assert result.replies == ["good"] and result.attempts == 2 and len(sleeps_s) == 1
    assert "malformed response" in log_records(tmp_path)[0]["errors"][0]["error"]


def test_retries_exhausted_raise_llm_error(server, make_client):
    """Three 503s in a row, counted attempt by attempt: a real server cannot be made to answer 503 on demand."""
    client, sleeps_s = make_client(max_retries=2)
    server.script(*[Scripted(status=503, body=error_body("overloaded", "server_error"))] * 3, ok("never sent"))

    with pytest.raises(LLMError) as caught:
        client.chat(MESSAGES)

    message = str(caught.value)
    assert "3 attempts" in message and "HTTP 503: overloaded" in message and "out of retries" in message
    assert len(server.chat_requests()) == 3 and len(sleeps_s) == 2
    assert client.usage()["failures"] == 1 and client.usage()["requests"] == 1


def test_connection_refused_is_retried_then_reported(tmp_path):
    base_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: connections are refused
    sleeps_s: list[float] = []
    client = LLMClient(LLMConfig(base_url=base_url, max_retries=1), tmp_path, env=ENV, sleep=sleeps_s.append)
    with pytest.raises(LLMError, match="connection error"):
        client.chat(MESSAGES)
    assert len(sleeps_s) == 1


# -- the key -----------------------------------------------------------------------------------

def test_key_goes_in_the_authorization_header_and_nowhere_else(server, make_client, tmp_path):
    """The scripted server records request headers and echoes the key in a 401, as OpenAI does; llama.cpp does neither."""
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
    """What the client sends in place of a key: only a server that records headers shows it."""
    client, _ = make_client(env={})
    server.script(ok("hi"))
    client.chat(MESSAGES)
    assert server.chat_requests()[0]["headers"]["authorization"] == "Bearer not-needed"


def test_no_key_and_no_base_url_is_an_actionable_error(tmp_path):
    with pytest.raises(LLMError, match="OPENAI_API_KEY"):
        LLMClient(LLMConfig(), tmp_path, env={})


# -- concurrency -------------------------------------------------------------------------------

def test_concurrency_limit_holds_across_threads(server, make_client):
    """llama.cpp's server answers one request at a time whatever the client does, so only a server that
    counts requests in flight shows the client's own limit."""
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


def test_local_model_settings():
    config = llm_config_from({"local_model": "/models/coder.gguf", "local_n_ctx": 8192}, env={})
    assert config.is_configured({}) and config.local_n_ctx == 8192 and config.local_threads is None
    assert llm_config_from(overrides={"local_threads": "2", "seed": "3"}, env={}).local_threads == 2
    with pytest.raises(ValueError, match="llm.local_n_ctx"):
        llm_config_from({"local_n_ctx": 0}, env={})
