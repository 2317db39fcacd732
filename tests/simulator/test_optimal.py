"""The offline-optimal bound: its download arithmetic against the Python reference, brute force on
short videos, the upper bound and grid refinement, and (marked ``shared``) at least every
baseline's QoE on the real test sets."""

from __future__ import annotations

import functools
import itertools
import json
import math

import numpy as np
import pytest

from simulator.baselines import BASELINES
from simulator.baselines.optimal import FixedLevels, Grid, Timeline, _Model, _Walk, optimal_levels, run_optimal
from simulator.baselines.protocol import run_test_protocol
from simulator.config import test_config
from simulator.core import VecSim
from simulator.reference import ReferencePlayer
from simulator.traces.model import Trace, TraceSet
from simulator.video import VideoProfile, default_profile, load_profile
from tests.conftest import SHARED, hand_traces, synthetic_video

MODES = ("pensieve", "default")
TOLERANCE = 1e-6


def truncated(video: VideoProfile, n_chunks: int) -> VideoProfile:
    return VideoProfile(f"{video.name}-{n_chunks}", video.bitrates_kbps, video.chunk_bytes[:, :n_chunks],
                        video.chunk_s, video.hd_reward)


def play(trace: Trace, video: VideoProfile, config, levels: np.ndarray) -> np.ndarray:
    """QoE sum over chunks 1..end of each row of ``levels`` on ``trace``, one C-core player per row."""
    levels = np.atleast_2d(levels)
    sim = VecSim([trace], video, len(levels), config, backend="c")
    sim.reset()
    total = np.zeros(len(levels))
    for step in range(levels.shape[1]):
        total += sim.step(levels[:, step]).reward
    return total


def walk_sequence(walk: _Walk, levels) -> list[tuple[float, float, float]]:
    """(reward, buffer, clock) after each of chunks 1..end, by the DP's arithmetic."""
    clock_s, buffer_s = walk.first_chunk()
    last_level, out = np.array([walk.model.default_level]), []
    for chunk, level in enumerate(levels, start=1):
        rebuffer_s, next_clock_s, next_buffer_s = walk.step(clock_s, buffer_s, walk.finish_s(clock_s, chunk))
        out.append((float(walk.reward(last_level, rebuffer_s)[0, level]), float(next_buffer_s[0, level]),
                    float(next_clock_s[0, level])))
        clock_s, buffer_s, last_level = next_clock_s[:, level], next_buffer_s[:, level], np.array([level])
    return out


def exact_fill_trace() -> Trace:
    """Row 1 delivers exactly 950 000 bytes (8 Mbps x 0.95 for 1 s), then two rows of nothing."""
    return Trace("exact_fill", np.array([0.0, 1.0, 2.0, 3.0, 4.0]), np.array([0.0, 8.0, 0.0, 0.0, 8.0]))


