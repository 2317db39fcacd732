"""Where the LLM lives and how it may be used: endpoint, model, sampling, retries, budget.

Precedence, lowest first: the defaults below < the ``[llm]`` TOML section < the environment
(``LLMABR_LLM_BASE_URL``, ``LLMABR_LLM_MODEL``, ``LLMABR_LLM_API_KEY_ENV``; ``OPENAI_BASE_URL``
when nothing else set a base URL) < CLI overrides (``--set llm.model=...``).

The API key is never part of the configuration: only the *name* of the environment variable
holding it is (``api_key_env``); ``llmabr.proposer.client`` reads the key from there when it
builds its client, so a config can be logged, saved and shown without leaking it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from llmabr.train.config import apply_overrides

# List prices in USD per million tokens, [input, output], at the time of writing. They only
# drive the cost report and the budget cap: override or extend them in the TOML section
# (``[llm.prices_usd_per_mtok]``, ``"my-model" = [0.5, 1.5]``). Models not listed cost 0.
DEFAULT_PRICES_USD_PER_MTOK: dict[str, list[float]] = {
    "gpt-4o": [2.50, 10.00],
    "gpt-4o-mini": [0.15, 0.60],
    "gpt-4.1": [2.00, 8.00],
    "gpt-4.1-mini": [0.40, 1.60],
    "gpt-4.1-nano": [0.10, 0.40],
    "o3-mini": [1.10, 4.40],
}

# Environment variables that may set a field: a deployment address, a model name, and the
# name (never the value) of the variable that holds the key.
ENV_FIELDS = {
    "LLMABR_LLM_BASE_URL": "base_url",
    "LLMABR_LLM_MODEL": "model",
    "LLMABR_LLM_API_KEY_ENV": "api_key_env",
}


@dataclass(frozen=True)
class LLMConfig:
    """How to reach an OpenAI-compatible chat-completions endpoint and how much to spend.

    base_url             None: OpenAI's own API; else e.g. ``http://localhost:8000/v1`` (vLLM,
                         Ollama, LM Studio; these need no key)
    local_model          path of a GGUF file: the command starts llama.cpp's OpenAI-compatible
                         server for it (``llmabr.proposer.local_server``), talks to it (``base_url``
                         is then ignored) and stops it at the end; needs ``llmabr[local-llm]``
    local_n_ctx          that server's context window in tokens (prompt + reply must fit)
    local_threads        its CPU threads; None: every core this process may run on
    local_gpu_layers     layers offloaded to a GPU (-1: all) by a GPU build of llama.cpp
    local_start_timeout_s  how long loading the model may take before the command gives up
    model                model name sent with each request; also the price-table key
    api_key_env          name of the environment variable holding the key
    temperature, n, max_tokens   sampling: n choices of at most max_tokens completion tokens
    seed                 sent with each request when set (OpenAI and llama.cpp honour it), so
                         that temperature-0 runs repeat
    timeout_s            per HTTP attempt (a 7B model on CPU may take minutes per reply: raise it)
    concurrency          most requests in flight at once, over all threads using one client
    max_retries          retries after the first attempt (429, 5xx, timeouts, malformed replies)
    backoff_base_s, backoff_max_s   exponential backoff with full jitter, capped
    budget_usd, budget_tokens       None: no cap; else no request starts whose worst case
                         would cross the cap (see ``LLMClient``)
    prices_usd_per_mtok  model -> [input, output] USD per million tokens
    """

    base_url: str | None = None
    local_model: str | None = None
    local_n_ctx: int = 4096
    local_threads: int | None = None
    local_gpu_layers: int = 0
    local_start_timeout_s: float = 300.0
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.8
    n: int = 1
    max_tokens: int = 2048
    seed: int | None = None
    timeout_s: float = 120.0
    concurrency: int = 4
    max_retries: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    budget_usd: float | None = None
    budget_tokens: int | None = None
    prices_usd_per_mtok: dict = field(default_factory=lambda: dict(DEFAULT_PRICES_USD_PER_MTOK))

    def __post_init__(self):
        positive = {"n": self.n, "max_tokens": self.max_tokens, "timeout_s": self.timeout_s,
                    "concurrency": self.concurrency, "local_n_ctx": self.local_n_ctx,
                    "local_start_timeout_s": self.local_start_timeout_s}
        if self.local_threads is not None:
            positive["local_threads"] = self.local_threads
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"llm.{name} must be > 0, got {value!r}")
        for name in ("max_retries", "backoff_base_s", "backoff_max_s", "temperature"):
            if getattr(self, name) < 0:
                raise ValueError(f"llm.{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("budget_usd", "budget_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"llm.{name} must be >= 0 or unset, got {getattr(self, name)!r}")
        for model, price in self.prices_usd_per_mtok.items():
            if len(price) != 2 or any(p < 0 for p in price):
                raise ValueError(f"llm.prices_usd_per_mtok.{model} must be [input, output] USD per "
                                 f"million tokens, both >= 0; got {price!r}")

    def price_usd_per_mtok(self, model: str | None = None) -> tuple[float, float] | None:
        """[input, output] USD per million tokens for ``model`` (default: ``self.model``), or None."""
        price = self.prices_usd_per_mtok.get(model or self.model)
        return None if price is None else (float(price[0]), float(price[1]))

    def is_configured(self, env: Mapping[str, str]) -> bool:
        """True when a local model or a base URL is set, or ``env`` holds the API key variable."""
        return self.local_model is not None or self.base_url is not None or bool(env.get(self.api_key_env))

    @property
    def configured(self) -> bool:
        """True when an LLM can be reached: a local model or a base URL is set, or the key variable is present.

        False means the caller should fall back to the offline proposer."""
        return self.is_configured(os.environ)


def llm_config_from(toml_section: dict | None = None, env: Mapping[str, str] = os.environ,
                    overrides: dict | None = None) -> LLMConfig:
    """The effective ``LLMConfig``: defaults < TOML section < environment < ``overrides``.

    ``toml_section`` is the ``[llm]`` table; ``overrides`` are CLI values (strings are coerced to
    the field's type). ``prices_usd_per_mtok`` tables are merged into the defaults, not replacing
    them. Unknown keys raise ValueError naming the key.
    """
    config = LLMConfig()
    config = _apply(config, toml_section or {})
    from_env = {name: env[var] for var, name in ENV_FIELDS.items() if env.get(var)}
    if "base_url" not in from_env and config.base_url is None and env.get("OPENAI_BASE_URL"):
        from_env["base_url"] = env["OPENAI_BASE_URL"]
    config = _apply(config, from_env)
    return _apply(config, overrides or {})


def _apply(config: LLMConfig, values: dict) -> LLMConfig:
    values = dict(values)
    prices = values.pop("prices_usd_per_mtok", None)
    config = apply_overrides(config, values, where="llm.")
    if prices is not None:
        if not isinstance(prices, Mapping):
            raise ValueError("llm.prices_usd_per_mtok must be a table: model = [input, output]")
        config = replace(config, prices_usd_per_mtok={**config.prices_usd_per_mtok, **prices})
    return config
