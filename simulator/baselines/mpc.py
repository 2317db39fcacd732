"""RobustMPC and FastMPC (Yin et al., SIGCOMM'15) exactly as Pensieve's ``test/mpc.py``, batched.

Per player and decision, as the original (throughputs in MB/s = bytes / delay_ms / 1000, delay
including the RTT; ``k`` = index of the chunk about to be fetched = chunks_total - chunks_left):

1. error = |last estimate - newest throughput| / newest throughput (0 before any estimate);
2. estimate = harmonic mean of the last 5 valid throughputs (1/x summed oldest first);
3. future bandwidth = estimate / (1 + max of the last 5 errors) (RobustMPC) or the estimate
   itself (FastMPC);
4. every combination of levels for the next min(5, chunks_left) chunks, in
   ``itertools.product`` order, is scored by simulating the buffer: download time =
   (size / 1e6) / future bandwidth, rebuffer when it exceeds the buffer, + chunk_s per chunk;
   reward = sum(kbps) / 1000 - 4.3 x rebuffer - sum(|delta kbps|) / 1000. The LAST combination
   with the maximal reward wins (the original's ``reward >= max_reward``); its first level is
   played. Sizes come from the video profile; an index past the video's last chunk has size 0.

``index_fixed=True`` (default) plans chunks k..k+4; ``False`` keeps the committed off-by-one
(k+1..k+5, ANCHORS quirk 2). The error history is per player and cleared by ``reset(mask)``;
``global_error_history=True`` never clears it (quirk 7; the original also updates it on the
final chunk of each video, which ``observe_terminal`` reproduces for a player that walks
several traces in sequence).

Accumulations run position by position over prefix trees (a combination's state after p
positions depends only on its first p levels), with the original's floating-point order, so
decisions are bit-identical to the per-player loop on the same inputs.
"""

from __future__ import annotations

import numpy as np

from simulator.baselines.base import Baseline, harmonic_mean
from simulator.config import SimConfig

HORIZON = 5
BYTES_PER_MB = 1_000_000.0


