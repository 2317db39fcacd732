"""Batched baselines: hand-built observations for each rule, RobustMPC against a per-player port of
Pensieve's test/mpc.py (tie-breaking included), and the ANCHORS regression table."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulator.baselines import BASELINES, make_baseline
from simulator.baselines.protocol import run_test_protocol
from simulator.layout import Layout
from simulator.traces.model import Trace
from simulator.video import VideoProfile, load_pensieve_dir
from tests.conftest import hand_traces, synthetic_video

K = 16


def video_with(ladder_kbps, n_chunks=49, seed=0) -> VideoProfile:
    rng = np.random.default_rng(seed)
    complexity = rng.lognormal(0.0, 0.1, n_chunks)
    sizes = np.outer(np.asarray(ladder_kbps, dtype=float) * 1000 / 8 * 4.0, complexity).round()
    return VideoProfile("t", np.asarray(ladder_kbps, dtype=float), sizes)


def blank_obs(layout: Layout, video: VideoProfile, n_envs: int, chunks_left=40, chunks_total=48) -> np.ndarray:
    obs = np.zeros((n_envs, layout.size), dtype=np.float32)
    fields = layout.split(obs)
    fields["ladder_kbps"][:] = video.bitrates_kbps
    fields["chunks_left"][:, 0] = chunks_left
    fields["chunks_total"][:, 0] = chunks_total
    return obs


def set_history(layout, obs, row, **columns):
    """Write history columns (oldest first) into the newest slots of player ``row``."""
    fields = layout.split(obs)
    n_valid = None
    for name, values in columns.items():
        values = np.asarray(values, dtype=np.float32)
        fields[name][row, K - len(values):] = values
        n_valid = len(values)
    fields["valid"][row, :K - n_valid] = 0
    fields["valid"][row, K - n_valid:] = 1


# -- BB, RB, BOLA ---------------------------------------------------------------------------------

def test_bb_follows_pensieve_thresholds():
    video, layout = synthetic_video(), Layout(K, 6)
    buffers_s = [0.0, 4.99, 5.0, 7.0, 10.0, 14.99, 15.0, 40.0]
    obs = blank_obs(layout, video, len(buffers_s))
    layout.split(obs)["buffer_s"][:, -1] = buffers_s
    levels = make_baseline("bb", video, layout).act(obs)
    assert levels.dtype == np.int32
    assert levels.tolist() == [0, 0, 0, 1, 2, 4, 5, 5]


def test_rb_uses_harmonic_mean_of_last_five_valid_chunks():
    video, layout = synthetic_video(), Layout(K, 6)
    obs = blank_obs(layout, video, 3)
    one_mbit_bytes = 125_000.0
    # player 0: 1000, 2000, 4000, 4000, 4000 kbps -> harmonic mean 2222 kbps -> 1850 kbps (level 3);
    # an older, very fast chunk must be ignored
    set_history(layout, obs, 0, chunk_bytes=[one_mbit_bytes] * 6, download_time_s=[0.01, 1.0, 0.5, 0.25, 0.25, 0.25])
    # player 1: two valid chunks at 800 kbps -> 750 kbps (level 1)
    set_history(layout, obs, 1, chunk_bytes=[one_mbit_bytes] * 2, download_time_s=[1.25, 1.25])
    # player 2: slower than the lowest level -> level 0
    set_history(layout, obs, 2, chunk_bytes=[one_mbit_bytes], download_time_s=[10.0])
    assert make_baseline("rb", video, layout).act(obs).tolist() == [3, 1, 0]


def test_bola_climbs_with_the_buffer_between_min_and_target():
    video, layout = synthetic_video(), Layout(K, 6)
    buffers_s = np.arange(0.0, 40.0, 0.25)
    obs = blank_obs(layout, video, len(buffers_s))
    layout.split(obs)["buffer_s"][:, -1] = buffers_s
    bola = make_baseline("bola", video, layout, min_buffer_s=10.0, target_buffer_s=30.0)
    levels = bola.act(obs)
    assert np.all(np.diff(levels) >= 0)
    assert np.all(levels[buffers_s < 10.0] == 0) and levels[buffers_s == 10.25][0] == 1
    assert np.all(levels[buffers_s >= 25.0] == 5)
    # objective of the top level is 0 at the target buffer (where BOLA would stop downloading)
    assert bola.v_s * (bola.utility[-1] + bola.gp) == pytest.approx(30.0)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_returns_valid_levels_and_rejects_unknown_params(name):
    video, layout = synthetic_video(), Layout(K, 6)
    rng = np.random.default_rng(1)
    obs = random_obs(rng, layout, video, 7)
    policy = make_baseline(name, video, layout)
    policy.reset(None)
    levels = policy.act(obs)
    assert levels.shape == (7,) and levels.dtype == np.int32
    assert np.all((levels >= 0) & (levels < video.n_levels))
    with pytest.raises(TypeError, match="not_a_parameter"):
        make_baseline(name, video, layout, not_a_parameter=1)


def test_unknown_baseline_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="robustmpc"):
        make_baseline("pensieve", synthetic_video(), Layout(K, 6))


# -- RobustMPC against a per-player port of Pensieve's test/mpc.py ---------------------------------

class OriginalMPC:
    """One player, a line-by-line port of Pensieve's test/mpc.py decision (lists and loops)."""

    def __init__(self, video, index_fixed=True, robust=True):
        self.video, self.index_fixed, self.robust = video, index_fixed, robust
        self.past_errors, self.past_bandwidth_ests = [], []

    def get_chunk_size(self, quality, index):
        if index < 0 or index >= self.video.n_chunks:
            return 0
        return self.video.chunk_bytes[quality, index]

    def decide(self, layout, obs_row):
        fields = layout.split(obs_row)
        bitrates = self.video.bitrates_kbps
        state3 = [
            float(fields["chunk_bytes"][i]) / (float(fields["download_time_s"][i]) * 1000.0) / 1000.0
            if fields["valid"][i] > 0.5 else 0.0
            for i in range(K)
        ]
        buffer_size = float(fields["buffer_s"][-1])
        bit_rate = int(np.argmin(np.abs(bitrates - float(fields["bitrate_kbps"][-1]))))
        total_chunks = int(round(float(fields["chunks_total"][0])))
        video_chunk_remain = int(round(float(fields["chunks_left"][0])))

        curr_error = 0
        if len(self.past_bandwidth_ests) > 0:
            curr_error = abs(self.past_bandwidth_ests[-1] - state3[-1]) / float(state3[-1])
        self.past_errors.append(curr_error)
        past_bandwidths = state3[-5:]
        while past_bandwidths[0] == 0.0:
            past_bandwidths = past_bandwidths[1:]
        bandwidth_sum = 0
        for past_val in past_bandwidths:
            bandwidth_sum += 1 / float(past_val)
        harmonic_bandwidth = 1.0 / (bandwidth_sum / len(past_bandwidths))
        error_pos = -5
        if len(self.past_errors) < 5:
            error_pos = -len(self.past_errors)
        max_error = float(max(self.past_errors[error_pos:]))
        future_bandwidth = harmonic_bandwidth / (1 + max_error) if self.robust else harmonic_bandwidth
        self.past_bandwidth_ests.append(harmonic_bandwidth)

        last_index = int(total_chunks - video_chunk_remain)
        future_chunk_length = 5
        if total_chunks - last_index < 5:
            future_chunk_length = total_chunks - last_index
        max_reward = -100000000
        best_combo = ()
        for full_combo in itertools.product(range(len(bitrates)), repeat=5):
            combo = full_combo[0:future_chunk_length]
            curr_rebuffer_time = 0
            curr_buffer = buffer_size
            bitrate_sum = 0
            smoothness_diffs = 0
            last_quality = bit_rate
            for position in range(0, len(combo)):
                chunk_quality = combo[position]
                index = last_index + position + (0 if self.index_fixed else 1)
                download_time = (self.get_chunk_size(chunk_quality, index) / 1000000.) / future_bandwidth
                if curr_buffer < download_time:
                    curr_rebuffer_time += download_time - curr_buffer
                    curr_buffer = 0
                else:
                    curr_buffer -= download_time
                curr_buffer += self.video.chunk_s
                bitrate_sum += bitrates[chunk_quality]
                smoothness_diffs += abs(bitrates[chunk_quality] - bitrates[last_quality])
                last_quality = chunk_quality
            reward = bitrate_sum / 1000. - 4.3 * curr_rebuffer_time - smoothness_diffs / 1000.
            if reward >= max_reward:
                best_combo = combo
                max_reward = reward
        return best_combo[0] if best_combo != () else 0


