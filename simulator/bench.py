"""Simulator throughput benchmark: the C core at several batch sizes against the Python reference.

Both run in the same process, pinned to one core, on the same traces and video, with random
actions drawn beforehand; the figure is chunk-steps per second (one player fetching one chunk).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from simulator.config import SimConfig
from simulator.core import VecSim

C_BATCH_SIZES = (1, 16, 256, 4096)


@dataclass
class BenchResult:
    backend: str
    num_envs: int
    steps: int
    seconds: float

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds


def pin_to_one_core() -> int | None:
    """Pin this process to one CPU so numbers mean 'per core'; returns the CPU, or None if unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def measure(traces, video, backend: str, num_envs: int, seconds: float, config: SimConfig, seed: int = 0) -> BenchResult:
    """Step ``num_envs`` players with random levels for about ``seconds``; count chunk-steps."""
    sim = VecSim(traces, video, num_envs, config, seed=seed, backend=backend)
    sim.reset()
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, video.n_levels, size=(64, num_envs)).astype(np.int32)
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for row in actions:
            sim.step(row)
        calls += len(actions)
        now = time.perf_counter()
        if now >= deadline:
            return BenchResult(backend, num_envs, calls * num_envs, now - start)


def bench_sim(traces, video, seconds: float = 1.0, config: SimConfig = SimConfig(), reference_envs: int = 16,
              progress=None) -> list[BenchResult]:
    """C core at ``C_BATCH_SIZES`` then the reference; ``progress(result)`` is called after each."""
    results = []
    jobs = [("c", n) for n in C_BATCH_SIZES] + [("reference", reference_envs)]
    for backend, num_envs in jobs:
        result = measure(traces, video, backend, num_envs, seconds, config)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def speedup(results: list[BenchResult], c_envs: int = 256) -> float:
    c_rate = next(r.steps_per_s for r in results if r.backend == "c" and r.num_envs == c_envs)
    ref_rate = next(r.steps_per_s for r in results if r.backend == "reference")
    return c_rate / ref_rate
