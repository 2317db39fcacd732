"""Training configuration: frozen dataclasses, a TOML file over them, ``--set a.b=c`` overrides.

The default recipe (README "Warm start"; chosen on the validation traces): the design first
imitates RobustMPC (``warm_start = "robustmpc"``: DAgger, ``llmabr.train.warm_start``), then PPO
fine-tunes it with a small entropy bonus (0.1 decayed to 0.02 over the first 75 % of the budget)
and lr 3e-4; the trusted side keeps the checkpoint best on validation, the imitated policy itself
included (the first checkpoint precedes any PPO update). Measured on broadband with the seed
design: the imitation alone (~40 CPU-s) scores above RobustMPC on validation; fine-tuning with
entropy 0.05 -> 0.01 and lr 1e-4 drifted down from it.

The rest of PPO's settings are those measured for training from scratch (../shared/ANCHORS.md,
README "Quality bar"): gamma 0.99, GAE 0.95, clip 0.2, 64 players x 48 steps (one episode per
player per update), minibatch 512, 3 epochs, advantages not normalized, gradient clipping
effectively off. From scratch (``warm_start = "none"``) the measured recipe is lr 6e-4 and an
entropy bonus on the reward's scale, 1.0 decayed to 0.05 (``ppo.ent_start=1.0 ppo.ent_end=0.05
ppo.learning_rate=6e-4``): decaying it within the first minute locks the policy into the lowest
bitrate. experiments/quality_bar.toml holds the from-scratch broadband recipe of issue 4 (a
bfloat16 trunk and entropy knots; bfloat16 is slower on CPUs without bfloat16 instructions).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path

from llmabr.train.early_stop import EarlyStopConfig


def parse_knots(text: str) -> list[tuple[int, float]]:
    """"0:1.0,1500000:0.37,3500000:0.05" -> [(0, 1.0), (1500000, 0.37), (3500000, 0.05)], checked."""
    try:
        knots = [(int(float(step)), float(value)) for step, value in (part.split(":") for part in text.split(","))]
    except ValueError:
        raise ValueError(f"ppo.ent_schedule must read 'steps:coef,steps:coef,...', got {text!r}") from None
    if knots[0][0] != 0 or any(b[0] <= a[0] for a, b in zip(knots, knots[1:])) or any(v < 0 for _, v in knots):
        raise ValueError(f"ppo.ent_schedule needs its first knot at step 0, steps increasing and coefs >= 0: {text!r}")
    return knots


WARM_STARTS = ("none", "robustmpc", "optimal")


@dataclass(frozen=True)
class ImitationConfig:
    """How much imitation (``train.imitation.*``); chosen on validation (README "Warm start"; run by llmabr.train.warm_start)."""

    rounds: int = 8  # DAgger rounds (robustmpc): round 0 follows the expert, later ones the learner
    episodes_per_round: int = 2  # episodes per player per round: rows = n_envs x episodes x chunks
    epochs: float = 16.0  # passes over each round's new rows (minibatches drawn from all rows so far)
    batch_size: int = 256
    learning_rate: float = 2e-3
    optimal_traces: int = 64  # optimal: training traces planned by the DP
    optimal_starts: int = 2  # optimal: start rows per trace (row 1, then random rows)
    value_episodes: int = 2  # episodes per player of the imitated policy to fit the critic on
    value_epochs: float = 20.0

    def __post_init__(self):
        if self.rounds < 1 or self.episodes_per_round < 1 or self.batch_size < 1 or self.optimal_traces < 1:
            raise ValueError("imitation.rounds, episodes_per_round, batch_size and optimal_traces must be >= 1")
        if self.epochs <= 0 or self.learning_rate <= 0 or self.value_epochs < 0 or self.value_episodes < 0:
            raise ValueError("imitation.epochs and learning_rate must be > 0, value_epochs/episodes >= 0")



TRUNK_DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True)
class PPOConfig:
    learning_rate: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    n_envs: int = 64
    n_steps: int = 48
    batch_size: int = 512
    n_epochs: int = 3
    normalize_advantage: bool = False
    max_grad_norm: float = 100.0
    vf_coef: float = 0.5
    ent_start: float = 0.1
    ent_end: float = 0.02
    ent_decay_fraction: float = 0.75
    ent_decay_steps: int = 0  # >0: the decay ends after at most this many steps, whatever the budget
    # piecewise-linear knots "steps:coef,steps:coef,..." (first at 0, held after the last); replaces the
    # start/end/fraction schedule when set
    ent_schedule: str = ""
    # "bfloat16": the design's trunk runs under CPU autocast while training (heads, loss and weights stay
    # float32); evaluation, export and serving always run float32
    trunk_dtype: str = "float32"

    def __post_init__(self):  # every path (TOML, --set, a search's stored config) builds through here
        if self.ent_schedule:
            parse_knots(self.ent_schedule)
        if self.trunk_dtype not in TRUNK_DTYPES:
            raise ValueError(f"ppo.trunk_dtype must be float32 or bfloat16, not {self.trunk_dtype!r}")


@dataclass(frozen=True)
class TrainConfig:
    network: str = "broadband"
    traces: str = "synthetic"  # a folder or .txt list, or "synthetic" for generated traces of `network`
    trace_format: str = "auto"  # how to read trace files: auto (presets detected), a format or preset name, or a mapping file
    val_traces: str | None = None  # a folder or .txt list (e.g. traces/splits/4g/val.txt); None: split from `traces`
    synthetic_count: int = 120
    video: str | None = None  # profile name or folder; None: the network type's default
    mode: str = "default"
    qoe: str = "lin"
    reward_scale: float | None = None  # None: 4.3 / top Mbps (Envivio's scale on every ladder)
    total_steps: int = 200_000
    seed: int = 0
    val_fraction: float = 0.15
    val_max_traces: int = 40
    eval_every_steps: int = 20_000
    keep_checkpoints: bool = False
    # imitation before PPO (llmabr.train.warm_start): "none", "robustmpc" (DAgger) or "optimal"
    warm_start: str = "robustmpc"
    imitation: ImitationConfig = field(default_factory=ImitationConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    early_stop: EarlyStopConfig = field(default_factory=EarlyStopConfig)

    def __post_init__(self):
        if self.warm_start not in WARM_STARTS:
            raise ValueError(f"warm_start must be one of {', '.join(WARM_STARTS)}, not {self.warm_start!r}")


def _coerce(text: str, current):
    if isinstance(current, bool):
        if text.lower() not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() == "true"
    if isinstance(current, int):
        return int(float(text))
    if isinstance(current, float):
        return float(text)
    if current is None:
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
        return None if text.lower() in ("none", "null") else text
    return text


def apply_overrides(config, values: dict, where: str = ""):
    """A copy of ``config`` with nested ``values`` applied; unknown keys are errors."""
    known = {f.name: f for f in fields(config)}
    changes = {}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"unknown setting '{where}{key}'; known: {', '.join(sorted(known))}")
        current = getattr(config, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"setting {where}{key} is a section, not a value")
            changes[key] = apply_overrides(current, value, f"{where}{key}.")
        else:
            changes[key] = _coerce(value, current) if isinstance(value, str) else value
    return replace(config, **changes)


def parse_set(items: list[str]) -> dict:
    """['ppo.n_epochs=2', 'seed=3'] -> {'ppo': {'n_epochs': '2'}, 'seed': '3'}."""
    tree: dict = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value.strip()
    return tree


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    config = TrainConfig()
    if path is not None:
        with open(path, "rb") as handle:
            config = apply_overrides(config, tomllib.load(handle))
    return apply_overrides(config, parse_set(list(overrides)))


def to_dict(config) -> dict:
    return {f.name: to_dict(getattr(config, f.name)) if is_dataclass(getattr(config, f.name)) else getattr(config, f.name)
            for f in fields(config)}


def from_dict(data: dict) -> TrainConfig:
    return apply_overrides(TrainConfig(), data)
