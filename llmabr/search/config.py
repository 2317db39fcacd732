"""Search configuration: frozen dataclasses, a TOML file over them, dotted ``--set`` overrides.

The defaults are the embedded job of ``./run search``: offline proposer, synthetic broadband
traces, two workers, a budget that ends in about ten minutes on two cores.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from llmabr.train.config import ImitationConfig, TrainConfig, apply_overrides, parse_set, to_dict

SEARCH_IMITATION = ImitationConfig(rounds=4, episodes_per_round=1, epochs=12.0, value_episodes=1, value_epochs=5.0)


@dataclass(frozen=True)
class BudgetConfig:
    minutes: float = 10.0  # wall-clock for the whole search; proposing stops at `propose_fraction` of it
    propose_fraction: float = 0.5
    designs: int = 10  # proposals in total (paper mode: half state, half network, then the combinations)
    # Every run starts with the imitation warm start (SEARCH_IMITATION, ~20 CPU-s), so S2 and S3 need few PPO
    # steps: on synthetic traces PPO mostly holds the imitated policy's validation QoE, it does not add to it.
    screen_steps: int = 12_288  # S2: the quick budget each design gets (early stopping may end it sooner)
    screen_eval_every: int = 6_144
    train_steps: int = 12_288  # S3: full training of the finalists
    train_seeds: int = 5  # S3 seeds for every finalist and the seed design; 0: screening only (no S3, no test)
    top_k: int = 2  # finalists (and, in paper mode, the k x k state/network combinations)
    llm_usd: float | None = None  # LLM spending cap (the [llm] section's budget_usd wins if set)


@dataclass(frozen=True)
class SearchConfig:
    mode: str = "evolve"  # "evolve" (iterative, archive feedback) or "paper" (states, networks, combinations)
    network: str = "broadband"
    traces: str = "synthetic"  # training traces (validation is split from them)
    test_traces: str = "synthetic"  # held out: synthetic test traces use another generator seed
    synthetic_test_count: int = 40
    proposer: str = "auto"  # "auto" (LLM if configured, else offline), "offline", "llm", "replay"
    replay: str | None = None  # proposer "replay": a folder of designs or a JSONL of LLM replies, taken in order
    seed: int = 0
    workers: int = 2  # local Ray: one training process per core
    ray_address: str | None = None  # an existing Ray cluster ("auto" or host:port); None: start a local one
    queue_ahead: int = 4  # proposals kept ready ahead of the workers
    round_size: int = 4  # evolve: proposals per round
    early_stop: bool = True  # S2 early stopping against the seed design's curve
    # S1's feature-scale check: "reject" unnormalized designs, or "warn" and train them anyway (replaying
    # published designs as they are); the finding stays in the design's check.json either way
    check_normalization: str = "reject"
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    # PPO settings (network/traces/steps are set per stage); the imitation is shorter than `llmabr train`'s
    # (4 x 3,072 rows instead of 8 x 6,144: about a quarter of the CPU time) so that the embedded search fits in ~10 minutes
    train: TrainConfig = field(default_factory=lambda: TrainConfig(imitation=SEARCH_IMITATION))
    llm: dict = field(default_factory=dict)  # the [llm] section (llmabr.proposer.llm_config)

    def __post_init__(self):
        if self.mode not in ("evolve", "paper"):
            raise ValueError(f"search.mode must be 'evolve' or 'paper', got {self.mode!r}")
        if self.check_normalization not in ("reject", "warn"):
            raise ValueError(f"search.check_normalization must be 'reject' or 'warn', got {self.check_normalization!r}")
        if self.proposer not in ("auto", "offline", "llm", "replay"):
            raise ValueError(f"search.proposer must be auto, offline, llm or replay, got {self.proposer!r}")
        if (self.proposer == "replay") != (self.replay is not None):
            raise ValueError("search.proposer = 'replay' and search.replay = PATH go together")
        if self.workers < 1 or self.budget.designs < 1 or self.budget.top_k < 1 or self.budget.train_seeds < 0:
            raise ValueError("workers, budget.designs and budget.top_k must be at least 1, budget.train_seeds at least 0")


def load_search_config(path: str | Path | None = None, overrides: list[str] = ()) -> SearchConfig:
    config = SearchConfig()
    if path is not None:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
        llm = data.pop("llm", None)
        config = apply_overrides(config, data)
        if llm is not None:
            config = apply_overrides(config, {"llm": llm})
    tree = parse_set(list(overrides))
    llm = tree.pop("llm", None)
    config = apply_overrides(config, tree)
    if llm:
        config = apply_overrides(config, {"llm": {**config.llm, **llm}})
    SearchConfig.__post_init__(config)
    return config


def search_to_dict(config: SearchConfig) -> dict:
    return to_dict(config)


def search_from_dict(data: dict) -> SearchConfig:
    data = dict(data)
    llm = data.pop("llm", {})
    return apply_overrides(apply_overrides(SearchConfig(), data), {"llm": llm})
