"""The one door to the LLM: an OpenAI-compatible chat client with retries, a budget and a log.

    client = LLMClient(llm_config_from(toml.get("llm")), log_dir=run_dir)
    result = client.chat([{"role": "user", "content": prompt}], n=2, purpose="propose state")
    result.replies        # one string per choice ("" when a choice had no content)
    client.usage()        # tokens, USD, requests and failures so far

Built on the ``openai`` package's ``OpenAI`` client with its own retries off: this module
retries (exponential backoff with full jitter, honouring ``Retry-After``) so that every attempt
is counted, logged and charged to one budget, and so that tests can replace the sleep.

Every request, its reply or its errors are appended as one JSON line to
``log_dir/llm_requests.jsonl``. The API key is read from the environment once, here, and never
logged: no headers are written, and the key's text is scrubbed from every logged line and every
error message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import openai
from openai.types.chat import ChatCompletion

from llmabr.proposer.llm_config import LLMConfig

log = logging.getLogger(__name__)

LOG_NAME = "llm_requests.jsonl"
OPENAI_BASE_URL = "https://api.openai.com/v1"
# Local servers (vLLM, Ollama, LM Studio) want no key, but the openai package insists on one.
NO_KEY_PLACEHOLDER = "not-needed"
# 408 request timeout, 409 lock conflict, 429 rate limit: worth another try; other 4xx are not.
RETRYABLE_4XX = (408, 409, 429)
SERVER_MESSAGE_MAX_CHARS = 500
# The budget estimate learns tokens per character only from prompts at least this long.
LEARN_MIN_CHARS = 2000
# How servers say the prompt does not fit: OpenAI and llama.cpp's server send the code
# context_length_exceeded; vLLM and others only say so in the message.
CONTEXT_CODE = "context_length_exceeded"
CONTEXT_MESSAGE = re.compile(r"context (length|window)|maximum context|exceeds? the context|prompt is too long", re.IGNORECASE)


class LLMError(RuntimeError):
    """An LLM request failed for good: not retryable, or out of retries. The message says why."""


class BudgetExceeded(LLMError):
    """The request was not sent: the budget is spent, or its worst case would cross it."""


@dataclass
class ChatResult:
    """One successful chat request.

    replies            the text of each choice, in order ("" when a choice had no content)
    finish_reasons     per choice: "stop", "length", ... ("" when the server gave none)
    prompt_tokens, completion_tokens   as the server reported them (0 when it reported none)
    cost_usd           from those tokens and the price table (0 for unpriced models)
    attempts           HTTP attempts made, 1 when nothing was retried
    wall_s             from the call to the reply, backoff waits included
    request_id         this client's sequence number, as in the request log
    """

    replies: list[str]
    finish_reasons: list[str]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    attempts: int
    wall_s: float
    request_id: int


class _AttemptFailed(Exception):
    def __init__(self, message: str, retryable: bool, retry_after_s: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class LLMClient:
    """A thread-safe chat client for one ``LLMConfig``.

    ``log_dir`` None: no request log. ``env`` is where the API key is read from (once, here);
    ``sleep`` and ``rng`` drive the backoff waits (tests pass a recorder and a seeded rng).

    Budget estimate, made before each request without sending anything: prompt tokens ~ the
    characters of all message contents x tokens per character, completion tokens at most
    ``max_tokens * n``; the worst-case cost prices both with the model's price table. Tokens per
    character start at 1/4 (about right for English and code with OpenAI tokenizers) and rise to
    the highest ratio the server's reported prompt tokens have shown on prompts of at least
    ``LEARN_MIN_CHARS`` characters (SmolLM2's tokenizer gives about 0.3 on the proposer's prompts). A request is refused
    (``BudgetExceeded``) when the tokens or USD already spent, plus the worst cases of requests
    still in flight, plus its own worst case would exceed ``budget_tokens`` or ``budget_usd``.
    Spending is then counted from the usage the server reports, so once the ratio is learnt the
    cap is not crossed as long as the server honours ``max_tokens``.
    """

    def __init__(self, config: LLMConfig, log_dir: Path | None, env: Mapping[str, str] = os.environ,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None):
        self.config = config
        self._sleep = sleep
        self._rng = rng or random.Random()
        if config.local_model is not None and config.base_url is None:
            raise LLMError("llm.local_model is set but its server is not started: start it with "
                           "llmabr.proposer.local_server.LocalServer and pass server.client_config(config)")
        api_key = env.get(config.api_key_env)
        if not api_key:
            if config.base_url is None:
                raise LLMError(f"no API key: set the environment variable {config.api_key_env} "
                               "(or llm.api_key_env to the variable holding it), or set "
                               "llm.base_url / LLMABR_LLM_BASE_URL to a local server")
            api_key = NO_KEY_PLACEHOLDER
        self._secrets = [api_key] if api_key != NO_KEY_PLACEHOLDER else []
        self._base_url = config.base_url or OPENAI_BASE_URL
        # Passing base_url explicitly keeps the openai package from reading OPENAI_BASE_URL
        # itself: llm_config_from already decided where requests go.
        self._openai = openai.OpenAI(base_url=self._base_url, api_key=api_key,
                                     timeout=config.timeout_s, max_retries=0)
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._lock = threading.Lock()
        self._next_request_id = 0
        self._totals = {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0,
                        "requests": 0, "failures": 0, "attempts": 0}
        self._in_flight_tokens = 0
        self._in_flight_usd = 0.0
        self._tokens_per_char = 0.25
        self._log_path = None
        if log_dir is not None:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            self._log_path = Path(log_dir) / LOG_NAME
        if config.price_usd_per_mtok() is None:
            log.warning("model %r has no price in llm.prices_usd_per_mtok: its cost is counted as 0 "
                        "USD and budget_usd cannot stop it", config.model)

    def chat(self, messages: list[dict], n: int | None = None, purpose: str = "") -> ChatResult:
        """Send one chat-completions request; retry transient failures; return every choice.

        ``n`` choices (default ``config.n``). Raises ``BudgetExceeded`` before sending when the
        budget would be crossed, and ``LLMError`` when the request fails for good.
        """
        n = n or self.config.n
        started_s = time.monotonic()
        with self._lock:
            request_id = self._next_request_id
            self._next_request_id += 1
        record = {"request_id": request_id, "time": datetime.now(timezone.utc).isoformat(),
                  "purpose": purpose, "base_url": _without_userinfo(self._base_url),
                  "model": self.config.model, "messages": messages,
                  "params": {"n": n, "temperature": self.config.temperature,
                             "max_tokens": self.config.max_tokens, "seed": self.config.seed}}
        try:
            estimate_tokens, estimate_usd = self._reserve(messages, n)
        except BudgetExceeded as err:
            self._log({**record, "outcome": "budget_exceeded", "error": str(err)})
            raise
        params = {"model": self.config.model, "messages": messages,
                  "temperature": self.config.temperature, "max_tokens": self.config.max_tokens}
        if n != 1:
            params["n"] = n  # only when needed: some compatible servers reject the field
        if self.config.seed is not None:
            params["seed"] = self.config.seed
        errors = []
        attempts = 0
        result = None
        try:
            while result is None:
                attempts += 1
                try:
                    with self._slots:
                        completion = self._attempt(params)
                    result = self._result(completion, request_id, attempts, started_s)
                except _AttemptFailed as failure:
                    errors.append({"attempt": attempts, "error": self._scrub(str(failure))})
                    if not failure.retryable or attempts > self.config.max_retries:
                        raise self._fail(record, errors, started_s, failure) from None
                    wait_s = self._backoff_s(attempts - 1, failure.retry_after_s)
                    errors[-1]["wait_s"] = wait_s
                    self._sleep(wait_s)
        finally:
            # Spending replaces the held worst case in one step, so that a concurrent budget
            # check never sees neither.
            with self._lock:
                self._in_flight_tokens -= estimate_tokens
                self._in_flight_usd -= estimate_usd
                self._totals["attempts"] += attempts
                self._totals["requests"] += 1
                if result is None:
                    self._totals["failures"] += 1
                else:
                    chars = _message_chars(messages)
                    if chars >= LEARN_MIN_CHARS:  # long enough that the chat template's own tokens do not count
                        self._tokens_per_char = max(self._tokens_per_char, result.prompt_tokens / chars)
                    self._totals["prompt_tokens"] += result.prompt_tokens
                    self._totals["completion_tokens"] += result.completion_tokens
                    self._totals["cost_usd"] += result.cost_usd
        self._log({**record, "outcome": "ok", "replies": result.replies,
                   "finish_reasons": result.finish_reasons,
                   "usage": {"prompt_tokens": result.prompt_tokens,
                             "completion_tokens": result.completion_tokens},
                   "cost_usd": result.cost_usd, "attempts": result.attempts, "errors": errors,
                   "wall_s": result.wall_s})
        return result

    def usage(self) -> dict:
        """Totals so far: prompt_tokens, completion_tokens, cost_usd, requests (sent, whatever
        their outcome), failures (requests that ended in LLMError), attempts (HTTP attempts)."""
        with self._lock:
            return dict(self._totals)

    def _attempt(self, params: dict) -> ChatCompletion:
        try:
            completion = self._openai.chat.completions.create(**params)
        except openai.APITimeoutError:
            raise _AttemptFailed(f"timed out after {self.config.timeout_s} s", retryable=True) from None
        except openai.APIConnectionError as err:
            raise _AttemptFailed(f"connection error: {err}", retryable=True) from None
        except openai.APIStatusError as err:
            status = err.status_code
            if _context_exceeded(err):  # the same request would fail again, whatever the status says
                raise _AttemptFailed(
                    f"HTTP {status}: the prompt does not fit the model's context window: {_server_message(err)} "
                    f"Shorten the prompt or lower llm.max_tokens ({self.config.max_tokens}), or give the model a "
                    f"larger context (llm.local_n_ctx for llm.local_model; --n_ctx for llama.cpp's server, "
                    f"--max-model-len for vLLM, num_ctx for Ollama)", retryable=False) from None
            retryable = status in RETRYABLE_4XX or status >= 500
            raise _AttemptFailed(f"HTTP {status}: {_server_message(err)}", retryable,
                                 _retry_after_s(err.response.headers)) from None
        except openai.APIResponseValidationError as err:
            raise _AttemptFailed(f"malformed response: {err}", retryable=True) from None
        except ValueError as err:  # the openai package lets json.JSONDecodeError through
            raise _AttemptFailed(f"malformed response: body is not valid JSON ({err})", retryable=True) from None
        except openai.OpenAIError as err:  # anything else the package raises: not known to be transient
            raise _AttemptFailed(f"{type(err).__name__}: {err}", retryable=False) from None
        if not isinstance(completion, ChatCompletion):  # a 200 whose Content-Type is not JSON
            raise _AttemptFailed(f"malformed response: not a chat completion: {str(completion)[:200]!r}",
                                 retryable=True)
        choices = completion.choices
        if not isinstance(choices, list) or not choices or any(c.message is None for c in choices):
            raise _AttemptFailed("malformed response: no choices with a message in the reply", retryable=True)
        return completion

    def _result(self, completion: ChatCompletion, request_id: int, attempts: int, started_s: float) -> ChatResult:
        usage = completion.usage
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        return ChatResult(
            replies=[choice.message.content or "" for choice in completion.choices],
            finish_reasons=[choice.finish_reason or "" for choice in completion.choices],
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            cost_usd=self._cost_usd(prompt_tokens, completion_tokens), attempts=attempts,
            wall_s=time.monotonic() - started_s, request_id=request_id)

    def _cost_usd(self, prompt_tokens: float, completion_tokens: float) -> float:
        price = self.config.price_usd_per_mtok()
        if price is None:
            return 0.0
        return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6

    def _reserve(self, messages: list[dict], n: int) -> tuple[int, float]:
        """Check the budget for this request's worst case and hold it while the request runs."""
        with self._lock:
            prompt_tokens = math.ceil(_message_chars(messages) * self._tokens_per_char)
        worst_tokens = prompt_tokens + self.config.max_tokens * n
        worst_usd = self._cost_usd(prompt_tokens, self.config.max_tokens * n)
        budget_tokens, budget_usd = self.config.budget_tokens, self.config.budget_usd
        with self._lock:
            spent_tokens = self._totals["prompt_tokens"] + self._totals["completion_tokens"]
            spent_usd = self._totals["cost_usd"]
            if budget_tokens is not None and spent_tokens + self._in_flight_tokens + worst_tokens > budget_tokens:
                raise BudgetExceeded(
                    f"LLM token budget: {spent_tokens} of llm.budget_tokens={budget_tokens} used"
                    f" ({self._in_flight_tokens} more held by requests in flight); this request could"
                    f" use {worst_tokens} (~{prompt_tokens} prompt + max_tokens {self.config.max_tokens}"
                    f" x n {n}). Not sent. Raise llm.budget_tokens or lower llm.max_tokens or n.")
            if budget_usd is not None and spent_usd + self._in_flight_usd + worst_usd > budget_usd:
                raise BudgetExceeded(
                    f"LLM cost budget: {spent_usd:.4f} of llm.budget_usd={budget_usd} USD spent"
                    f" ({self._in_flight_usd:.4f} more held by requests in flight); this request could"
                    f" cost {worst_usd:.4f} USD. Not sent. Raise llm.budget_usd or lower llm.max_tokens or n.")
            self._in_flight_tokens += worst_tokens
            self._in_flight_usd += worst_usd
        return worst_tokens, worst_usd

    def _backoff_s(self, retry_index: int, retry_after_s: float | None) -> float:
        # Full jitter spreads the retries of many concurrent callers; a server's Retry-After is
        # a floor, since retrying earlier would only be refused again.
        cap_s = self.config.backoff_max_s
        wait_s = min(cap_s, self.config.backoff_base_s * 2 ** retry_index) * self._rng.random()
        if retry_after_s is not None:
            wait_s = min(cap_s, max(retry_after_s, wait_s))
        return wait_s

    def _fail(self, record: dict, errors: list[dict], started_s: float, failure: _AttemptFailed) -> LLMError:
        attempts = len(errors)
        why = "not retryable" if not failure.retryable else f"out of retries (llm.max_retries={self.config.max_retries})"
        message = self._scrub(
            f"LLM request {record['request_id']} ({record['purpose'] or 'no purpose'}) to {record['base_url']}"
            f" model {self.config.model} failed after {attempts} attempt{'s' * (attempts != 1)}, {why}:"
            f" {failure}")
        self._log({**record, "outcome": "failed", "attempts": attempts, "errors": errors,
                   "error": message, "wall_s": time.monotonic() - started_s})
        return LLMError(message)

    def _log(self, record: dict):
        if self._log_path is None:
            return
        line = self._scrub(json.dumps(record, ensure_ascii=False, default=str))
        with self._lock, open(self._log_path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[api key]")
            text = text.replace(json.dumps(secret)[1:-1], "[api key]")  # its JSON-escaped form
        return text


def _message_chars(messages: list[dict]) -> int:
    return sum(len(str(message.get("content") or "")) for message in messages)


def _server_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message", error) if isinstance(error, dict) else error
    else:
        message = body if body is not None else err.message
    return str(message)[:SERVER_MESSAGE_MAX_CHARS]


def _context_exceeded(err: openai.APIStatusError) -> bool:
    body = err.body
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("code") == CONTEXT_CODE:
        return True
    return bool(CONTEXT_MESSAGE.search(_server_message(err)))


def _retry_after_s(headers) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date), or None."""
    if headers is None:
        return None
    if headers.get("retry-after-ms"):
        try:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - time.time())


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
