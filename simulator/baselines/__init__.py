"""Batched heuristic ABR baselines over the measurement row (pure numpy, N players per call).

| name        | class          | rule                                                                 |
|-------------|----------------|----------------------------------------------------------------------|
| ``bb``        | BufferBased    | Pensieve's test/bb.py: buffer 5 s reservoir, 10 s cushion            |
| ``rb``        | RateBased      | highest level <= harmonic-mean throughput of the last 5 chunks       |
| ``bola``      | Bola           | BOLA-BASIC, V and gp from 10 s minimum / 30 s target buffer          |
| ``fastmpc``   | FastMPC        | 5-chunk exhaustive MPC on the harmonic-mean throughput                |
| ``robustmpc`` | RobustMPC      | Pensieve's test/mpc.py (harmonic mean / (1 + max recent error))      |

Every policy: ``policy = make_baseline(name, video, layout, **params)``; ``policy.reset(mask)``
when players start episodes; ``levels = policy.act(obs)``. ``run_test_protocol`` (in
``simulator.baselines.protocol``) scores one on the deterministic test protocol.
"""

from __future__ import annotations

from simulator.baselines.base import Baseline
from simulator.baselines.bola import Bola
from simulator.baselines.buffer_based import BufferBased
from simulator.baselines.mpc import FastMPC, RobustMPC
from simulator.baselines.rate_based import RateBased
from simulator.layout import Layout
from simulator.video import VideoProfile

BASELINES: dict[str, type[Baseline]] = {
    "bb": BufferBased,
    "rb": RateBased,
    "bola": Bola,
    "fastmpc": FastMPC,
    "robustmpc": RobustMPC,
}


def make_baseline(name: str, video: VideoProfile, layout: Layout, **params) -> Baseline:
    """Build the baseline registered as ``name`` (see ``BASELINES``) with its parameters."""
    key = name.strip().lower()
    if key not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    return BASELINES[key](video, layout, **params)


__all__ = ["BASELINES", "make_baseline", "Baseline", "BufferBased", "RateBased", "Bola", "FastMPC", "RobustMPC"]