def random_obs(rng, layout, video, n_envs, chunks_total=48):
    obs = blank_obs(layout, video, n_envs, chunks_total=chunks_total)
    fields = layout.split(obs)
    for row in range(n_envs):
        n_valid = int(rng.integers(1, K + 1))
        levels = rng.integers(0, video.n_levels, n_valid)
        chunk_bytes = video.chunk_bytes[levels, rng.integers(0, video.n_chunks, n_valid)]
        throughput_bps = rng.choice([0.3e6, 1e6, 3e6, 1e9]) * rng.lognormal(0, 0.5, n_valid)
        set_history(layout, obs, row, bitrate_kbps=video.bitrates_kbps[levels], chunk_bytes=chunk_bytes,
                    download_time_s=chunk_bytes * 8 / throughput_bps + 0.08,
                    buffer_s=rng.uniform(0, 30, n_valid))
    # include the end of the video (fewer than 5 chunks left, and none)
    fields["chunks_left"][:, 0] = rng.choice([0, 1, 2, 4, 5, 30, chunks_total - 1], n_envs)
    return obs


ENVIVIO_LADDER = (300, 750, 1200, 1850, 2850, 4300)
ROUND_LADDER = (1000, 2000, 3000, 4000)  # round values make exact reward ties common


@pytest.mark.parametrize("ladder_kbps,index_fixed,robust", [
    (ENVIVIO_LADDER, True, True), (ENVIVIO_LADDER, False, True),
    *[(ROUND_LADDER, fixed, robust) for fixed in (True, False) for robust in (True, False)],
])
def test_vectorized_mpc_equals_the_per_player_original(ladder_kbps, index_fixed, robust):
    """Same decisions on random observations over several calls (error history carried),
    with a per-episode reset of some players in between."""
    video, layout = video_with(ladder_kbps, seed=2), Layout(K, len(ladder_kbps))
    rng = np.random.default_rng(11)
    n_envs = 6
    policy = make_baseline("robustmpc" if robust else "fastmpc", video, layout, index_fixed=index_fixed,
                           max_block_envs=4)  # several blocks
    originals = [OriginalMPC(video, index_fixed, robust) for _ in range(n_envs)]
    policy.reset(None)
    for call in range(8):  # more calls than the 5-error window
        if call == 6:
            mask = np.arange(n_envs) % 3 == 0
            policy.reset(mask)
            for row in np.flatnonzero(mask):
                originals[row] = OriginalMPC(video, index_fixed, robust)
        obs = random_obs(rng, layout, video, n_envs)
        expected = [originals[row].decide(layout, obs[row]) for row in range(n_envs)]
        assert policy.act(obs).tolist() == expected