# -- the arithmetic against simulator/reference.py -------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("trace", hand_traces() + [exact_fill_trace()], ids=lambda trace: trace.name)
def test_timeline_finishes_downloads_where_the_reference_loop_does(mode, trace):
    """Random sizes and idle times walked by the reference's own loops (wrap-around, zero rows,
    t0 != 0, an exact fill at a row's end) against the unrolled timeline's clock."""
    config = test_config(mode=mode)
    player = ReferencePlayer(TraceSet.from_traces([trace]), synthetic_video(), config, seed=0, player_index=0)
    player.reset()
    player.row, player.last_time_s = 1, float(trace.time_s[0])
    timeline = Timeline(trace.time_s, trace.bw_mbps, mode == "pensieve", config.payload_factor)
    clock_s, rng = float(trace.time_s[0]), np.random.default_rng(3)
    for _ in range(200):
        if rng.random() < 0.3:
            idle_s = float(rng.choice([0.5, 1.0, rng.uniform(0.0, 7.0)]))
            player._advance_clock(idle_s * 1000.0)
            clock_s += idle_s
        else:
            size_bytes = float(rng.choice([950_000.0, rng.uniform(1e3, 3e6)]))
            delay_s = player._download_s(size_bytes, 1.0)
            finish_s = float(timeline.finish(timeline.bytes_at(np.array([clock_s])) + size_bytes)[0])
            assert finish_s - clock_s == pytest.approx(delay_s, rel=1e-9, abs=1e-9)
            clock_s = finish_s


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("qoe", ["lin", "log", "hd"])
def test_dp_arithmetic_equals_the_reference_player_along_any_sequence(mode, qoe):
    """Sticky random level sequences (stalls and buffer-cap sleeps both happen) on every hand trace."""
    video, config = synthetic_video(), test_config(mode=mode, qoe=qoe)
    model, rng = _Model(video, config), np.random.default_rng(5)
    for trace in hand_traces():
        for _ in range(3):
            levels = np.repeat(rng.integers(0, video.n_levels, 8), 6)[:model.n_chunks - 1]
            player = ReferencePlayer(TraceSet.from_traces([trace]), video, config, seed=0, player_index=0)
            player.reset()
            walked = walk_sequence(_Walk(model, trace), levels)
            for chunk, (level, (reward, buffer_s, _)) in enumerate(zip(levels, walked), start=1):
                result = player.fetch(int(level))
                assert reward == pytest.approx(result.reward, abs=1e-9), f"{trace.name} chunk {chunk}"
                assert buffer_s == pytest.approx(result.buffer_s, abs=1e-9), f"{trace.name} chunk {chunk}"


@pytest.mark.parametrize("mode", MODES)
def test_rest_bound_is_never_below_what_a_sequence_still_earns(mode):
    """The pruning bound: value so far + bound >= the sequence's final value, after every chunk."""
    video = synthetic_video()
    model, rng = _Model(video, test_config(mode=mode)), np.random.default_rng(8)
    for trace in hand_traces():
        walk = _Walk(model, trace)
        for _ in range(4):
            levels = np.repeat(rng.integers(0, video.n_levels, 12), 4)[:model.n_chunks - 1]
            walked = walk_sequence(walk, levels)
            rewards = np.array([reward for reward, _, _ in walked])
            earned = np.cumsum(rewards)
            for chunk, (_, buffer_s, clock_s) in enumerate(walked, start=1):
                rest = walk.rest(chunk, np.array([clock_s]), np.array([clock_s + buffer_s]))[0]
                assert earned[chunk - 1] + rest >= earned[-1] - 1e-9


# -- exactness on short videos ---------------------------------------------------------------------

SHORT = [  # (mode, video chunks, config changes): 5 scored chunks, 6^5 sequences each
    ("default", 6, {}),
    ("pensieve", 7, {}),
    ("default", 6, {"buffer_cap_s": 9.0}),  # buffer-cap sleeps inside 6 chunks
    ("pensieve", 7, {"buffer_cap_s": 9.0, "qoe": "log"}),
    ("default", 6, {"qoe": "hd", "reward_scale": 0.1, "smooth_penalty": 3.0}),
]


@pytest.mark.parametrize("mode,n_chunks,changes", SHORT, ids=[f"{m}-{n}-{sorted(c)}" for m, n, c in SHORT])
def test_dp_equals_brute_force_on_short_videos(mode, n_chunks, changes):
    """Every level sequence replayed in the C core: the exact DP (Grid.exact()) finds the best one;
    the default grid is within its own gap bound of it; both upper bounds are above it."""
    video = truncated(synthetic_video(seed=4), n_chunks)
    changes = dict(changes)
    qoe = changes.pop("qoe", "lin")
    config = test_config(mode=mode, qoe=qoe, **changes)
    n_scored = config.chunks_per_episode(video.n_chunks) - 1
    every = np.array(list(itertools.product(range(video.n_levels), repeat=n_scored)), dtype=np.int32)
    for trace in hand_traces():
        brute = play(trace, video, config, every).max()
        exact = optimal_levels(trace, video, mode, qoe, Grid.exact(), **changes)
        assert play(trace, video, config, exact.levels)[0] == pytest.approx(brute, abs=1e-9)
        assert exact.qoe_sum == pytest.approx(brute, abs=1e-9)
        assert exact.upper_bound >= brute - 1e-9
        gridded = optimal_levels(trace, video, mode, qoe, Grid(), **changes)
        achieved = play(trace, video, config, gridded.levels)[0]
        assert achieved == pytest.approx(gridded.qoe_sum, abs=1e-9)
        assert achieved >= brute - (gridded.upper_bound - achieved) - 1e-9
        assert gridded.upper_bound >= brute - 1e-9


