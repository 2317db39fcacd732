"""The offline-optimal bound: the best level sequence for a trace whose whole future is known.

Not a policy (it reads the trace ahead) but a yardstick: how much QoE there was to take on each
trace under exactly ``run_test_protocol``'s rules (``test_config(mode=..., qoe=...)``: start row
1, no noise, chunk 0 at the default level and unscored, buffer-cap sleeps, RTT, wrap-around,
payload factor, both modes' quirks).

**The search (the achieved value).** Dynamic programming chunk by chunk over the states the
choices so far imply: last level, trace clock (unrolled over wrap-arounds), buffer, and the QoE
summed so far. Every kept state is expanded by every level, the download computed exactly
(``Timeline``: the trace's cumulative goodput, so a finish time is one ``searchsorted``); then
states with the same last level and buffer bin (``Grid.search_buffer_s``) are merged, keeping
the one with the highest QoE so far, with its exact clock and buffer and a back-pointer (the cell
ignores the clock, as Pensieve's ``dp.cc`` did: on the shared traces this loses less than
merging on a clock grid of equal cost). States that cannot beat a first, coarse pass
(``Grid.coarse_buffer_s``) even with the best possible future (``_Walk.rest``) are pruned,
which loses nothing. The best
final state's levels are then REPLAYED in the real simulator through ``run_test_protocol`` (a
``FixedLevels`` policy), so the QoE reported is achievable and computed by the same code as every
other baseline's; the DP's own sum agrees with the replay to float rounding.

**What the merge can lose.** A merged-away state may have had the better future: it stood
elsewhere on the trace clock (having stalled more or less, or fetched more or fewer bytes) and
so meets the bandwidth's ups and downs at other times. Bandwidth is arbitrary (outages, spikes),
so no bound in terms of the bin sizes exists in general; instead the loss is bounded per trace,
after the fact, by a relaxation.

**The upper bound, reported beside the achieved value.** A second DP keeps *optimistic corners*
instead of representatives, merged on (last level, clock bin ``Grid.bound_clock_s``, buffer bin
``Grid.bound_buffer_s``):
the earliest clock ``u`` of the cell, the lowest playout end ``Pmin`` (clock + buffer: the trace
time at which the buffered video runs out), and a value ``v`` and highest playout end ``Pmax``
with ``v >= v_i`` and ``v + penalty x Pmax >= v_i + penalty x Pmax_i`` for every member i.
A corner downloads from its earliest clock, rebuffers against ``Pmax`` and is forced to sleep
only as far as ``Pmin`` forces it. The real step, with ``f`` the finish time of the download
(non-decreasing in its start), is: rebuffer ``r = max(f - P~, 0)``, ``P' = max(P~, f) + chunk_s``
(``P~ = P - rtt`` in pensieve mode, whose RTT is off the clock; ``P`` in the default mode, whose
RTT delays the start), next clock ``f`` + a sleep that leaves at most ``buffer_cap_s``, hence
``>= max(f, P' - cap)``. Claim: after each chunk every real state x reachable by any level
sequence is covered by a corner y of the same last level with ``u_y <= u_x``,
``Pmin_y <= P_x`` and ``v_y - v_x >= penalty x max(P_x - Pmax_y, 0)``. True after chunk 0 (one
exact state). Step: ``f_y <= f_x``; y rebuffers at most x's rebuffer plus
``max(P_x - Pmax_y, 0)``, which the value margin pays, and the margin needed afterwards shrinks
by exactly the difference (a stall moves ``P`` by its length), so the third inequality carries
over; the first two follow from ``f_y <= f_x`` and ``max(Pmin_y, f_y) <= max(P_x, f_x)``. A
merge keeps all three. At the end the covering corner has ``v_y >= v_x``. Corners whose value
plus ``_Walk.rest`` (a bound on any completion, non-increasing in the clock, non-decreasing in
``P`` by at most ``penalty`` per second) cannot reach the achieved value are dropped; the
corners covering an optimal sequence's states are never among them. Hence,
per trace,

    achieved (replayed)  <=  true optimum  <=  upper_bound,

and ``gap_bound = upper_bound - achieved`` bounds what the grid lost (to float rounding, ~1e-9
relative; ``penalty`` above is the rebuffer penalty times the reward scale). The proof needs
non-negative rebuffer and smoothness penalties and a positive reward scale (checked). The bound
loosens with coarser bins (a corner may be up to a clock bin earlier than its members after
every chunk). ``Grid.exact()`` merges nothing: the search then enumerates every level sequence
(minus provably worse ones) and is exact, for short videos only; the bound stays a relaxation.

Measured (Envivio, QoE lin, default ``Grid``, one core): 0.09-0.15 s per 48-chunk trace, about
60 % of it for the bound (the default mode is the slower: its RTT gaps loosen ``_Walk.rest``, so
fewer states are pruned); the mean bound sits 0.6-0.8 % above the achieved mean on the broadband
and 3G test sets, at most 1.4 QoE (of ~55-60) on any one trace.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from simulator.baselines.protocol import run_test_protocol, sorted_traces
from simulator.config import SimConfig, test_config
from simulator.reference import level_utilities
from simulator.traces.model import Trace, TraceSet
from simulator.video import VideoProfile, load_profile

BITS_PER_BYTE = 8.0
FIBONACCI_HASH = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: spreads structured keys over slots
ABS_TOLERANCE = 1e-6  # QoE units: pruning keeps states within this of the incumbent (float slack)


@dataclass(frozen=True)
class Grid:
    """Merge cells, in seconds. The search merges on (last level, buffer bin of
    ``search_buffer_s``), after a pruning pass on bins of ``coarse_buffer_s``; the bound merges
    on (last level, clock bin of ``bound_clock_s``, buffer bin of ``bound_buffer_s``). Finer:
    slower, a better achieved value, a tighter bound. ``Grid.exact()``: no merging at all (every
    level sequence is enumerated, L^chunks states: short videos only). More states than
    ``max_states`` after a chunk is an error, not a silent truncation.
    """

    search_buffer_s: float = 0.1
    bound_clock_s: float = 0.1
    bound_buffer_s: float = 0.2
    coarse_buffer_s: float = 1.0
    max_states: int = 2_000_000

    def __post_init__(self) -> None:
        bins = (self.search_buffer_s, self.bound_clock_s, self.bound_buffer_s)
        if min(bins + (self.coarse_buffer_s,)) < 0:
            raise ValueError(f"grid bins must be >= 0 s, got {self}")
        if any(size == 0 for size in bins) and any(size > 0 for size in bins):
            raise ValueError(f"grid bins must all be positive, or all 0 (Grid.exact(): no merging), got {self}")

    @classmethod
    def exact(cls, max_states: int = 2_000_000) -> "Grid":
        return cls(0.0, 0.0, 0.0, 0.0, max_states)

    @property
    def is_exact(self) -> bool:
        return self.search_buffer_s == 0

    def scaled(self, factor: float) -> "Grid":
        """Every bin times ``factor`` (0.5: twice as fine)."""
        if factor <= 0:
            raise ValueError(f"a grid scale must be positive, got {factor}")
        return Grid(self.search_buffer_s * factor, self.bound_clock_s * factor, self.bound_buffer_s * factor,
                    self.coarse_buffer_s * factor, self.max_states)


@dataclass
class OptimalPlan:
    """The DP's answer for one trace: ``levels`` for chunks 1..end (int32); ``qoe_sum``, the QoE
    sum the DP computed for them (the replay is authoritative); ``upper_bound`` on the QoE sum of
    every level sequence (NaN when not computed); the most states held after a chunk; seconds."""

    levels: np.ndarray
    qoe_sum: float
    upper_bound: float
    max_states: int
    seconds: float


class Timeline:
    """A trace as the simulator walks it, unrolled over wrap-arounds: cumulative goodput bytes
    against a clock that starts at ``time_s[0]`` and never jumps back.

    Row i's bandwidth holds on ``(time_s[i-1], time_s[i]]``. The first pass starts at
    ``time_s[0]``; every later pass restarts row 1 at clock 0 (pensieve mode, quirk 6) or at
    ``time_s[0]`` (default mode), so its row 1 lasts ``time_s[1]`` or ``time_s[1] - time_s[0]``.
    Passes are appended as far as a query needs.
    """

    def __init__(self, time_s: np.ndarray, bw_mbps: np.ndarray, pensieve: bool, payload_factor: float):
        time_s = np.asarray(time_s, dtype=np.float64)
        lap_start_s = 0.0 if pensieve else float(time_s[0])
        if time_s[1] <= lap_start_s:
            raise ValueError(f"pensieve mode wraps the trace clock to 0 s, but this trace's second timestamp is "
                             f"{time_s[1]} s; shift the trace to start at t >= 0")
        self.lap_rate = np.asarray(bw_mbps, dtype=np.float64)[1:] * 1e6 / BITS_PER_BYTE * payload_factor
        self.lap_duration_s = np.diff(np.concatenate([[lap_start_s], time_s[1:]]))
        self.lap_s = float(self.lap_duration_s.sum())
        self.lap_bytes = float(np.dot(self.lap_rate, self.lap_duration_s))
        self.top_rate = float(self.lap_rate.max())
        # breakpoints, cumulative bytes at each, and the rate after each (bytes/s)
        self.time_s = time_s.copy()
        self.bytes = np.concatenate([[0.0], np.cumsum(self.lap_rate * np.diff(time_s))])
        self.rate = np.concatenate([self.lap_rate, [0.0]])

    def _extend(self, until_s: float = -math.inf, until_bytes: float = -math.inf) -> None:
        missing_laps = max((until_s - self.time_s[-1]) / self.lap_s, (until_bytes - self.bytes[-1]) / self.lap_bytes)
        if missing_laps < 0:
            return
        laps = int(missing_laps) + 2
        durations_s = np.tile(self.lap_duration_s, laps)
        self.time_s = np.concatenate([self.time_s, self.time_s[-1] + np.cumsum(durations_s)])
        lap_bytes = np.tile(self.lap_rate, laps) * durations_s
        self.bytes = np.concatenate([self.bytes, self.bytes[-1] + np.cumsum(lap_bytes)])
        self.rate = np.concatenate([self.rate[:-1], np.tile(self.lap_rate, laps), [0.0]])

    def bytes_at(self, clock_s: np.ndarray) -> np.ndarray:
        """Goodput bytes delivered from the start of the trace up to ``clock_s``."""
        self._extend(until_s=float(np.max(clock_s)))
        return np.interp(clock_s, self.time_s, self.bytes)

    def finish(self, target_bytes: np.ndarray) -> np.ndarray:
        """The clock at which the cumulative goodput first EXCEEDS ``target_bytes``: how the
        simulator's row loop ends a download (an exact fill at a row's end carries on past any
        zero-bandwidth rows that follow)."""
        self._extend(until_bytes=float(np.max(target_bytes)))
        row = np.searchsorted(self.bytes, target_bytes, side="right") - 1
        return self.time_s[row] + (target_bytes - self.bytes[row]) / self.rate[row]


class _Model:
    """What the DPs need from the video and the config, computed once per (video, config)."""

    def __init__(self, video: VideoProfile, config: SimConfig):
        self.video, self.config = video, config
        self.pensieve = config.mode == "pensieve"
        self.rtt_s, self.chunk_s = config.rtt_s, video.chunk_s
        self.cap_s, self.quantum_s = config.buffer_cap_s, config.drain_quantum_s
        self.utility = level_utilities(video, config)
        self.rebuffer_penalty = config.rebuffer_penalty_for(video.bitrates_kbps[-1])
        self.smooth_penalty, self.reward_scale = config.smooth_penalty, config.reward_scale
        if self.rebuffer_penalty < 0 or self.smooth_penalty < 0 or self.reward_scale <= 0:
            raise ValueError("the optimal DP's bound needs rebuffer and smoothness penalties >= 0 and a reward "
                             f"scale > 0; got {self.rebuffer_penalty}, {self.smooth_penalty}, {self.reward_scale}")
        self.n_chunks = config.chunks_per_episode(video.n_chunks)
        self.default_level = config.default_level
        self.smooth = self.smooth_penalty * np.abs(self.utility[None, :] - self.utility[:, None])  # [last, next]
        self._rest_tables()

    def _rest_tables(self) -> None:
        """Per chunk k: the most utility chunks k+1.. can have within B bytes, ``U_k(B)``, as
        breakpoints (each chunk's (size, utility) upper concave hull, filled steepest first)."""
        hulls = [_hull(self.video.chunk_bytes[:, j], self.utility) for j in range(self.n_chunks)]
        segments = sorted(((j, db, du) for j in range(1, self.n_chunks) for db, du in hulls[j][2]),
                          key=lambda seg: -seg[2] / seg[1])
        chunk_of = np.array([seg[0] for seg in segments], dtype=np.int64)
        seg_bytes = np.array([seg[1] for seg in segments], dtype=np.float64)
        seg_utility = np.array([seg[2] for seg in segments], dtype=np.float64)
        self.rest_breaks, self.rest_values, self.rest_slopes = [], [], []
        for chunk in range(self.n_chunks):
            later = chunk_of > chunk
            base_bytes = sum(hulls[j][0] for j in range(chunk + 1, self.n_chunks))
            base_utility = sum(hulls[j][1] for j in range(chunk + 1, self.n_chunks))
            self.rest_breaks.append(base_bytes + np.concatenate([[0.0], np.cumsum(seg_bytes[later])]))
            self.rest_values.append(base_utility + np.concatenate([[0.0], np.cumsum(seg_utility[later])]))
            self.rest_slopes.append(seg_utility[later] / seg_bytes[later])


def _hull(sizes: np.ndarray, utility: np.ndarray) -> tuple[float, float, list[tuple[float, float]]]:
    """One chunk's upper concave hull of its (size, utility) points: the smallest size, the best
    utility at that size, and the (bytes, utility) steps up to the most useful level."""
    best_at: dict[float, float] = {}
    for size, value in zip(sizes.tolist(), utility.tolist()):
        best_at[size] = max(value, best_at.get(size, -math.inf))
    hull: list[tuple[float, float]] = []
    for point in sorted(best_at.items()):
        if hull and point[1] <= hull[-1][1]:
            continue  # more bytes for no more utility
        while len(hull) >= 2 and ((hull[-1][1] - hull[-2][1]) * (point[0] - hull[-2][0])
                                  <= (point[1] - hull[-2][1]) * (hull[-1][0] - hull[-2][0])):
            hull.pop()
        hull.append(point)
    return hull[0][0], hull[0][1], [(b[0] - a[0], b[1] - a[1]) for a, b in zip(hull, hull[1:])]


class _Walk:
    """One trace under one model: the per-chunk arithmetic of ``ReferencePlayer.fetch`` (in
    seconds) for arrays of states x levels, and the pruning bound."""

    def __init__(self, model: _Model, trace: Trace):
        self.model = model
        self.timeline = Timeline(trace.time_s, trace.bw_mbps, model.pensieve, model.config.payload_factor)
        self.time0_s = float(trace.time_s[0])
        # bytes past the last deadline arrive at most at the top rate: each costs penalty / top rate
        self.late_cost = model.rebuffer_penalty / self.timeline.top_rate
        self.steep = [int(np.sum(slopes > self.late_cost)) for slopes in model.rest_slopes]
        self.grouper = _Grouper()

    def finish_s(self, clock_s: np.ndarray, chunk: int) -> np.ndarray:
        """Finish clock [states, levels] of chunk ``chunk`` fetched at every level."""
        model = self.model
        start_s = clock_s if model.pensieve else clock_s + model.rtt_s  # default mode: the RTT elapses first
        start_bytes = self.timeline.bytes_at(start_s)
        return self.timeline.finish(start_bytes[:, None] + model.video.chunk_bytes[None, :, chunk])

    def reward(self, last_level: np.ndarray, rebuffer_s: np.ndarray) -> np.ndarray:
        """Reward [states, levels] of each level after ``last_level`` with ``rebuffer_s`` [states, levels]."""
        model = self.model
        return (model.utility[None, :] - model.rebuffer_penalty * rebuffer_s
                - model.smooth[last_level]) * model.reward_scale

    def step(self, clock_s: np.ndarray, buffer_s: np.ndarray, finish_s: np.ndarray):
        """(rebuffer, next clock, next buffer), each [states, levels], for downloads ending at ``finish_s``."""
        model = self.model
        delay_s = finish_s - clock_s[:, None] + (model.rtt_s if model.pensieve else 0.0)
        buffer_before_s = buffer_s[:, None]
        rebuffer_s = np.maximum(delay_s - buffer_before_s, 0.0)
        next_buffer_s = np.maximum(buffer_before_s - delay_s, 0.0) + model.chunk_s
        sleep_s = np.ceil(np.maximum(next_buffer_s - model.cap_s, 0.0) / model.quantum_s) * model.quantum_s
        return rebuffer_s, finish_s + sleep_s, next_buffer_s - sleep_s

    def rest(self, chunk: int, clock_s: np.ndarray, playout_s: np.ndarray) -> np.ndarray:
        """An upper bound on the QoE of chunks chunk+1.. from (clock, playout end) after ``chunk``.

        Relaxed: no smoothness penalty; only the last chunk's deadline counts (every remaining
        byte may arrive until then; the stall is at least the last finish minus that deadline,
        and the last finish is no earlier than the trace delivering all remaining bytes from
        the next download's start on); bytes past the deadline arrive at most at the trace's
        top rate. With ``B0`` the bytes delivered from that start to the deadline: max over B of
        ``U_k(B) - penalty / top rate x max(B - B0, 0)``. Non-increasing in the clock, and it
        grows by at most ``penalty x d`` when the playout end grows by ``d``.
        """
        model = self.model
        remaining = model.n_chunks - 1 - chunk
        if remaining == 0:
            return np.zeros_like(clock_s)
        shift_s = model.rtt_s if model.pensieve else 0.0
        deadline_s = playout_s + model.chunk_s * (remaining - 1) - remaining * shift_s
        start_s = clock_s if model.pensieve else clock_s + model.rtt_s  # default mode: no byte before one RTT
        on_time_bytes = np.maximum(self.timeline.bytes_at(np.maximum(deadline_s, start_s))
                                   - self.timeline.bytes_at(start_s), 0.0)
        breaks, values = model.rest_breaks[chunk], model.rest_values[chunk]
        knee = self.steep[chunk]  # past breaks[knee] utility grows slower than late bytes cost
        bound = np.where(on_time_bytes < breaks[knee],
                         values[knee] - self.late_cost * (breaks[knee] - on_time_bytes),
                         np.interp(on_time_bytes, breaks, values))
        return bound * model.reward_scale

    def first_chunk(self):
        """(clock, buffer) after chunk 0, fetched at the default level from an empty buffer."""
        model = self.model
        clock_s, buffer_s = np.array([self.time0_s]), np.array([0.0])
        finish_s = self.finish_s(clock_s, 0)[:, model.default_level:model.default_level + 1]
        _, clock_s, buffer_s = self.step(clock_s, buffer_s, finish_s)
        return clock_s[:, 0], buffer_s[:, 0]


def _check_size(n_states: int, grid: Grid, chunk: int) -> None:
    if n_states > grid.max_states:
        raise ValueError(f"the optimal DP holds {n_states} states after chunk {chunk}, over Grid.max_states = "
                         f"{grid.max_states}; use coarser bins (Grid.exact() enumerates: short videos only)")


def _bins(values: np.ndarray, bin_s: float) -> tuple[np.ndarray, int]:
    """Bin number of each value (from the smallest), and how many bins that spans."""
    bins = ((values - values.min()) * (1.0 / bin_s)).astype(np.int64)  # values >= min: truncation is floor
    return bins, int(bins.max()) + 1


class _Grouper:
    """Numbers the distinct cells (int64 keys) of a batch without sorting: each key is hashed
    into a table, one entry per slot wins, and entries whose slot holds another key (rare) are
    numbered by a sort of their own."""

    def __init__(self):
        self.table = np.zeros(0, dtype=np.int64)

    def __call__(self, cell: np.ndarray) -> tuple[np.ndarray, int]:
        """(group number 0..n-1 of each entry, n)."""
        bits = max(10, (4 * len(cell)).bit_length())
        if len(self.table) < 1 << bits:
            self.table = np.empty(1 << bits, dtype=np.int64)
        slot = ((cell.astype(np.uint64) * FIBONACCI_HASH) >> np.uint64(64 - bits)).astype(np.intp)
        index = np.arange(len(cell))
        self.table[slot] = index  # some entry of each slot wins; all later reads agree on it
        representative = self.table[slot]
        clash = cell[representative] != cell
        is_first = representative == index
        number = np.cumsum(is_first) - 1
        group = number[representative]
        n_groups = int(number[-1]) + 1
        if np.any(clash):
            _, clashed = np.unique(cell[clash], return_inverse=True)
            group[clash] = n_groups + clashed
            n_groups += int(clashed.max()) + 1
        return group, n_groups


def _search(walk: _Walk, buffer_bin_s: float, grid: Grid, floor: float = -math.inf):
    """The achievable DP: (levels of chunks 1..end, their QoE sum, most states held).
    States whose value plus ``walk.rest`` falls below ``floor`` are dropped."""
    model = walk.model
    n_levels = model.video.n_levels
    clock_s, buffer_s = walk.first_chunk()
    last_level, value = np.array([model.default_level]), np.zeros(1)
    parents, choices, most = [], [], 1
    for chunk in range(1, model.n_chunks):
        rebuffer_s, next_clock_s, next_buffer_s = walk.step(clock_s, buffer_s, walk.finish_s(clock_s, chunk))
        next_value = (value[:, None] + walk.reward(last_level, rebuffer_s)).ravel()
        next_clock_s, next_buffer_s = next_clock_s.ravel(), next_buffer_s.ravel()
        candidates = np.arange(len(next_value))
        if buffer_bin_s > 0:  # the best state of each (level, buffer bin) cell, lowest index on ties
            buffer_bin, n_bins = _bins(next_buffer_s, buffer_bin_s)
            group, n_groups = walk.grouper(np.tile(np.arange(n_levels), len(value)) * n_bins + buffer_bin)
            best = np.full(n_groups, -np.inf)
            np.maximum.at(best, group, next_value)
            winners = np.flatnonzero(next_value >= best[group])
            first = np.full(n_groups, len(next_value))
            np.minimum.at(first, group[winners], winners)
            candidates = np.sort(first)
        if floor > -math.inf:
            clock_kept_s = next_clock_s[candidates]
            rest = walk.rest(chunk, clock_kept_s, clock_kept_s + next_buffer_s[candidates])
            candidates = candidates[next_value[candidates] + rest >= floor - ABS_TOLERANCE]
        if len(candidates) == 0:
            return None, -math.inf, most
        _check_size(len(candidates), grid, chunk)
        most = max(most, len(candidates))
        parents.append(candidates // n_levels)
        choices.append((candidates % n_levels).astype(np.int32))
        clock_s, buffer_s = next_clock_s[candidates], next_buffer_s[candidates]
        value, last_level = next_value[candidates], choices[-1]
    state = int(np.argmax(value))
    best = float(value[state])
    levels = np.empty(model.n_chunks - 1, dtype=np.int32)
    for chunk in range(model.n_chunks - 2, -1, -1):
        levels[chunk] = choices[chunk][state]
        state = int(parents[chunk][state])
    return levels, best, most


def _upper_bound(walk: _Walk, grid: Grid, floor: float) -> tuple[float, int]:
    """The corner DP of the module docstring: (a bound >= every level sequence's QoE sum, most
    corners held). ``floor`` must be an achievable QoE sum; corners that cannot reach it are
    dropped, and the bound is at least ``floor``."""
    model = walk.model
    n_levels, penalty = model.video.n_levels, model.rebuffer_penalty * model.reward_scale
    shift_s = model.rtt_s if model.pensieve else 0.0
    clock_s, buffer_s = walk.first_chunk()
    low_s, high_s = clock_s + buffer_s, clock_s + buffer_s
    last_level, value = np.array([model.default_level]), np.zeros(1)
    most = 1
    for chunk in range(1, model.n_chunks):
        finish_s = walk.finish_s(clock_s, chunk)
        rebuffer_s = np.maximum(finish_s - (high_s - shift_s)[:, None], 0.0)
        next_value = (value[:, None] + walk.reward(last_level, rebuffer_s)).ravel()
        next_high_s = (np.maximum((high_s - shift_s)[:, None], finish_s) + model.chunk_s).ravel()
        next_low_s = (np.maximum((low_s - shift_s)[:, None], finish_s) + model.chunk_s).ravel()
        next_clock_s = np.maximum(finish_s.ravel(), next_low_s - model.cap_s)
        level = np.tile(np.arange(n_levels), len(value))
        if grid.is_exact:
            clock_s, low_s, high_s, value, last_level = next_clock_s, next_low_s, next_high_s, next_value, level
        else:
            clock_bin, n_clock_bins = _bins(next_clock_s, grid.bound_clock_s)
            buffer_bin, n_buffer_bins = _bins(next_high_s - next_clock_s, grid.bound_buffer_s)
            group, n_cells = walk.grouper((level * n_clock_bins + clock_bin) * n_buffer_bins + buffer_bin)
            clock_s, low_s = np.full(n_cells, np.inf), np.full(n_cells, np.inf)
            value, high_s = np.full(n_cells, -np.inf), np.full(n_cells, -np.inf)
            np.minimum.at(clock_s, group, next_clock_s)
            np.minimum.at(low_s, group, next_low_s)
            np.maximum.at(value, group, next_value)
            if penalty > 0:  # cover each member's v and v + penalty x Pmax, no more
                np.maximum.at(high_s, group, next_value + penalty * next_high_s)
                high_s = np.maximum((high_s - value) / penalty, low_s)
            else:
                np.maximum.at(high_s, group, next_high_s)
            last_level = np.empty(n_cells, dtype=np.int64)
            last_level[group] = level
        # a corner's rest bound is at least its members' (earliest clock, highest playout end)
        alive = value + walk.rest(chunk, clock_s, high_s) >= floor - ABS_TOLERANCE
        if not np.any(alive):
            return floor, most
        clock_s, low_s, high_s, value, last_level = (
            clock_s[alive], low_s[alive], high_s[alive], value[alive], last_level[alive])
        _check_size(len(value), grid, chunk)
        most = max(most, len(value))
    return max(float(value.max()), floor), most


def _plan(model: _Model, trace: Trace, grid: Grid, bound: bool) -> OptimalPlan:
    started = time.perf_counter()
    walk = _Walk(model, trace)
    if grid.is_exact:
        levels, qoe_sum, most = _search(walk, 0.0, grid)
    else:
        coarse_levels, coarse_sum, _ = _search(walk, grid.coarse_buffer_s, grid)
        levels, qoe_sum, most = _search(walk, grid.search_buffer_s, grid, floor=coarse_sum)
        if levels is None or qoe_sum < coarse_sum:  # the finer grid merged the coarse pass's path away
            levels, qoe_sum = coarse_levels, coarse_sum
    upper = math.nan
    if bound:
        upper, corners = _upper_bound(walk, grid, floor=qoe_sum)
        most = max(most, corners)
    return OptimalPlan(levels, qoe_sum, upper, most, time.perf_counter() - started)


def optimal_levels(trace: Trace, video: VideoProfile, mode: str = "default", qoe: str = "lin",
                   grid: Grid | None = None, bound: bool = True, **config_changes) -> OptimalPlan:
    """The DP's best level sequence for one trace under ``test_config(mode, qoe, **config_changes)``.

    ``trace``: a ``Trace``; ``video``: the profile (chunk 0 is fetched at the default level);
    ``grid``: merge cells (default ``Grid()``); ``bound``: also run the upper-bound DP (else
    ``upper_bound`` is NaN). Returns an ``OptimalPlan`` whose ``levels`` cover chunks 1..end
    (``chunks_per_episode - 1`` of them, as ``run_test_protocol`` steps).
    """
    model = _Model(video, test_config(mode=mode, qoe=qoe, **config_changes))
    return _plan(model, trace, grid or Grid(), bound)


class FixedLevels:
    """A fixed level sequence per player (row i: trace i's levels for chunks 1..end), played
    through ``run_test_protocol`` like any policy."""

    name = "optimal"

    def __init__(self, levels: np.ndarray):
        self.levels = np.asarray(levels, dtype=np.int32)
        self.step = 0

    def reset(self, mask: np.ndarray | None = None) -> None:
        if mask is not None:
            raise ValueError("FixedLevels replays one episode per player; it cannot restart some players")
        self.step = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.step >= self.levels.shape[1]:
            raise RuntimeError(f"FixedLevels holds {self.levels.shape[1]} levels per player; asked for one more")
        levels = self.levels[:, self.step]
        self.step += 1
        return levels


def run_optimal(traces: list[Trace] | TraceSet, video: VideoProfile | str, mode: str = "default",
                qoe: str = "lin", grid: Grid | None = None, bound: bool = True, backend: str = "c",
                progress: bool | None = False) -> dict:
    """Plan every trace with the DP, replay the plans through ``run_test_protocol``, report.

    Returns ``run_test_protocol``'s dict (``per_trace`` rows in trace-name order, ``mean``,
    ``settings``) where each row also has ``levels`` (chunks 1..end), ``dp_qoe_sum`` (the DP's
    own sum for them), ``upper_bound`` (>= the QoE sum of every level sequence; None without
    ``bound``) and ``gap_bound`` (upper_bound - qoe_sum: the most the grid can have lost);
    ``mean`` gains ``upper_bound`` and ``upper_bound_per_chunk``; ``settings`` the grid,
    ``plan_s`` (seconds planning) and ``max_states``. ``progress``: a bar on stderr (None: only
    on a terminal).
    """
    from tqdm import tqdm

    video = load_profile(video) if not isinstance(video, VideoProfile) else video
    grid = grid or Grid()
    ordered = sorted_traces(traces)
    model = _Model(video, test_config(mode=mode, qoe=qoe))
    started = time.perf_counter()
    bar = tqdm(ordered, desc="optimal", unit="trace", disable=None if progress is None else not progress)
    plans = [_plan(model, trace, grid, bound) for trace in bar]
    plan_s = time.perf_counter() - started
    policy = FixedLevels(np.stack([plan.levels for plan in plans]))
    result = run_test_protocol(policy, ordered, video, mode=mode, qoe=qoe, backend=backend)
    for row, plan in zip(result["per_trace"], plans):
        row.update(levels=plan.levels.tolist(), dp_qoe_sum=plan.qoe_sum,
                   upper_bound=plan.upper_bound if bound else None,
                   gap_bound=plan.upper_bound - row["qoe_sum"] if bound else None)
    upper = float(np.mean([plan.upper_bound for plan in plans])) if bound else None
    result["mean"]["upper_bound"] = upper
    result["mean"]["upper_bound_per_chunk"] = upper / result["settings"]["chunks_scored"] if bound else None
    result["settings"].update(grid=asdict(grid), bound=bound, plan_s=plan_s,
                              max_states=max(plan.max_states for plan in plans))
    return result


__all__ = ["Grid", "OptimalPlan", "Timeline", "FixedLevels", "optimal_levels", "run_optimal"]