def test_mpc_ties_go_to_the_last_combination_in_product_order():
    """With 1000/2000/3000 kbps and last level 1, one chunk left and ample bandwidth, levels 1
    and 2 score exactly 2.0 (2 - 0 and 3 - 1): the original keeps the later one (level 2)."""
    video, layout = video_with((1000, 2000, 3000)), Layout(K, 3)
    obs = blank_obs(layout, video, 1, chunks_left=1)
    set_history(layout, obs, 0, bitrate_kbps=[2000.0], chunk_bytes=[1e6], download_time_s=[0.001], buffer_s=[30.0])
    assert make_baseline("robustmpc", video, layout).act(obs).tolist() == [2]
    assert OriginalMPC(video).decide(layout, obs[0]) == 2


def test_index_fixed_and_as_committed_plan_different_chunks():
    video, layout = video_with((300, 750, 1200, 1850, 2850, 4300), seed=5), Layout(K, 6)
    obs = random_obs(np.random.default_rng(3), layout, video, 200)
    fixed = make_baseline("robustmpc", video, layout, index_fixed=True).act(obs)
    committed = make_baseline("robustmpc", video, layout, index_fixed=False).act(obs)
    assert np.any(fixed != committed)


def test_error_history_resets_per_episode_unless_global():
    video, layout = synthetic_video(), Layout(K, 6)
    obs = random_obs(np.random.default_rng(4), layout, video, 5)
    for global_history, cleared in ((False, True), (True, False)):
        policy = make_baseline("robustmpc", video, layout, global_error_history=global_history)
        policy.reset(None)
        policy.act(obs)
        policy.act(obs[::-1].copy())
        policy.reset(np.array([True, False, False, False, False]))
        assert np.isnan(policy.last_estimate[0]) == cleared
        assert (np.all(policy.errors[0] == 0)) == cleared
        assert not np.isnan(policy.last_estimate[1])


