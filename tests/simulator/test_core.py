"""VecSim contract: determinism, independence of N, hand-computed semantics, both modes, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.config import SimConfig, test_config
from simulator.core import VecSim
from simulator.traces.model import Trace, TraceSet
from tests.conftest import hand_traces, synthetic_video

BACKENDS = ["c", "reference"]


def rollout(sim: VecSim, n_steps: int, action_seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(action_seed)
    sim.reset()
    record = {"reward": [], "download_time_s": [], "trace_index": [], "obs": []}
    for _ in range(n_steps):
        out = sim.step(rng.integers(0, sim.video.n_levels, sim.num_envs))
        for name in record:
            record[name].append(getattr(out, name).copy())
    return {name: np.array(values) for name, values in record.items()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_result_other_seed_differs(backend):
    video = synthetic_video()
    runs = [rollout(VecSim(hand_traces(), video, 4, SimConfig(), seed=seed, backend=backend), 120) for seed in (5, 5, 6)]
    for name in runs[0]:
        np.testing.assert_array_equal(runs[0][name], runs[1][name])
    assert not np.array_equal(runs[0]["download_time_s"], runs[2]["download_time_s"])


def test_player_results_do_not_depend_on_num_envs():
    video = synthetic_video()
    small = rollout(VecSim(hand_traces(), video, 3, SimConfig(), seed=9), 150, action_seed=1)
    # the same first three players inside a bigger batch, fed the same actions
    big_sim = VecSim(hand_traces(), video, 16, SimConfig(), seed=9)
    rng = np.random.default_rng(1)
    big_sim.reset()
    for step in range(150):
        levels = np.zeros(16, dtype=np.int64)
        levels[:3] = rng.integers(0, video.n_levels, 3)
        out = big_sim.step(levels)
        np.testing.assert_array_equal(out.download_time_s[:3], small["download_time_s"][step])
        np.testing.assert_array_equal(out.obs[:3], small["obs"][step])


def test_player_offset_reproduces_a_player_of_a_batch():
    """Player j of a batch equals a lone player created with player_offset=j (batch order is irrelevant)."""
    video = synthetic_video()
    batch = rollout(VecSim(hand_traces(), video, 4, SimConfig(), seed=2), 100, action_seed=3)
    rng = np.random.default_rng(3)
    actions = [rng.integers(0, video.n_levels, 4) for _ in range(100)]
    for player in (0, 2, 3):
        lone = VecSim(hand_traces(), video, 1, SimConfig(), seed=2, player_offset=player, trace_stride=4)
        lone.reset()
        for step in range(100):
            out = lone.step(actions[step][player:player + 1])
            assert out.download_time_s[0] == batch["download_time_s"][step, player]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["pensieve", "default"])
def test_constant_link_matches_hand_computation(backend, mode):
    """1.2 Mbps forever, no noise: download = RTT + bytes / (1.2e6/8 x 0.95), buffer arithmetic by hand."""
    trace = Trace("flat", np.arange(0.0, 2000.0, 1.0), np.full(2000, 1.2))
    video = synthetic_video()
    sim = VecSim([trace], video, 1, test_config(mode=mode), backend=backend)
    sim.reset()
    goodput_bytes_per_s = 1.2e6 / 8 * 0.95
    buffer_s = 4.0  # startup: the buffer was empty, so it holds exactly one chunk
    for chunk in range(1, 6):
        out = sim.step([0])
        expected_delay_s = 0.08 + video.chunk_bytes[0, chunk] / goodput_bytes_per_s
        assert out.download_time_s[0] == pytest.approx(expected_delay_s, rel=1e-12)
        expected_rebuffer_s = max(expected_delay_s - buffer_s, 0.0)
        buffer_s = max(buffer_s - expected_delay_s, 0.0) + 4.0
        assert out.rebuffer_s[0] == pytest.approx(expected_rebuffer_s, abs=1e-12)
        assert out.buffer_s[0] == pytest.approx(buffer_s, rel=1e-12)
        smooth = abs(0.3 - 0.75) if chunk == 1 else 0.0
        assert out.reward[0] == pytest.approx(0.3 - 4.3 * expected_rebuffer_s - smooth, abs=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_buffer_cap_sleeps_in_half_second_quanta(backend):
    trace = Trace("fast", np.arange(0.0, 5000.0, 1.0), np.full(5000, 200.0))
    video = synthetic_video()
    for mode in ("default", "pensieve"):
        sim = VecSim([trace], video, 1, test_config(mode=mode), backend=backend)
        sim.reset()
        sleeps = []
        for _ in range(30):
            out = sim.step([0])
            assert out.buffer_s[0] <= 60.0 + 1e-9
            sleeps.append(out.sleep_s[0])
        sleeps = np.array(sleeps)
        assert np.count_nonzero(sleeps) > 10
        if mode == "default":  # the full sleep is reported
            np.testing.assert_allclose(sleeps[sleeps > 0] / 0.5, np.round(sleeps[sleeps > 0] / 0.5), atol=1e-9)
        else:  # Pensieve reports the residual left in the last trace row (quirk 3): below one row
            assert np.all(sleeps <= 1.0 + 1e-9)


@pytest.mark.parametrize("mode, chunks", [("pensieve", 48), ("default", 49)])
def test_episode_length_per_mode(mode, chunks):
    video = synthetic_video(n_chunks=49)
    sim = VecSim(hand_traces(), video, 2, test_config(mode=mode))
    obs = sim.reset()
    layout = sim.layout.split(obs)
    assert layout["chunks_total"][0, 0] == chunks and layout["chunks_left"][0, 0] == chunks - 1
    assert layout["valid"][0].sum() == 1  # the startup chunk
    for step in range(1, chunks):
        out = sim.step([2, 2])
        assert out.chunk_index[0] == step
        assert bool(out.done[0]) == (step == chunks - 1)
    final = sim.layout.split(out.final_obs)
    assert final["chunks_left"][0, 0] == 0 and np.all(final["next_chunk_bytes"][0] == 0)
    assert sim.layout.split(out.obs)["valid"][0].sum() == 1  # auto-reset in the same step


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_mode_advances_the_clock_by_rtt(backend):
    """8 Mbps until t = 1 s, then 0.5 Mbps: where chunk 1 starts on the trace clock decides how much of it
    crosses into the slow part. Pensieve mode adds the 80 ms RTT to the delay only (quirk 5); default mode
    also lets that time pass on the trace clock before each download, so chunk 1 starts 160 ms later
    (two RTTs) and more of it lands in the slow part. Every delay computed here by hand."""
    trace = Trace("step", np.array([0.0, 1.0, 1000.0]), np.array([8.0, 8.0, 0.5]))
    video = synthetic_video()
    fast_bytes_per_s, slow_bytes_per_s = 8e6 / 8 * 0.95, 0.5e6 / 8 * 0.95  # goodput: 0.95 payload factor
    rtt_s, switch_s = 0.08, 1.0
    chunk0_bytes, chunk1_bytes = video.chunk_bytes[1, 0], video.chunk_bytes[3, 1]  # reset fetches level 1

    def transfer_s(start_s: float, size_bytes: float) -> float:
        fast_part_bytes = (switch_s - start_s) * fast_bytes_per_s
        assert 0 < fast_part_bytes < size_bytes  # this set-up: the chunk crosses the switch
        return (switch_s - start_s) + (size_bytes - fast_part_bytes) / slow_bytes_per_s

    download0_s = chunk0_bytes / fast_bytes_per_s  # chunk 0 fits before the switch in both modes
    expected = {  # mode: (delay of chunk 0, delay of chunk 1), seconds
        "pensieve": (download0_s + rtt_s, transfer_s(download0_s, chunk1_bytes) + rtt_s),
        "default": (rtt_s + download0_s, rtt_s + transfer_s(rtt_s + download0_s + rtt_s, chunk1_bytes)),
    }
    assert expected["default"][1] - expected["pensieve"][1] > 0.5  # the RTT's 160 ms moved ~150 kB to 0.5 Mbps
    for mode, (delay0_s, delay1_s) in expected.items():
        sim = VecSim([trace], video, 1, test_config(mode=mode), backend=backend)
        first = sim.layout.split(sim.reset())
        assert first["download_time_s"][0, -1] == pytest.approx(delay0_s, rel=1e-6), mode  # float32 row
        assert sim.step([3]).download_time_s[0] == pytest.approx(delay1_s, rel=1e-12), mode


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("qoe", ["log", "hd"])
def test_log_and_hd_qoe_match_hand_computation(backend, qoe):
    """Pensieve's other two QoE metrics on a constant 1.2 Mbps link, by hand: log utility ln(R / 300 kbps)
    with 2.66 per stall second, HD utility (1, 2, 3, 12, 15, 20) with 8 per stall second; smoothness the
    absolute utility change. The levels climb, so the high ones stall."""
    trace = Trace("flat", np.arange(0.0, 2000.0, 1.0), np.full(2000, 1.2))
    video = synthetic_video()  # Envivio ladder 300..4300 kbps, hd_reward (1, 2, 3, 12, 15, 20)
    sim = VecSim([trace], video, 1, test_config(mode="default", qoe=qoe), backend=backend)
    sim.reset()
    if qoe == "log":
        utility = [math.log(kbps / 300.0) for kbps in (300, 750, 1200, 1850, 2850, 4300)]
        penalty = 2.66
    else:
        utility, penalty = [1.0, 2.0, 3.0, 12.0, 15.0, 20.0], 8.0
    goodput_bytes_per_s = 1.2e6 / 8 * 0.95
    buffer_s, previous = 4.0, 1  # after reset: one 4 s chunk in the buffer, fetched at level 1
    stalled = 0.0
    for chunk, level in enumerate([0, 2, 5, 5, 4, 3, 1], start=1):
        out = sim.step([level])
        delay_s = 0.08 + video.chunk_bytes[level, chunk] / goodput_bytes_per_s
        rebuffer_s = max(delay_s - buffer_s, 0.0)
        buffer_s = max(buffer_s - delay_s, 0.0) + 4.0
        stalled += rebuffer_s
        assert out.qoe_bitrate[0] == pytest.approx(utility[level], abs=1e-12)
        assert out.qoe_rebuffer[0] == pytest.approx(penalty * rebuffer_s, abs=1e-9)
        assert out.qoe_smooth[0] == pytest.approx(abs(utility[level] - utility[previous]), abs=1e-12)
        assert out.reward[0] == pytest.approx(utility[level] - penalty * rebuffer_s
                                              - abs(utility[level] - utility[previous]), abs=1e-9)
        previous = level
    assert stalled > 1.0  # the rebuffer term was exercised


def test_rejects_levels_out_of_range_and_wrong_types():
    sim = VecSim(hand_traces(), synthetic_video(), 2, SimConfig())
    sim.reset()
    with pytest.raises(ValueError, match="outside 0..5"):
        sim.step([0, 6])
    with pytest.raises(ValueError, match="outside"):
        sim.step([-1, 0])
    with pytest.raises(TypeError):
        sim.step([0.5, 1.0])


def test_core_refuses_a_trace_that_could_never_finish_a_chunk():
    """Bypass Trace validation: the C binding itself must refuse, not hang."""
    bad = TraceSet(names=("zeros",), time_s=np.arange(5.0), bw_mbps=np.array([3.0, 0, 0, 0, 0]),
                   offsets=np.array([0, 5], dtype=np.int64))
    with pytest.raises(ValueError, match="no positive bandwidth"):
        VecSim(bad, synthetic_video(), 1, SimConfig())


def test_buffers_are_allocated_once():
    sim = VecSim(hand_traces(), synthetic_video(), 4, SimConfig())
    obs = sim.reset()
    out = sim.step([1, 2, 3, 4])
    for _ in range(60):
        again = sim.step([1, 2, 3, 4])
    assert again.obs is obs and again.reward is out.reward
    assert again.obs.ctypes.data == obs.ctypes.data
