"""What a training run learns from and is validated on (trusted side: no design code, no torch).

``load_data`` splits training from validation traces (never touching test traces);
``save_traces`` / ``load_traces`` hand traces to the caged trainer as one .npz in its work folder,
so the cage reads data it was given instead of paths into the user's folders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmabr.train.config import TrainConfig
from simulator.traces import Trace, TraceSet, generate, load_trace_dir
from simulator.video import default_profile, load_profile


def split_traces(traces: list, val_fraction: float, val_max: int, seed: int = 0) -> tuple[list, list]:
    """Training and validation traces, split by trace (a fixed shuffle, independent of the run seed)."""
    if len(traces) < 2:
        raise ValueError("training needs at least 2 traces (some are held out for validation)")
    order = np.random.default_rng(seed).permutation(len(traces))
    n_val = min(val_max, max(1, int(round(val_fraction * len(traces)))))
    val = sorted((traces[i] for i in order[:n_val]), key=lambda t: t.name)
    train = [traces[i] for i in sorted(order[n_val:])]
    return train, val


def load_data(config: TrainConfig):
    """(training traces, validation traces, video profile) for ``config``."""
    if config.traces == "synthetic":
        traces = generate(config.network, config.synthetic_count, seed=0)
    else:
        traces = load_trace_dir(config.traces, fmt=config.trace_format)
    video = load_profile(config.video) if config.video else default_profile(config.network)
    if config.val_traces:  # an explicit validation set (split by trace ID elsewhere: traces/splits)
        return traces, load_trace_dir(config.val_traces, fmt=config.trace_format)[:config.val_max_traces], video
    train, val = split_traces(traces, config.val_fraction, config.val_max_traces)
    return train, val, video


def save_traces(traces: list[Trace], path: Path) -> None:
    """Traces as one .npz (names, flat rows, offsets)."""
    packed = TraceSet.from_traces(traces)
    np.savez(path, names=np.array(packed.names), time_s=packed.time_s, bw_mbps=packed.bw_mbps, offsets=packed.offsets)


def load_traces(path: Path) -> list[Trace]:
    with np.load(path, allow_pickle=False) as data:
        offsets, time_s, bw_mbps = data["offsets"], data["time_s"], data["bw_mbps"]
        return [Trace(str(name), time_s[lo:hi], bw_mbps[lo:hi], source=f"{Path(path).name}:{name}")
                for name, lo, hi in zip(data["names"], offsets[:-1], offsets[1:])]