class RobustMPC(Baseline):
    """RobustMPC; see the module docstring. ``qoe`` picks the planning objective's per-level
    value: "lin" (kbps, summed then / 1000 as the original), "log" (ln(R / R_min)) or "hd"
    (the profile's hd_reward); ``rebuffer_penalty`` defaults to the simulator's
    (``SimConfig.rebuffer_penalty_for``: top Mbps for lin, i.e. 4.3 on Envivio; 2.66 log; 8 hd)."""

    name = "robustmpc"
    robust = True

    def __init__(self, video, layout, index_fixed: bool = True, global_error_history: bool = False,
                 qoe: str = "lin", rebuffer_penalty: float | None = None, horizon: int = HORIZON,
                 max_block_envs: int = 128):
        super().__init__(video, layout)
        if qoe == "lin":
            self.level_value, self.value_divisor = self.ladder_kbps, 1000.0
        elif qoe == "log":
            self.level_value, self.value_divisor = np.log(self.ladder_kbps / self.ladder_kbps[0]), 1.0
        elif qoe == "hd":
            if video.hd_reward is None:
                raise ValueError(f"video profile {video.name!r} has no hd_reward table; use qoe 'lin' or 'log'")
            self.level_value, self.value_divisor = np.asarray(video.hd_reward, dtype=np.float64), 1.0
        else:
            raise ValueError(f"qoe must be 'lin', 'log' or 'hd', got {qoe!r}")
        if not 1 <= horizon <= 6:  # memory grows as L^horizon per player
            raise ValueError(f"horizon must be in 1..6 (L^horizon combinations), got {horizon}")
        if rebuffer_penalty is None:  # the simulator's own rule (4.3 for Envivio's lin QoE)
            rebuffer_penalty = SimConfig(qoe=qoe).rebuffer_penalty_for(video.bitrates_kbps[-1])
        self.rebuffer_penalty = rebuffer_penalty
        self.index_fixed, self.global_error_history = bool(index_fixed), bool(global_error_history)
        self.horizon, self.max_block_envs = int(horizon), int(max_block_envs)
        n_levels = video.n_levels
        # Zero-padded so any index past the video's end reads size 0, like get_chunk_size.
        self.size_table = np.concatenate(
            [video.chunk_bytes, np.zeros((n_levels, self.horizon + 2))], axis=1)
        self.value_diff = np.abs(self.level_value[:, None] - self.level_value[None, :])  # [last, next]
        self.first_level = np.repeat(np.arange(n_levels), n_levels ** (self.horizon - 1))
        self.last_estimate: np.ndarray | None = None  # MB/s, NaN before the first estimate
        self.errors: np.ndarray | None = None  # [N, 5], newest last

    # -- per-player error history ----------------------------------------------------------
    def _ensure_state(self, n_envs: int) -> None:
        if self.last_estimate is None or len(self.last_estimate) != n_envs:
            if self.last_estimate is not None:
                raise ValueError(f"{self.name} holds state for {len(self.last_estimate)} players, got {n_envs}")
            self.last_estimate = np.full(n_envs, np.nan)
            self.errors = np.zeros((n_envs, 5))

    def reset(self, mask: np.ndarray | None = None) -> None:
        if self.last_estimate is None or self.global_error_history:
            return
        rows = slice(None) if mask is None else np.asarray(mask, dtype=bool)
        self.last_estimate[rows] = np.nan
        self.errors[rows] = 0.0

    def _update_estimate(self, fields: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        """Steps 1-3 for the players in ``rows``; returns their future bandwidth in MB/s."""
        chunk_bytes = fields["chunk_bytes"][rows].astype(np.float64)
        delay_ms = fields["download_time_s"][rows].astype(np.float64) * 1000.0
        valid = (fields["valid"][rows] > 0.5) & (delay_ms > 0)
        mbps_bytes = np.zeros_like(chunk_bytes)
        np.divide(chunk_bytes, delay_ms, out=mbps_bytes, where=valid)
        mbps_bytes /= 1000.0  # the original's float(size) / float(delay) / M_IN_K
        newest = mbps_bytes[:, -1]
        previous = self.last_estimate[rows]
        error = np.zeros_like(newest)
        known = ~np.isnan(previous) & (newest > 0)
        error[known] = np.abs(previous[known] - newest[known]) / newest[known]
        errors = np.roll(self.errors[rows], -1, axis=1)
        errors[:, -1] = error
        self.errors[rows] = errors
        estimate = harmonic_mean(mbps_bytes[:, -5:], valid[:, -5:])
        self.last_estimate[rows] = estimate
        if not self.robust:
            return estimate
        return estimate / (1.0 + errors.max(axis=1))

    def observe_terminal(self, final_obs: np.ndarray, done: np.ndarray) -> None:
        """Record the estimate the original computes after a video's last chunk (only matters
        with ``global_error_history``, where it carries into the next video)."""
        if not self.global_error_history:
            return
        fields = self.fields(final_obs)
        self._ensure_state(len(final_obs))
        rows = np.flatnonzero(np.asarray(done, dtype=bool))
        if len(rows):
            self._update_estimate(fields, rows)

    # -- decisions ---------------------------------------------------------------------------
    def act(self, obs: np.ndarray) -> np.ndarray:
        fields = self.fields(obs)
        n_envs = len(obs)
        self._ensure_state(n_envs)
        future_mbps = self._update_estimate(fields, np.arange(n_envs))
        buffer_s = self.newest(fields, "buffer_s")
        last_level = self.last_level(fields)
        chunks_left = np.rint(fields["chunks_left"][:, 0]).astype(np.int64)
        next_index = np.rint(fields["chunks_total"][:, 0]).astype(np.int64) - chunks_left
        plan_length = np.clip(chunks_left, 0, self.horizon)
        first_index = next_index if self.index_fixed else next_index + 1
        no_history = ~(future_mbps > 0)  # no valid chunk in the row: nothing to plan with
        future_mbps = np.where(no_history, 1.0, future_mbps)
        levels = np.zeros(n_envs, dtype=np.int32)
        for start in range(0, n_envs, self.max_block_envs):
            block = slice(start, min(start + self.max_block_envs, n_envs))
            levels[block] = self._plan(future_mbps[block], buffer_s[block], last_level[block],
                                       first_index[block], plan_length[block])
        levels[no_history] = 0
        return levels

    def _plan(self, future_mbps, buffer_s, last_level, first_index, plan_length) -> np.ndarray:
        """Exhaustive lookahead for a block of players; returns the first level of the best plan."""
        n_levels, n_envs = self.video.n_levels, len(buffer_s)
        chunk_s, n_cols = self.video.chunk_s, self.size_table.shape[1]
        # Prefix state [N, W]: one column per prefix of p levels, in product order, so prefix j's
        # children are columns j * L + q of the next position.
        buffer = buffer_s[:, None].copy()
        rebuffer = np.zeros((n_envs, 1))
        value_sum = np.zeros((n_envs, 1))
        smooth_sum = np.zeros((n_envs, 1))
        last = last_level[:, None].astype(np.int64)
        child_level = np.arange(n_levels)[None, None, :]
        for position in range(self.horizon):
            index = np.minimum(first_index + position, n_cols - 1)
            download_s = ((self.size_table[:, index].T / BYTES_PER_MB) / future_mbps[:, None])[:, None, :]
            # The original's "if buffer < download: rebuffer += download - buffer; buffer = 0
            # else: buffer -= download", then buffer += chunk_s, written with max(., 0): the
            # same IEEE results (x - y == -(y - x) exactly; adding 0.0 changes nothing).
            deficit_s = download_s - buffer[:, :, None]
            child_rebuffer = np.maximum(deficit_s, 0.0)
            child_rebuffer += rebuffer[:, :, None]
            child_buffer = np.maximum(np.negative(deficit_s, out=deficit_s), 0.0, out=deficit_s)
            child_buffer += chunk_s
            children = {
                "rebuffer": child_rebuffer,
                "buffer": child_buffer,
                "value": value_sum[:, :, None] + self.level_value[child_level],
                "smooth": smooth_sum[:, :, None] + self.value_diff[last],
                "last": np.broadcast_to(child_level, (n_envs, last.shape[1], n_levels)),
            }
            active = position < plan_length
            if not active.all():  # plan shorter than the horizon: children copy their parent
                keep = ~active[:, None, None]
                for key, parent in (("rebuffer", rebuffer), ("buffer", buffer), ("value", value_sum),
                                    ("smooth", smooth_sum), ("last", last)):
                    children[key] = np.where(keep, parent[:, :, None], children[key])
            width = last.shape[1] * n_levels
            rebuffer, buffer = children["rebuffer"].reshape(n_envs, width), children["buffer"].reshape(n_envs, width)
            value_sum, smooth_sum = children["value"].reshape(n_envs, width), children["smooth"].reshape(n_envs, width)
            last = children["last"].reshape(n_envs, width)
        reward = value_sum / self.value_divisor - self.rebuffer_penalty * rebuffer - smooth_sum / self.value_divisor
        # ``reward >= max_reward`` in product order: the last maximal combination wins.
        best = reward.shape[1] - 1 - reward[:, ::-1].argmax(axis=1)
        choice = self.first_level[best].astype(np.int32)
        choice[plan_length <= 0] = 0  # the original sends 0 when no combination exists
        return choice


class FastMPC(RobustMPC):
    """FastMPC: RobustMPC without the error discount (future bandwidth = harmonic mean)."""

    name = "fastmpc"
    robust = False
