"""``VecSim``: N players stepped one chunk per call, over buffers allocated once.

Two backends behind one interface: ``"c"`` (``abr_sim.h`` through ``simulator._core``) and
``"reference"`` (``simulator.reference``, plain Python, the specification). Every array a step
writes is allocated here, once; ``step`` returns views that the next step overwrites.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.config import SimConfig
from simulator.layout import Layout
from simulator.reference import ReferencePlayer, level_utilities
from simulator.traces.model import Trace, TraceSet
from simulator.video import VideoProfile

F64_FIELDS = (
    "reward", "download_time_s", "rebuffer_s", "buffer_s", "sleep_s", "chunk_bytes",
    "bitrate_kbps", "qoe_bitrate", "qoe_rebuffer", "qoe_smooth",
)
I32_FIELDS = ("level", "chunk_index", "trace_index")


@dataclass
class StepOutput:
    """Views into the simulator's output buffers, overwritten by the next step.

    Per player i: ``obs[i]`` is the observation after the step (after an automatic reset when
    ``done[i]``, whose terminal observation is then ``final_obs[i]``); the other arrays
    describe the chunk just fetched: ``reward`` = (qoe_bitrate - qoe_rebuffer - qoe_smooth) x
    reward_scale, ``download_time_s`` (RTT included), ``rebuffer_s``, ``buffer_s`` (after the
    chunk and any sleep), ``sleep_s``, ``chunk_bytes``, ``bitrate_kbps``, ``level``,
    ``chunk_index`` (0-based index of the chunk in the video), ``trace_index``.
    """

    obs: np.ndarray
    final_obs: np.ndarray
    done: np.ndarray
    reward: np.ndarray
    download_time_s: np.ndarray
    rebuffer_s: np.ndarray
    buffer_s: np.ndarray
    sleep_s: np.ndarray
    chunk_bytes: np.ndarray
    bitrate_kbps: np.ndarray
    qoe_bitrate: np.ndarray
    qoe_rebuffer: np.ndarray
    qoe_smooth: np.ndarray
    level: np.ndarray
    chunk_index: np.ndarray
    trace_index: np.ndarray


class VecSim:
    """N independent players; player i's randomness depends only on (seed, player_offset + i).

    ``traces``: a list of ``Trace`` or a ``TraceSet``. With ``trace_order="sequential"`` player
    i plays traces i, i + stride, i + 2 stride, ... (stride defaults to ``num_envs``).
    """

    def __init__(self, traces: list[Trace] | TraceSet, video: VideoProfile, num_envs: int,
                 config: SimConfig = SimConfig(), seed: int = 0, backend: str = "c",
                 player_offset: int = 0, trace_stride: int | None = None):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if not 0 <= config.default_level < video.n_levels:
            raise ValueError(f"default_level {config.default_level} is not a level of {video.name!r}")
        self.traces = traces if isinstance(traces, TraceSet) else TraceSet.from_traces(list(traces))
        self.video, self.config, self.num_envs, self.backend = video, config, num_envs, backend
        self.layout = Layout(config.history_len, video.n_levels)
        self.n_episode_chunks = config.chunks_per_episode(video.n_chunks)
        self.player_offset = player_offset
        self.trace_stride = trace_stride if trace_stride is not None else num_envs

        self.obs = np.zeros((num_envs, self.layout.size), dtype=np.float32)
        self.final_obs = np.zeros_like(self.obs)
        self.out_f64 = np.zeros((len(F64_FIELDS), num_envs), dtype=np.float64)
        self.out_i32 = np.zeros((len(I32_FIELDS), num_envs), dtype=np.int32)
        self.done = np.zeros(num_envs, dtype=np.uint8)
        self._levels = np.zeros(num_envs, dtype=np.int32)
        self.output = StepOutput(
            obs=self.obs, final_obs=self.final_obs, done=self.done,
            **{name: self.out_f64[row] for row, name in enumerate(F64_FIELDS)},
            **{name: self.out_i32[row] for row, name in enumerate(I32_FIELDS)},
        )
        if backend == "c":
            self._init_c()
        elif backend == "reference":
            self._players = [
                ReferencePlayer(self.traces, video, config, seed, player_offset + i, self.trace_stride)
                for i in range(num_envs)
            ]
        else:
            raise ValueError(f"backend must be 'c' or 'reference', got {backend!r}")
        self.seed(seed)

    def _init_c(self) -> None:
        from simulator import _core

        config, video = self.config, self.video
        self._pf = np.array([
            config.rtt_s * 1000.0, config.payload_factor, config.buffer_cap_s * 1000.0,
            config.drain_quantum_s * 1000.0, video.chunk_s * 1000.0, config.noise_low, config.noise_high,
            config.rebuffer_penalty_for(video.bitrates_kbps[-1]), config.smooth_penalty, config.reward_scale,
        ], dtype=np.float64)
        self._pi = np.array([
            config.mode == "pensieve", config.noise, config.trace_order == "sequential", config.random_start,
            config.default_level, video.n_levels, video.n_chunks, self.n_episode_chunks, config.history_len,
            len(self.traces), self.num_envs, self.trace_stride, self.player_offset,
        ], dtype=np.int64)
        assert len(self._pf) == _core.PF_COUNT and len(self._pi) == _core.PI_COUNT
        self._utility = np.ascontiguousarray(level_utilities(video, config), dtype=np.float64)
        self._players_bytes = np.zeros(self.num_envs * _core.PLAYER_BYTES, dtype=np.uint8)
        self._core = _core.Core(
            time_s=self.traces.time_s, bw_mbps=self.traces.bw_mbps, offsets=self.traces.offsets,
            chunk_bytes=video.chunk_bytes, bitrate_kbps=video.bitrates_kbps, utility=self._utility,
            pf=self._pf, pi=self._pi, players=self._players_bytes, obs=self.obs, final_obs=self.final_obs,
            out_f64=self.out_f64, out_i32=self.out_i32, done=self.done,
        )

    def seed(self, seed: int, mask: np.ndarray | None = None) -> None:
        """Restart the random streams (of the players in ``mask``, or all) from ``seed``."""
        seed = int(seed) & ((1 << 64) - 1)
        if self.backend == "c":
            self._core.seed(seed, None if mask is None else np.ascontiguousarray(mask, dtype=np.uint8))
        else:
            for i, player in enumerate(self._players):
                if mask is None or mask[i]:
                    player.seed(seed)

    def reset(self, mask: np.ndarray | None = None, seed: int | None = None) -> np.ndarray:
        """Start new episodes (of the players in ``mask``, or all); returns ``obs``."""
        mask = None if mask is None else np.ascontiguousarray(mask, dtype=np.uint8)
        if seed is not None:
            self.seed(seed, mask)
        if self.backend == "c":
            self._core.reset(mask)
        else:
            for i, player in enumerate(self._players):
                if mask is None or mask[i]:
                    player.reset()
                    self.obs[i] = player.obs
        self.done[:] = 0
        return self.obs

    def step(self, levels) -> StepOutput:
        """Fetch one chunk per player at ``levels`` (int, shape [N]); finished players auto-reset."""
        np.copyto(self._levels, levels, casting="same_kind")
        if self.backend == "c":
            self._core.step(self._levels)
        else:
            self._step_reference()
        return self.output

    def _step_reference(self) -> None:
        n_levels = self.video.n_levels
        for i, player in enumerate(self._players):
            level = int(self._levels[i])
            if not 0 <= level < n_levels:
                raise ValueError(f"levels[{i}] = {level} is outside 0..{n_levels - 1}")
            result = player.fetch(level)
            for row, name in enumerate(F64_FIELDS):
                self.out_f64[row, i] = getattr(result, name)
            self.out_i32[:, i] = (result.level, result.chunk_index, player.trace_index)
            self.done[i] = result.done
            if result.done:
                self.final_obs[i] = player.obs
                player.reset()
            self.obs[i] = player.obs