def test_run_optimal_replays_through_the_protocol_and_equals_brute_force():
    video = truncated(synthetic_video(seed=4), 6)
    traces = hand_traces()
    result = run_optimal(traces, video, mode="default", grid=Grid.exact())
    config = test_config(mode="default")
    every = np.array(list(itertools.product(range(video.n_levels), repeat=5)), dtype=np.int32)
    assert [row["name"] for row in result["per_trace"]] == sorted(trace.name for trace in traces)
    by_name = {trace.name: trace for trace in traces}
    for row in result["per_trace"]:
        assert row["qoe_sum"] == pytest.approx(play(by_name[row["name"]], video, config, every).max(), abs=1e-9)
        assert row["qoe_sum"] == pytest.approx(row["dp_qoe_sum"], abs=1e-9)
        assert len(row["levels"]) == row["chunks"] == 5
        assert row["gap_bound"] == pytest.approx(row["upper_bound"] - row["qoe_sum"])
        assert row["gap_bound"] >= -1e-9
    assert result["settings"]["policy"] == "optimal" and result["settings"]["grid"]["search_buffer_s"] == 0
    assert result["mean"]["upper_bound_per_chunk"] == pytest.approx(result["mean"]["upper_bound"] / 5)


# -- full-length videos: the bound and the grid ----------------------------------------------------

@functools.lru_cache(maxsize=None)
def hand_optimal(mode: str, scale: float = 1.0) -> dict:
    return run_optimal(hand_traces(), synthetic_video(), mode=mode, grid=Grid().scaled(scale))


@pytest.mark.parametrize("mode", MODES)
def test_refining_the_grid_moves_the_score_by_less_than_the_gap_bound(mode):
    """achieved <= optimum <= upper bound on any grid, so two grids' scores differ by at most
    either one's gap bound, and neither score passes the other's upper bound."""
    coarse, fine = hand_optimal(mode, 4.0), hand_optimal(mode)
    for rough, sharp in zip(coarse["per_trace"], fine["per_trace"]):
        assert sharp["qoe_sum"] <= rough["upper_bound"] + TOLERANCE
        assert rough["qoe_sum"] <= sharp["upper_bound"] + TOLERANCE
        assert sharp["qoe_sum"] - rough["qoe_sum"] <= rough["gap_bound"] + TOLERANCE
        assert rough["qoe_sum"] - sharp["qoe_sum"] <= sharp["gap_bound"] + TOLERANCE
        assert sharp["gap_bound"] <= rough["gap_bound"] + TOLERANCE  # here the finer grid is also tighter
        assert rough["qoe_sum"] == pytest.approx(rough["dp_qoe_sum"], abs=1e-7)


@pytest.mark.parametrize("mode", MODES)
def test_optimal_beats_every_baseline_on_hand_traces(mode):
    video = synthetic_video()
    optimal = hand_optimal(mode)
    for name in BASELINES:
        baseline = run_test_protocol(name, hand_traces(), video, mode=mode)
        for mine, theirs in zip(optimal["per_trace"], baseline["per_trace"]):
            assert mine["qoe_sum"] >= theirs["qoe_sum"] - TOLERANCE, (name, mine["name"])
            assert mine["upper_bound"] >= theirs["qoe_sum"] - TOLERANCE


# -- contracts -------------------------------------------------------------------------------------