# -- the protocol ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bb", "robustmpc"])
def test_protocol_is_the_same_on_the_c_core_and_the_reference(name):
    video = synthetic_video()
    c_core = run_test_protocol(name, hand_traces(), video, mode="pensieve", backend="c")
    reference = run_test_protocol(name, hand_traces(), video, mode="pensieve", backend="reference")
    assert c_core["per_trace"] == reference["per_trace"]
    assert [row["name"] for row in c_core["per_trace"]] == sorted(t.name for t in hand_traces())
    assert c_core["settings"]["chunks_scored"] == 47
    assert c_core["mean"]["qoe_per_chunk"] == pytest.approx(c_core["mean"]["qoe_sum"] / 47)


def test_protocol_scores_chunks_one_to_end_in_default_mode():
    result = run_test_protocol("rb", hand_traces()[:2], synthetic_video(), mode="default")
    assert result["settings"]["chunks_scored"] == 48
    row = result["per_trace"][0]
    assert set(row) == {"name", "qoe_sum", "qoe_per_chunk", "rebuffer_s", "rebuffer_ratio", "bitrate_kbps",
                        "switches_per_min", "chunks"}
    assert row["qoe_per_chunk"] == pytest.approx(row["qoe_sum"] / 48) and row["chunks"] == 48
    play_s = 48 * synthetic_video().chunk_s
    assert row["rebuffer_ratio"] == pytest.approx(row["rebuffer_s"] / (row["rebuffer_s"] + play_s))
    with pytest.raises(ValueError, match="as_committed"):
        run_test_protocol("bb", hand_traces()[:1], synthetic_video(), as_committed=True)


class FixedLevel:
    def __init__(self, level):
        self.level = level

    def reset(self, mask=None):
        pass

    def act(self, obs):
        return np.full(len(obs), self.level, dtype=np.int32)


@pytest.mark.parametrize("level, switches", [(1, 0), (3, 1)])
def test_protocol_counts_switches_from_the_unscored_first_chunk(level, switches):
    """Chunk 0 plays at level 1; a fixed level 1 never switches, a fixed level 3 switches once."""
    video = synthetic_video()
    result = run_test_protocol(FixedLevel(level), hand_traces()[:2], video, mode="default")
    for row in result["per_trace"]:
        assert row["switches_per_min"] == pytest.approx(switches / (48 * video.chunk_s / 60.0))
        assert row["bitrate_kbps"] == pytest.approx(video.bitrates_kbps[level])


# -- ANCHORS.md regression table (Pensieve mode, Envivio, QoE lin) ----------------------------------

