"""Synthetic throughput traces per network type, calibrated to the real sets of ../shared/traces.

One generative model, parameterised per type by ``traces/synth/<type>.toml`` (data, not code):

* each trace draws its own level: ``median_mbps x exp(s x z)`` with z ~ N(0, 1) and
  s = ``between_sigma`` below the median, ``between_sigma_high`` (default: the same) above it,
  a two-piece log-normal for right-skewed sets such as broadband (a few much faster plans);
* within a trace, log-throughput follows an AR(1) process (coefficient ``phi`` per step,
  stationary std ``sigma``), sampled every ``step_s``;
* optional **states** (5G: line of sight / blocked / LTE fallback): a Markov chain with mean
  dwell times; each state scales the level, or replaces it with an absolute level (LTE);
* optional **slots** (satellite): Starlink reassigns capacity on a 15 s grid, so a per-slot
  factor ``exp(slot_sigma x N(0, 1))`` holds for a whole slot, and with ``dip_probability`` a
  handover dip (factor ``dip_factor``, 0 for an outage) opens the slot for ``dip_s``;
* optional **fades** (3G tunnels, cell edges): Poisson deep fades of random length;
* optional **outages**: Poisson zero-throughput stretches;
* the result is clipped to ``[0, cap_mbps]``.

Each TOML file also records the targets it was calibrated against (the statistics that
``simulator.traces.stats.trace_stats`` gives for the real folders, as in MANIFEST.md);
``tests/simulator/test_synth.py`` checks that generated sets meet them.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

import numpy as np

from simulator.paths import REPO_ROOT
from simulator.traces.model import Trace

SYNTH_TYPES = ("broadband", "3g", "4g", "5g", "satellite")
SETTINGS_DIR = REPO_ROOT / "traces" / "synth"


@lru_cache(maxsize=None)
def settings(network_type: str) -> dict:
    """The generator parameters and calibration targets of ``network_type`` (from its TOML file)."""
    if network_type not in SYNTH_TYPES:
        raise ValueError(f"unknown network type {network_type!r}; choose from {', '.join(SYNTH_TYPES)}")
    path = SETTINGS_DIR / f"{network_type}.toml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: synthetic-trace settings missing (they ship with the repository)")
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    innovations = rng.standard_normal(n) * sigma * np.sqrt(1.0 - phi * phi)
    series = np.empty(n)
    series[0] = rng.standard_normal() * sigma
    for i in range(1, n):
        series[i] = phi * series[i - 1] + innovations[i]
    return series


def _markov_states(rng: np.random.Generator, n: int, step_s: float, states: list[dict]) -> np.ndarray:
    weights = np.array([state["share"] for state in states], dtype=np.float64)
    current = rng.choice(len(states), p=weights / weights.sum())
    path = np.empty(n, dtype=np.int64)
    i = 0
    while i < n:
        dwell = max(1, int(round(rng.exponential(states[current]["dwell_s"]) / step_s)))
        path[i:i + dwell] = current
        i += dwell
        others = [k for k in range(len(states)) if k != current]
        other_weights = weights[others] / weights[others].sum()
        current = others[rng.choice(len(others), p=other_weights)]
    return path


def _poisson_stretches(rng: np.random.Generator, n: int, step_s: float, rate_per_s: float, mean_s: float) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    if rate_per_s <= 0:
        return mask
    starts = np.flatnonzero(rng.random(n) < rate_per_s * step_s)
    for start in starts:
        length = max(1, int(round(rng.exponential(mean_s) / step_s)))
        mask[start:start + length] = True
    return mask


def generate_one(network_type: str, rng: np.random.Generator, name: str, duration_s: float | None = None) -> Trace:
    """One synthetic trace of ``network_type`` drawn from ``rng``."""
    config = settings(network_type)
    step_s = float(rng.choice(config["step_s"])) if isinstance(config["step_s"], list) else float(config["step_s"])
    if duration_s is None:
        duration_s = float(rng.uniform(*config["duration_s"]))
    n = max(2, int(round(duration_s / step_s)))
    spread = rng.standard_normal()
    sigma_level = config["between_sigma"] if spread < 0 else config.get("between_sigma_high", config["between_sigma"])
    level = config["median_mbps"] * np.exp(sigma_level * spread)
    sigma = config["sigma"]
    log_noise = _ar1(rng, n, config["phi"], sigma)
    bw_mbps = level * np.exp(log_noise - sigma * sigma / 2.0)

    if "states" in config:
        path = _markov_states(rng, n, step_s, config["states"])
        for k, state in enumerate(config["states"]):
            in_state = path == k
            if "absolute_mbps" in state:
                own = _ar1(rng, n, config["phi"], state["sigma"])
                bw_mbps[in_state] = state["absolute_mbps"] * np.exp(own[in_state] - state["sigma"] ** 2 / 2.0)
            else:
                bw_mbps[in_state] *= state["scale"]

    if "slots" in config:
        slots = config["slots"]
        slot_of_sample = (np.arange(n) * step_s // slots["slot_s"]).astype(np.int64)
        factors = np.exp(slots["slot_sigma"] * rng.standard_normal(slot_of_sample[-1] + 1))
        bw_mbps *= factors[slot_of_sample]
        dip_slots = np.flatnonzero(rng.random(len(factors)) < slots["dip_probability"])
        samples_per_dip = max(1, int(round(slots["dip_s"] / step_s)))
        for slot in dip_slots:
            first = int(np.searchsorted(slot_of_sample, slot))
            bw_mbps[first:first + samples_per_dip] *= slots["dip_factor"]

    if "fades" in config:
        fades = config["fades"]
        faded = _poisson_stretches(rng, n, step_s, fades["rate_per_s"], fades["mean_s"])
        bw_mbps[faded] *= fades["factor"]

    if "outages" in config:
        outages = config["outages"]
        bw_mbps[_poisson_stretches(rng, n, step_s, outages["rate_per_s"], outages["mean_s"])] = 0.0

    bw_mbps = np.clip(bw_mbps, 0.0, config.get("cap_mbps", np.inf))
    bw_mbps[bw_mbps < config.get("floor_mbps", 0.0)] = 0.0
    bw_mbps = np.round(bw_mbps, 4)
    if not np.any(bw_mbps[1:] > 0):  # vanishingly unlikely; keep every trace usable
        bw_mbps[1] = config["median_mbps"]
    time_s = np.round(np.arange(n + 1) * step_s, 6)
    return Trace(name, time_s, np.concatenate([[bw_mbps[0]], bw_mbps]), source=f"synthetic:{network_type}")


def generate(network_type: str, count: int, seed: int = 0, duration_s: float | None = None) -> list[Trace]:
    """``count`` traces of ``network_type``, reproducible from ``seed``; names ``synth_<type>_<seed>_<i>``.

    Trace i depends only on (type, seed, i), so a larger ``count`` extends a smaller one.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    settings(network_type)  # fail early on an unknown type
    type_key = SYNTH_TYPES.index(network_type)
    return [
        generate_one(network_type, np.random.default_rng([seed, type_key, index]),
                     f"synth_{network_type}_{seed}_{index:04d}", duration_s)
        for index in range(count)
    ]


def settings_path(network_type: str) -> Path:
    return SETTINGS_DIR / f"{network_type}.toml"