def test_fixed_levels_replays_one_episode_only():
    policy = FixedLevels(np.array([[1, 2], [3, 4]]))
    policy.reset(None)
    assert policy.act(None).tolist() == [1, 3] and policy.act(None).tolist() == [2, 4]
    with pytest.raises(RuntimeError, match="holds 2 levels"):
        policy.act(None)
    with pytest.raises(ValueError, match="cannot restart some players"):
        policy.reset(np.array([True, False]))


def test_bad_grids_and_traces_are_rejected():
    with pytest.raises(ValueError, match="all be positive, or all 0"):
        Grid(bound_clock_s=0.0)
    with pytest.raises(ValueError, match=">= 0 s"):
        Grid(search_buffer_s=-1.0)
    with pytest.raises(ValueError, match="scale must be positive"):
        Grid().scaled(0.0)
    negative = Trace("negative_start", np.array([-5.0, -1.0, 3.0]), np.array([1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="start at t >= 0"):
        optimal_levels(negative, synthetic_video(), "pensieve")
    with pytest.raises(ValueError, match="Grid.max_states"):
        optimal_levels(hand_traces()[0], synthetic_video(), "default", grid=Grid.exact(max_states=1000))
    with pytest.raises(ValueError, match="reward scale"):
        optimal_levels(hand_traces()[0], synthetic_video(), "default", reward_scale=-1.0)


def shared_test_sets():
    """(id, trace folder or list, mode, video profile name) for every shared test set."""
    sets = [(f"{kind}-{mode}", f"{kind}/test", mode, "envivio") for kind in ("broadband", "3g") for mode in MODES]
    sets += [(f"{kind}-default", f"splits/{kind}/test.txt", "default", None) for kind in ("4g", "5g", "satellite")]
    return sets


def load_test_set(where: str, video_name: str | None, network: str):
    from simulator.paths import REPO_ROOT
    from simulator.traces import load_trace_dir

    path = REPO_ROOT / "traces" / where if where.startswith("splits/") else SHARED / "traces" / where
    video = load_profile(video_name) if video_name else default_profile(network)
    return load_trace_dir(path), video


def assert_at_least_every_baseline(traces, video, mode):
    optimal = run_optimal(traces, video, mode=mode)
    for row in optimal["per_trace"]:
        assert row["qoe_sum"] == pytest.approx(row["dp_qoe_sum"], abs=1e-6 * max(1.0, abs(row["qoe_sum"])))
        assert row["gap_bound"] >= -1e-6 * max(1.0, abs(row["qoe_sum"]))
    for name in BASELINES:
        baseline = run_test_protocol(name, traces, video, mode=mode)
        for mine, theirs in zip(optimal["per_trace"], baseline["per_trace"]):
            assert mine["name"] == theirs["name"]
            assert mine["qoe_sum"] >= theirs["qoe_sum"] - TOLERANCE, (name, mine["name"], mode)


@pytest.mark.shared
@pytest.mark.parametrize("set_id,where,mode,video_name", shared_test_sets(), ids=[s[0] for s in shared_test_sets()])
def test_optimal_beats_every_baseline_on_a_slice_of_each_shared_test_set(set_id, where, mode, video_name):
    traces, video = load_test_set(where, video_name, set_id.split("-")[0])
    ordered = sorted(traces, key=lambda trace: trace.name)
    assert_at_least_every_baseline(ordered[::max(1, len(ordered) // 4)][:4], video, mode)


@pytest.mark.shared
@pytest.mark.benchmark
@pytest.mark.parametrize("set_id,where,mode,video_name", shared_test_sets(), ids=[s[0] for s in shared_test_sets()])
def test_optimal_beats_every_baseline_on_every_shared_test_trace(set_id, where, mode, video_name):
    traces, video = load_test_set(where, video_name, set_id.split("-")[0])
    assert_at_least_every_baseline(traces, video, mode)


def test_upper_bound_is_nan_when_not_asked():
    plan = optimal_levels(hand_traces()[0], synthetic_video(), "default", bound=False)
    assert math.isnan(plan.upper_bound) and len(plan.levels) == 48
