"""Probe batches: measurement rows recorded from the simulator on several network types.

S1 feeds these to a design's state function. Rows come from real traces in ../shared when
present (the first traces of each type's folder), else from the synthetic generator; each type
plays its default video profile, and players follow a mix of random and buffer-based choices so
that buffers, stalls, sleeps and every level all occur. The first row of each episode (one
valid history slot, the rest zero) is always included: it is where divisions by zero hide.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from simulator.config import SimConfig
from simulator.core import VecSim
from simulator.paths import shared_traces
from simulator.traces import SYNTH_TYPES, generate, load_trace, trace_files
from simulator.video import default_profile

REAL_FOLDERS = {
    "broadband": ("broadband", "train"),
    "3g": ("3g", "train"),
    "4g": ("4g", "all"),
    "5g": ("5g", "all"),
    "satellite": ("satellite", "all"),
}
TRACES_PER_TYPE = 6


def _traces(network_type: str):
    folder = shared_traces(*REAL_FOLDERS[network_type])
    if folder is not None:
        files = trace_files(folder)
        step = max(1, len(files) // TRACES_PER_TYPE)
        return [load_trace(path) for path in files[::step][:TRACES_PER_TYPE]], "real"
    return generate(network_type, TRACES_PER_TYPE, seed=123), "synthetic"


@lru_cache(maxsize=8)
def probe_batches(rows_per_type: int = 128, history_len: int = 16, seed: int = 0) -> tuple[dict, str]:
    """({network type: float32 [rows_per_type, layout.size]}, "real" | "synthetic" | "mixed")."""
    batches, sources = {}, set()
    rng = np.random.default_rng(seed)
    for network_type in SYNTH_TYPES:
        traces, source = _traces(network_type)
        sources.add(source)
        video = default_profile(network_type)
        num_envs = 32
        sim = VecSim(traces, video, num_envs, SimConfig(history_len=history_len), seed=seed)
        rows = [sim.reset().copy()]
        buffer_slice = sim.layout.slice("buffer_s")
        for step in range(60):
            buffer_s = sim.obs[:, buffer_slice][:, -1]
            buffer_based = np.clip(((buffer_s - 5.0) / 10.0 * (video.n_levels - 1)).astype(int), 0, video.n_levels - 1)
            random_levels = rng.integers(0, video.n_levels, num_envs)
            levels = np.where(np.arange(num_envs) % 2 == 0, buffer_based, random_levels)
            rows.append(sim.step(levels).obs.copy())
        pool = np.concatenate(rows)
        first_rows = rows[0][: rows_per_type // 8]
        picked = pool[rng.choice(len(pool), rows_per_type - len(first_rows), replace=False)]
        batches[network_type] = np.ascontiguousarray(np.concatenate([first_rows, picked]), dtype=np.float32)
    source = sources.pop() if len(sources) == 1 else "mixed"
    return batches, source