ANCHORS = [
    # folder, trace, policy, as committed, QoE sum, rebuffer s, avg kbps
    ("3g/test", "bus.ljansbakken-oslo-report.2010-09-28_1407CEST.log_0", "bb", False, 30.974743, 4.633781, 1511.70),
    ("3g/test", "bus.ljansbakken-oslo-report.2010-09-29_1628CEST.log_0", "bb", False, 45.900000, 0.000000, 1284.04),
    ("3g/test", "bus.ljansbakken-oslo-report.2010-09-29_1628CEST.log_320", "bb", False, 76.350000, 0.000000, 2196.81),
    ("3g/test", "bus.ljansbakken-oslo-report.2010-09-28_1407CEST.log_0", "robustmpc", False, 46.631917, 4.376298, 1524.47),
    ("3g/test", "bus.ljansbakken-oslo-report.2010-09-29_1628CEST.log_0", "robustmpc", False, 42.767671, 2.507518, 1294.68),
    ("3g/test", "bus.ljansbakken-oslo-report.2010-09-29_1628CEST.log_320", "robustmpc", False, 82.531279, 1.678772, 2248.94),
    ("3g/test", "bus.ljansbakken-oslo-report.2010-09-28_1407CEST.log_0", "robustmpc", True, -17.842311, 19.626119, 1547.87),
    ("broadband/test", "094_test_fcc_trace_14731_http---www.facebook.com_1020_0", "bb", False, 6.857200, 0.219256, 434.04),
    ("broadband/test", "007_test_fcc_trace_14731_http---www.facebook.com_1080_0", "bb", False, 5.684970, 0.387216, 434.04),
    ("broadband/test", "010_test_fcc_trace_14731_http---www.facebook.com_1140_0", "bb", False, 1.526682, 1.354260, 443.62),
    ("broadband/test", "010_test_fcc_trace_14731_http---www.facebook.com_1140_0", "robustmpc", False, 17.700000, 0.000000, 453.19),
    ("broadband/test", "010_test_fcc_trace_14731_http---www.facebook.com_1140_0", "robustmpc", True, 14.309043, 0.788595, 453.19),
]


def cooked_trace(path) -> Trace:
    """Pensieve's cooked format ("time_s throughput_Mbps" per line), read directly."""
    rows = np.loadtxt(path, ndmin=2)
    return Trace(path.name, rows[:, 0], rows[:, 1], source=str(path))


@pytest.mark.shared
@pytest.mark.parametrize("folder,trace,policy,as_committed,qoe_sum,rebuffer_s,kbps", ANCHORS,
                         ids=[f"{a[0]}-{a[1][-12:]}-{a[2]}{'-committed' if a[3] else ''}" for a in ANCHORS])
def test_anchor_table_reproduced_in_pensieve_mode(shared_path, folder, trace, policy, as_committed,
                                                 qoe_sum, rebuffer_s, kbps):
    video = load_pensieve_dir(shared_path / "video" / "envivio", name="envivio")
    traces = [cooked_trace(shared_path / "traces" / folder / trace)]
    row = run_test_protocol(policy, traces, video, mode="pensieve", as_committed=as_committed)["per_trace"][0]
    assert row["qoe_sum"] == pytest.approx(qoe_sum, abs=1e-4)
    assert row["rebuffer_s"] == pytest.approx(rebuffer_s, abs=1e-4)
    assert row["bitrate_kbps"] == pytest.approx(kbps, abs=0.006)  # the table rounds to 0.01


def test_observe_terminal_feeds_the_global_error_history_only():
    video, layout = synthetic_video(), Layout(K, 6)
    obs = random_obs(np.random.default_rng(6), layout, video, 3)
    done = np.array([True, False, True])
    for global_history in (False, True):
        policy = make_baseline("robustmpc", video, layout, global_error_history=global_history)
        policy.reset(None)
        policy.act(obs)
        before = policy.last_estimate.copy()
        policy.observe_terminal(obs[::-1].copy(), done)
        changed = policy.last_estimate != before
        assert changed.tolist() == ([True, False, True] if global_history else [False, False, False])
