"""EnvPool-style alignment: the C core equals the Python reference, step by step, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.config import SimConfig, test_config
from simulator.core import F64_FIELDS, I32_FIELDS, VecSim
from tests.conftest import SHARED, hand_traces

REAL_TRACE_FILES = [
    "3g/test/bus.ljansbakken-oslo-report.2010-09-28_1407CEST.log_0",
    "broadband/test/010_test_fcc_trace_14731_http---www.facebook.com_1140_0",
    "broadband/train/" + "trace_*",  # a 5 s-step FCC trace
    "4g/all/lumos5g_verizon_lte/*",
    "4g/all/belgium_ghent_sabre/*",
    "5g/all/*",  # starts at t = 1 s: the wrap-around quirk matters
    "satellite/all/*",
]


def real_traces():
    from simulator.traces import load_trace

    traces = []
    for pattern in REAL_TRACE_FILES:
        matches = sorted((SHARED / "traces").glob(pattern))
        traces.append(load_trace(matches[0]))
    return traces


CONFIGS = [
    pytest.param(SimConfig(mode=mode, noise=noise), id=f"{mode}-{'noise' if noise else 'clean'}")
    for mode in ("pensieve", "default")
    for noise in (False, True)
] + [
    pytest.param(test_config(mode="pensieve"), id="pensieve-test-protocol"),
    pytest.param(SimConfig(qoe="log", reward_scale=0.1, history_len=8), id="default-log-scaled"),
    pytest.param(SimConfig(qoe="hd", buffer_cap_s=20.0), id="default-hd-small-buffer"),
]


def assert_aligned(traces, video, config, num_envs=8, n_steps=500, seed=11):
    c_sim = VecSim(traces, video, num_envs, config, seed=seed, backend="c")
    ref_sim = VecSim(traces, video, num_envs, config, seed=seed, backend="reference")
    np.testing.assert_array_equal(c_sim.reset(), ref_sim.reset())
    rng = np.random.default_rng(seed)
    episodes = 0
    for step in range(n_steps):
        # Sticky random actions: long runs at one level fill the buffer (sleeps) or drain it (stalls).
        levels = rng.integers(0, video.n_levels, num_envs) if step % 7 == 0 else levels  # noqa: F821
        c_out, ref_out = c_sim.step(levels), ref_sim.step(levels)
        for name in F64_FIELDS + I32_FIELDS + ("done", "obs"):
            np.testing.assert_array_equal(
                getattr(c_out, name), getattr(ref_out, name), err_msg=f"{name} differs at step {step}"
            )
        ended = c_out.done.astype(bool)
        np.testing.assert_array_equal(c_out.final_obs[ended], ref_out.final_obs[ended], err_msg=f"final_obs, step {step}")
        episodes += int(ended.sum())
    return c_sim, episodes


@pytest.mark.parametrize("config", CONFIGS)
def test_c_equals_reference_on_hand_traces(config, envivio):
    _, episodes = assert_aligned(hand_traces(), envivio, config)
    assert episodes >= 8 * (500 // 49) - 8  # episode boundaries and auto-resets were exercised


@pytest.mark.shared
@pytest.mark.parametrize("config", CONFIGS[:4])
def test_c_equals_reference_on_real_traces(config, envivio):
    # 16 players x 400 chunks = 6400 random-action steps per mode and noise setting
    assert_aligned(real_traces(), envivio, config, num_envs=16, n_steps=400)


def test_sleep_and_stall_paths_are_exercised(envivio):
    """Guard the alignment test itself: its traces must produce sleeps, stalls and wraps."""
    sim = VecSim(hand_traces(), envivio, 8, SimConfig(mode="default"), seed=11, backend="reference")
    sim.reset()
    rng = np.random.default_rng(11)
    slept = stalled = wrapped = 0
    for step in range(500):
        levels = rng.integers(0, envivio.n_levels, 8) if step % 7 == 0 else levels  # noqa: F821
        before = [(player.episode, player.row) for player in sim._players]
        out = sim.step(levels)
        slept += int((out.sleep_s > 0).sum())
        stalled += int((out.rebuffer_s > 0).sum())
        wrapped += sum(
            player.episode == episode and player.row < row for player, (episode, row) in zip(sim._players, before)
        )
    assert slept > 20 and stalled > 20 and wrapped > 20
