"""Shared fixtures. Real data comes from ../shared when present; every test that needs it is
marked ``shared`` and skipped with a reason where it is absent."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.paths import shared_dir
from simulator.traces.model import Trace
from simulator.video import ENVIVIO_LADDER_KBPS, VideoProfile, load_pensieve_dir

SHARED = shared_dir()


def pytest_collection_modifyitems(config, items):
    if SHARED is not None:
        return
    skip = pytest.mark.skip(reason="needs the real traces/video in ../shared, which is absent here")
    for item in items:
        if "shared" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_path():
    if SHARED is None:
        pytest.skip("needs ../shared (real traces and Envivio sizes), absent here")
    return SHARED


def synthetic_video(n_chunks: int = 49, seed: int = 0) -> VideoProfile:
    """An Envivio-shaped ladder with random chunk sizes: needs no data files."""
    rng = np.random.default_rng(seed)
    complexity = rng.lognormal(0.0, 0.25, n_chunks)
    sizes = np.outer(np.array(ENVIVIO_LADDER_KBPS) * 1000 / 8 * 4.0, complexity).round()
    return VideoProfile("test-video", np.array(ENVIVIO_LADDER_KBPS), sizes, hd_reward=(1, 2, 3, 12, 15, 20))


@pytest.fixture(scope="session")
def envivio():
    """The real Envivio sizes when ../shared is present, else an Envivio-shaped synthetic video."""
    if SHARED is not None:
        return load_pensieve_dir(SHARED / "video" / "envivio", name="envivio")
    return synthetic_video()


def hand_traces() -> list[Trace]:
    """Small traces that exercise the corners: wrap-around, zero stretches, t0 != 0, fast links."""
    rng = np.random.default_rng(7)
    traces = []
    for index, (rows, step_s, t0_s, scale_mbps) in enumerate(
        [(12, 1.0, 0.0, 1.5), (40, 0.5, 3.0, 3.0), (300, 1.0, 1.0, 60.0), (25, 5.0, 0.0, 0.8)]
    ):
        bw_mbps = rng.gamma(2.0, scale_mbps / 2.0, rows)
        bw_mbps[rng.random(rows) < 0.1] = 0.0
        bw_mbps[1] = max(bw_mbps[1], 0.1)
        time_s = t0_s + step_s * np.arange(rows)
        traces.append(Trace(f"hand_{index}", time_s, bw_mbps, source=f"hand:{index}"))
    return traces
